/**
 * The workflow's view of the tenant registry: reads, and conditional writes that hold the tenant's lock. Every
 * status change is a conditional write: a request is accepted by taking the tenant's lock (only if nobody holds
 * it and the tenant is in a state the request may start from); every later change requires the lock.
 */
import {
  AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  REGISTRY_KEY,
  RegistryCondition,
  RegistryField,
  RegistryItem,
  registryItemFromAttributes,
  registryUpdate,
} from '../../contracts';
import { requestedVpcCidr } from '../../lib/onboarding-rules';

const ddb = new DynamoDBClient({});

export function table(): string {
  const t = process.env.REGISTRY_TABLE;
  if (!t) throw new Error('onboarding misconfigured: REGISTRY_TABLE is not set');
  return t;
}

export async function readItem(tenantId: string): Promise<RegistryItem | undefined> {
  const r = await ddb.send(
    new GetItemCommand({
      TableName: table(),
      Key: { [REGISTRY_KEY]: { S: tenantId } },
      ConsistentRead: true,
    }),
  );
  return registryItemFromAttributes(r.Item);
}

/** A conditional write; false when the item did not meet the condition (and nothing was written). */
export async function write(
  tenantId: string,
  set: Partial<Omit<RegistryItem, 'tenantId' | 'updatedAt'>>,
  remove: readonly RegistryField[],
  condition: RegistryCondition,
): Promise<boolean> {
  try {
    await ddb.send(
      new UpdateItemCommand({ TableName: table(), ...registryUpdate(tenantId, set, remove, condition) }),
    );
    return true;
  } catch (e) {
    if (
      e instanceof ConditionalCheckFailedException ||
      (e as Error).name === 'ConditionalCheckFailedException'
    ) {
      return false;
    }
    throw e;
  }
}

/** The catalog VPC ranges of silo tenants the registry holds (not offboarded), and of silos moves kept, for the overlap rule. */
export async function siloRanges(): Promise<{ tenantId: string; vpcCidr?: string }[]> {
  const out: { tenantId: string; vpcCidr?: string }[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await ddb.send(
      new ScanCommand({
        TableName: table(),
        ProjectionExpression: '#key, #request',
        // A silo tenant's, or a silo a move out of it kept (its range is still in use until a purge).
        FilterExpression:
          '(model = :silo OR #kept = :silo) AND attribute_exists(#request) AND #status <> :gone',
        ExpressionAttributeNames: {
          '#key': REGISTRY_KEY,
          '#request': 'request',
          '#status': 'status',
          '#kept': 'keptCopy',
        },
        ExpressionAttributeValues: { ':silo': { S: 'silo' }, ':gone': { S: 'offboarded' } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) {
      out.push({ tenantId: item[REGISTRY_KEY]!.S!, vpcCidr: requestedVpcCidr(item.request?.S) });
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return out;
}

/** The execution no longer holds the tenant's lock (someone reconciled it): it must stop changing the tenant. */
export class LockLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockLost';
  }
}

/** What a request's last write removes with the lock: what the request was doing. */
export const RELEASED = [
  'lock',
  'restoring',
  'restoreArchive',
  'restoreArchiveModel',
  'moveAborted',
  'purgeCopy',
] as const;
