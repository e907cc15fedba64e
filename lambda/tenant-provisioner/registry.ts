/**
 * What the provisioner records in the tenant registry. Its own fields (schema, schema version, upgrade status,
 * the tenant's request) it writes every time. The tenant's `status` belongs to whoever registered the tenant:
 * the onboarding workflow (which holds the tenant's lock while it works), or, for a tenant deployed straight from
 * the catalog with `cdk deploy`, this provisioner, which writes status only on an item nobody holds.
 */
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  IsolationModel,
  REGISTRY_KEY,
  RegistryCondition,
  registryItemFromAttributes,
  RegistryField,
  RegistryItem,
  registryUpdate,
  TENANT_TIERS,
  TenantTier,
} from '../../contracts';
import type { Env, Request } from './request';

let dynamo: DynamoDBClient | undefined;

async function update(
  env: Env,
  tenantId: string,
  set: Partial<Omit<RegistryItem, 'tenantId' | 'updatedAt'>>,
  remove: RegistryField[] = [],
  condition?: RegistryCondition,
): Promise<boolean> {
  dynamo ??= new DynamoDBClient({});
  try {
    await dynamo.send(
      new UpdateItemCommand({
        TableName: env.registryTable,
        ...registryUpdate(tenantId, set, remove, condition),
      }),
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

/** The tenant's definition, as its stack states it. */
const definition = (r: Request) => ({
  model: r.model,
  name: r.name ?? r.tenantId!,
  deletionPolicy: r.deletionPolicy,
  tier: tierOf(r.tenantRequest),
  request: r.tenantRequest,
});

/** The tier the tenant's request (its catalog entry, validated by the CDK app) names; standard by default. */
function tierOf(request: string | undefined): TenantTier {
  try {
    const tier = (JSON.parse(request ?? '{}') as { settings?: { tier?: unknown } }).settings?.tier;
    return TENANT_TIERS.includes(tier as TenantTier) ? (tier as TenantTier) : 'standard';
  } catch {
    return 'standard';
  }
}

/**
 * Before a Create or Update: registers a tenant the registry has never seen (a catalog deploy) as
 * `provisioning`, and marks the schema upgrade under way. Status is never touched otherwise.
 */
export async function recordStart(env: Env, r: Request, create: boolean): Promise<void> {
  if (create) {
    await update(env, r.tenantId!, { ...definition(r), status: 'provisioning', requestedBy: 'catalog' }, [], {
      absent: true,
    });
  }
  // Only while the registry places the tenant in this cell (a move's switch may have landed since it was read).
  await update(env, r.tenantId!, { ...definition(r), upgradeStatus: 'upgrading' }, [], { modelIs: r.model });
}

/** After a Create or Update: the schema the tenant is at; a catalog tenant's first Create makes it active. */
export async function recordDone(env: Env, r: Request, schema: string, create: boolean): Promise<void> {
  await update(
    env,
    r.tenantId!,
    { schema, schemaVersion: r.schemaVersion, upgradeStatus: 'current' },
    ['upgradeFailure'],
    { modelIs: r.model },
  );
  if (create) {
    await update(env, r.tenantId!, { status: 'active' }, ['failureReason'], {
      unlocked: true,
      statusIn: ['provisioning'],
    });
  }
}

/**
 * A fleet migration brought the tenant's schema to `version`: only an item that exists, and only upward (a late
 * write never lowers what a concurrent custom-resource run recorded). False when there was nothing to change.
 */
export async function recordSchemaVersion(env: Env, tenantId: string, version: number): Promise<boolean> {
  return update(env, tenantId, { schemaVersion: version, upgradeStatus: 'current' }, ['upgradeFailure'], {
    exists: true,
    schemaVersionBelow: version,
    modelIs: env.model,
  });
}

/**
 * A failed Create or Update: the upgrade's own failure (the tenant keeps serving at its previous version). A
 * catalog tenant whose first Create failed is marked failed; a workflow's tenant is left to its workflow.
 */
export async function recordFailure(env: Env, r: Request, reason: string, create: boolean): Promise<void> {
  await update(env, r.tenantId!, { upgradeStatus: 'failed', upgradeFailure: reason }, [], {
    modelIs: r.model,
  });
  if (create) {
    await update(env, r.tenantId!, { status: 'failed', failureReason: reason }, [], {
      unlocked: true,
      statusIn: ['provisioning'],
    });
  }
}

/** After a Delete: whether data was kept; a catalog tenant (nobody holds it) is marked offboarded. */
export async function recordOffboarded(env: Env, r: Request, schema: string): Promise<void> {
  const dataRetained = r.deletionPolicy === 'retain';
  await update(env, r.tenantId!, { schema, dataRetained }, [], { modelIs: r.model });
  await update(env, r.tenantId!, { status: 'offboarded' }, ['failureReason'], {
    unlocked: true,
    statusIn: ['provisioning', 'active', 'failed'],
    modelIs: r.model,
  });
}

/**
 * What this cell's resource of a tenant is while the tenant moves between models, or after it moved (registry):
 * - `destination`: the tenant is `moving` to this cell: its place here is being built or, on a rollback, removed;
 * - `source`: the tenant is `moving` away from this cell, where it is served until the move's switch;
 * - `elsewhere`: the registry places the tenant in another cell: this cell's place is what a move left behind;
 * - `own`: none of these (no move, or a tenant the registry does not know yet).
 */
export type Placement = 'own' | 'destination' | 'source' | 'elsewhere';

export function placementOf(
  item: Pick<RegistryItem, 'model' | 'status' | 'movingTo'> | undefined,
  cell: IsolationModel,
): Placement {
  if (!item) return 'own';
  const moving = item.status === 'moving' && item.movingTo !== undefined && item.movingTo !== item.model;
  if (moving && item.movingTo === cell) return 'destination';
  if (item.model !== cell) return 'elsewhere';
  return moving ? 'source' : 'own';
}

/** The tenant's registry item, read consistently (a move's status is written just before its deploy). */
export async function readTenant(env: Env, tenantId: string): Promise<RegistryItem | undefined> {
  dynamo ??= new DynamoDBClient({});
  const r = await dynamo.send(
    new GetItemCommand({
      TableName: env.registryTable,
      Key: { [REGISTRY_KEY]: { S: tenantId } },
      ConsistentRead: true,
    }),
  );
  return registryItemFromAttributes(r.Item);
}
