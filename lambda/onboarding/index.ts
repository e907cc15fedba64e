/**
 * The onboarding workflow's Lambda steps (one function, one `step` per invocation). Step Functions calls them
 * in order; each throws a named error on failure so the workflow's retries and catches can tell them apart.
 *
 *   validate       the request, with the catalog's rules, and against the registry (no duplicate onboarding,
 *                  no offboarding of an unknown tenant)
 *   setStatus      the tenant's registry entry (provisioning, active, offboarding, offboarded, failed + reason)
 *   checkReady     the tenant's API answers /ready (a tenant is active only once its service is)
 *   failureReason  the CloudFormation reason read from the tenant stack's events
 *   finalSnapshot  silo offboarding: a manual snapshot of the tenant's database before its stack goes, and
 *                  deletion protection lifted so `cdk destroy` can remove the instance
 *   snapshotStatus whether that snapshot is available yet
 */
import {
  CloudFormationClient,
  DescribeStackEventsCommand,
  DescribeStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import {
  AttributeValue,
  DynamoDBClient,
  GetItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  CreateDBSnapshotCommand,
  DescribeDBSnapshotsCommand,
  ModifyDBInstanceCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  checkOffboarding,
  checkSiloRanges,
  offboardingTenantId,
  OnboardingRequest,
  onboardingTenant,
  RequestRejected,
} from '../../lib/onboarding-rules';
import {
  IsolationModel,
  REGISTRY_KEY,
  RegistryItem,
  registryItemFromAttributes,
  registryUpdate,
  ssmNames,
  TenantStatus,
  tenantStackName,
} from '../../contracts';
import { tenantIdProblem } from '../../db/naming';

export type Step =
  | { step: 'validate'; action: 'onboard' | 'offboard'; request: OnboardingRequest }
  | {
      step: 'setStatus';
      tenantId: string;
      status: TenantStatus;
      model?: IsolationModel;
      name?: string;
      reason?: unknown;
      snapshotId?: string;
      /** The validated request, kept so offboarding can build the same stack to destroy it. */
      request?: string;
    }
  | { step: 'checkReady'; tenantId: string; model: IsolationModel }
  | { step: 'failureReason'; tenantId: string; error?: { Error?: string; Cause?: string } }
  | { step: 'finalSnapshot'; tenantId: string }
  | { step: 'snapshotStatus'; snapshotId: string };

export { RequestRejected };

/** The tenant's API does not answer /ready yet (retried by the workflow). */
export class NotReady extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReady';
  }
}

const cfn = new CloudFormationClient({});
const ddb = new DynamoDBClient({});
const rds = new RDSClient({});
const ssm = new SSMClient({});
const table = () => {
  const t = process.env.REGISTRY_TABLE;
  if (!t) throw new Error('onboarding misconfigured: REGISTRY_TABLE is not set');
  return t;
};

export async function handler(event: Step): Promise<Record<string, unknown>> {
  switch (event.step) {
    case 'validate':
      return validate(event.action, event.request);
    case 'setStatus':
      return setStatus(event);
    case 'checkReady':
      return checkReady(await apiEndpoint(event.tenantId, event.model));
    case 'failureReason':
      return { reason: await failureReason(event.tenantId, event.error) };
    case 'finalSnapshot':
      return finalSnapshot(event.tenantId);
    case 'snapshotStatus':
      return snapshotStatus(event.snapshotId);
    default:
      throw new Error(`unknown step ${JSON.stringify((event as { step?: unknown }).step)}`);
  }
}

async function validate(
  action: 'onboard' | 'offboard',
  request: OnboardingRequest,
): Promise<Record<string, unknown>> {
  if (action === 'offboard') {
    const tenantId = offboardingTenantId(request.tenantId);
    const entry = await registryEntry(tenantId);
    checkOffboarding(tenantId, entry);
    return {
      tenantId,
      model: entry!.model,
      stackName: tenantStackName(tenantId),
      // A tenant onboarded by this pipeline is not in the catalog file: destroy needs its original request.
      tenantRequest: entry!.request ?? '',
    };
  }
  // The id is checked before it is used as a registry key.
  const idOk = !tenantIdProblem(request.tenantId);
  const tenant = onboardingTenant(
    request,
    idOk ? await registryEntry(request.tenantId as string) : undefined,
  );
  if (tenant.model === 'silo') checkSiloRanges(tenant, await pipelineSiloRequests(tenant.id));
  return {
    tenantId: tenant.id,
    model: tenant.model,
    name: tenant.name,
    stackName: tenantStackName(tenant.id),
    // What the CodeBuild job passes to the CDK app as -c tenantRequest=...
    tenantRequest: JSON.stringify({
      id: tenant.id,
      name: tenant.name,
      model: tenant.model,
      settings: request.settings ?? {},
    }),
  };
}

/** The requests of silo tenants this pipeline onboarded and has not offboarded (for the VPC range check). */
async function pipelineSiloRequests(except: string): Promise<unknown[]> {
  const requests: unknown[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await ddb.send(
      new ScanCommand({
        TableName: table(),
        ProjectionExpression: '#key, #request',
        FilterExpression: 'model = :silo AND attribute_exists(#request) AND #status <> :gone',
        ExpressionAttributeNames: { '#key': REGISTRY_KEY, '#request': 'request', '#status': 'status' },
        ExpressionAttributeValues: { ':silo': { S: 'silo' }, ':gone': { S: 'offboarded' } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) {
      if (item[REGISTRY_KEY]?.S !== except && item.request?.S) requests.push(JSON.parse(item.request.S));
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return requests;
}

async function registryEntry(tenantId: string): Promise<RegistryItem | undefined> {
  const r = await ddb.send(
    new GetItemCommand({
      TableName: table(),
      Key: { [REGISTRY_KEY]: { S: tenantId } },
      ConsistentRead: true,
    }),
  );
  return registryItemFromAttributes(r.Item);
}

async function setStatus(e: Extract<Step, { step: 'setStatus' }>): Promise<Record<string, unknown>> {
  const reason =
    e.reason === undefined ? undefined : typeof e.reason === 'string' ? e.reason : JSON.stringify(e.reason);
  const update = registryUpdate(
    e.tenantId,
    {
      status: e.status,
      model: e.model,
      name: e.name,
      finalSnapshotId: e.snapshotId,
      request: e.request,
      // The request's deletion policy, so every reader (the API, offboarding) knows it without parsing the request.
      deletionPolicy: e.request ? requestedDeletionPolicy(e.request) : undefined,
      failureReason: reason || undefined,
    },
    reason ? [] : ['failureReason'],
  );
  await ddb.send(new UpdateItemCommand({ TableName: table(), ...update }));
  return { tenantId: e.tenantId, status: e.status };
}

function requestedDeletionPolicy(request: string): RegistryItem['deletionPolicy'] {
  const settings = (JSON.parse(request) as { settings?: { deletionPolicy?: unknown } }).settings;
  return settings?.deletionPolicy === 'destroy' ? 'destroy' : 'retain';
}

/** The API that serves the tenant: its own (silo) or its cell's (pool, bridge), as the stacks publish it. */
async function apiEndpoint(tenantId: string, model: IsolationModel): Promise<string> {
  const name = ssmNames.apiEndpointFor(model, tenantId);
  try {
    const r = await ssm.send(new GetParameterCommand({ Name: name }));
    return r.Parameter!.Value!;
  } catch (e) {
    throw new NotReady(`the API endpoint ${name} is not published yet: ${(e as Error).message}`);
  }
}

async function checkReady(endpoint: string): Promise<Record<string, unknown>> {
  if (!/^https:\/\/[A-Za-z0-9.-]+(:\d+)?$/.test(endpoint)) {
    throw new Error(`readiness: endpoint ${JSON.stringify(endpoint)} is not an https origin`);
  }
  let status: number;
  try {
    status = (await fetch(`${endpoint}/ready`, { signal: AbortSignal.timeout(5000) })).status;
  } catch (e) {
    throw new NotReady(`${endpoint}/ready did not answer: ${(e as Error).message}`);
  }
  if (status !== 200) throw new NotReady(`${endpoint}/ready answered ${status}`);
  return { ready: true };
}

/**
 * The first real reason CloudFormation gave for the tenant stack's failure (not the cascade of "Resource
 * creation cancelled" that follows it), or the workflow's own error when the stack never started.
 */
export async function failureReason(
  tenantId: string,
  error?: { Error?: string; Cause?: string },
): Promise<string> {
  const stackName = tenantStackName(tenantId);
  try {
    const r = await cfn.send(new DescribeStackEventsCommand({ StackName: stackName }));
    const failed = (r.StackEvents ?? [])
      .filter((e) => /FAILED$/.test(e.ResourceStatus ?? '') && e.ResourceStatusReason)
      .filter((e) => !/cancelled|The following resource\(s\) failed/i.test(e.ResourceStatusReason!))
      .sort((a, b) => (a.Timestamp?.getTime() ?? 0) - (b.Timestamp?.getTime() ?? 0));
    if (failed.length > 0) {
      const first = failed[0];
      return `${stackName}: ${first.LogicalResourceId} (${first.ResourceType}) ${first.ResourceStatus}: ${first.ResourceStatusReason}`;
    }
  } catch (e) {
    if (!/does not exist/.test((e as Error).message)) throw e;
  }
  const cause = error?.Cause ? parseCause(error.Cause) : undefined;
  return `${stackName}: ${error?.Error ?? 'failed'}${cause ? `: ${cause}` : ''}`;
}

function parseCause(cause: string): string {
  try {
    const c = JSON.parse(cause) as { errorMessage?: string; Build?: { BuildStatus?: string } };
    return c.errorMessage ?? (c.Build?.BuildStatus ? `build ${c.Build.BuildStatus}` : cause.slice(0, 500));
  } catch {
    return cause.slice(0, 500);
  }
}

async function finalSnapshot(tenantId: string): Promise<Record<string, unknown>> {
  const stackName = tenantStackName(tenantId);
  const resources = await cfn.send(new DescribeStackResourcesCommand({ StackName: stackName }));
  const db = (resources.StackResources ?? []).find((r) => r.ResourceType === 'AWS::RDS::DBInstance');
  if (!db?.PhysicalResourceId) throw new Error(`${stackName} has no RDS instance to snapshot`);
  const snapshotId = `${tenantId}-final-${new Date()
    .toISOString()
    .replace(/[^0-9]/g, '')
    .slice(0, 14)}`;
  await rds.send(
    new CreateDBSnapshotCommand({
      DBInstanceIdentifier: db.PhysicalResourceId,
      DBSnapshotIdentifier: snapshotId,
      Tags: [
        { Key: 'tenant-id', Value: tenantId },
        { Key: 'purpose', Value: 'offboarding-final-snapshot' },
      ],
    }),
  );
  // The instance is deletion-protected; the stack can only remove it once the snapshot is taken.
  await rds.send(
    new ModifyDBInstanceCommand({
      DBInstanceIdentifier: db.PhysicalResourceId,
      DeletionProtection: false,
      ApplyImmediately: true,
    }),
  );
  return { snapshotId, dbInstanceId: db.PhysicalResourceId };
}

async function snapshotStatus(snapshotId: string): Promise<Record<string, unknown>> {
  const r = await rds.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: snapshotId }));
  const status = r.DBSnapshots?.[0]?.Status ?? 'unknown';
  if (status === 'failed') throw new Error(`final snapshot ${snapshotId} failed`);
  return { snapshotId, available: status === 'available', status };
}
