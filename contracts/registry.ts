/**
 * The tenant registry item: one DynamoDB item per tenant, keyed by `tenantId`. The one definition of its fields,
 * used by every writer (the provisioner, the onboarding workflow, the local platform's file registry) and every
 * reader (the API, the workflow, the tools). Pure: the DynamoDB attribute shapes are written out here, so nothing
 * that imports this pulls in an SDK.
 */
import { ISOLATION_MODELS, IsolationModel } from './tenant-id';

/** The registry table's partition key. */
export const REGISTRY_KEY = 'tenantId';

/** `moving`: its data is being copied to another model (npm run tenant -- move); the API answers it 503 meanwhile. */
export const TENANT_STATUSES = [
  'provisioning',
  'active',
  'moving',
  'offboarding',
  'offboarded',
  'failed',
] as const;
export type TenantStatus = (typeof TENANT_STATUSES)[number];
export type DeletionPolicy = 'retain' | 'destroy';

/** A tenant's service tier: its per-tenant limits in a shared cell (service/src/tenant-limits.ts). */
export const TENANT_TIERS = ['standard', 'premium'] as const;
export type TenantTier = (typeof TENANT_TIERS)[number];

/** A silo tenant's cost profile: how its own cell is built (lib/silo-profiles.ts). */
export const SILO_PROFILES = ['standard', 'production', 'idle-friendly'] as const;
export type SiloProfileName = (typeof SILO_PROFILES)[number];

export interface RegistryItem {
  readonly tenantId: string;
  readonly model: IsolationModel;
  readonly status: TenantStatus;
  /** Display name. */
  readonly name?: string;
  /** What offboarding does with the tenant's data. */
  readonly deletionPolicy?: DeletionPolicy;
  /** Its service tier. @default 'standard' */
  readonly tier?: TenantTier;
  /** The tenant's schema (bridge: its own; pool: the shared one; silo: its database's). */
  readonly schema?: string;
  /** The application schema version the provisioner last brought the tenant to. */
  readonly schemaVersion?: number;
  /** Why the last operation failed (cleared on success). */
  readonly failureReason?: string;
  /** Set at offboarding: whether the tenant's data was kept. */
  readonly dataRetained?: boolean;
  /** Silo offboarding: the final snapshot's id. */
  readonly finalSnapshotId?: string;
  /** The onboarding request as validated (JSON), kept so the tenant's stack can be rebuilt by any later job. */
  readonly request?: string;
  /** Who asked for the last onboarding or offboarding (an IAM principal ARN, or `catalog` for a catalog deploy). */
  readonly requestedBy?: string;
  /**
   * The tenant's first administrator, as the accepted onboarding request named them: the only address the
   * workflow invites, and the only one a retried onboarding may name.
   */
  readonly adminEmail?: string;
  /** The request in progress brings back an offboarded tenant's kept data (set by the entry, with the lock). */
  readonly restoring?: boolean;
  /**
   * The onboarding in progress starts the new tenant with the data of this archive (its key in the bucket of the
   * tenant's cell, `tenants/<id>/<name>.tfa`): set by the onboarding entry with the lock, for an approver's
   * request only. The cell's mobility runner restores an archive into a tenant other than its own only while this
   * names it and the execution that asks holds the lock.
   */
  readonly restoreArchive?: string;
  /**
   * With `restoreArchive`: the shared cell whose bucket holds it, when that is not the tenant's own cell (an
   * approver's `restoreFromModel`). That cell's runner vouches for the archive and hands it over (README, "A new
   * tenant from another cell's archive").
   */
  readonly restoreArchiveModel?: IsolationModel;
  /** What the tenant was going through when it failed: a failed offboarding can only be offboarded again. */
  readonly failedDuring?: 'onboarding' | 'offboarding';
  /**
   * The workflow execution that holds the tenant while it changes its status. Every status change is a
   * conditional write that holds it; a second request for the same tenant is refused while it is set.
   */
  readonly lock?: string;
  /** The workflow execution whose last status change released the lock (a retry of that write finds it done). */
  readonly releasedBy?: string;
  /** Schema upgrades record their own state here and never touch `status`. */
  readonly upgradeStatus?: UpgradeStatus;
  /** Why the last schema upgrade failed (the tenant keeps serving at its previous version). */
  readonly upgradeFailure?: string;
  /** While `moving`: the model its data is being moved to. */
  readonly movingTo?: IsolationModel;
  /** While `moving` into a silo: the silo's cost profile, when the move named one (else `standard`). */
  readonly moveProfile?: SiloProfileName;
  /**
   * A move between cells failed before its switch and is being rolled back (set by the workflow, cleared with the
   * lock): only then does the destination cell's provisioner remove the place it built on the stack's Delete. Any
   * other Delete of it during the move (a deploy of the tenant's stack from a stale catalog) leaves it untouched.
   */
  readonly moveAborted?: boolean;
  /**
   * How far a move into a silo got in building it, kept across executions until the silo is removed (or the move
   * switched): `sealed`, a deploy that protects it may have landed; `filled`, its runner may hold the tenant's data.
   * A rollback reads it (not the execution's own state: a move sent again after a failed rollback meets the
   * previous one's silo) to empty the silo and lift its protection before it removes it.
   */
  readonly moveSilo?: MoveSiloStage;
  /**
   * The model where a move left the tenant's previous copy, unreachable by any runtime role, until
   * `npm run tenant -- purge` removes it.
   */
  readonly keptCopy?: IsolationModel;
  /** The request in progress removes the kept copy in this model (an approver's `purge`; set with the lock). */
  readonly purgeCopy?: IsolationModel;
  /** ISO time of the last write. */
  readonly updatedAt?: string;
}

export const MOVE_SILO_STAGES = ['sealed', 'filled'] as const;
export type MoveSiloStage = (typeof MOVE_SILO_STAGES)[number];

export const UPGRADE_STATUSES = ['upgrading', 'current', 'failed'] as const;
export type UpgradeStatus = (typeof UPGRADE_STATUSES)[number];

/** The DynamoDB attribute value shapes the registry uses. */
export type AttributeValue = { S: string } | { N: string } | { BOOL: boolean };
type Attributes = Record<string, unknown>;

/** What every field is stored as. */
const FIELD_TYPES: { readonly [K in keyof Omit<RegistryItem, 'tenantId'>]-?: 'S' | 'N' | 'BOOL' } = {
  model: 'S',
  status: 'S',
  name: 'S',
  deletionPolicy: 'S',
  tier: 'S',
  schema: 'S',
  schemaVersion: 'N',
  failureReason: 'S',
  dataRetained: 'BOOL',
  finalSnapshotId: 'S',
  request: 'S',
  requestedBy: 'S',
  adminEmail: 'S',
  restoring: 'BOOL',
  restoreArchive: 'S',
  restoreArchiveModel: 'S',
  failedDuring: 'S',
  lock: 'S',
  releasedBy: 'S',
  upgradeStatus: 'S',
  upgradeFailure: 'S',
  movingTo: 'S',
  moveProfile: 'S',
  moveAborted: 'BOOL',
  moveSilo: 'S',
  keptCopy: 'S',
  purgeCopy: 'S',
  updatedAt: 'S',
};
export type RegistryField = keyof typeof FIELD_TYPES;

/** Failure reasons are cut to this many characters (DynamoDB items are limited to 400 KB; reasons stay readable). */
export const MAX_REASON_LENGTH = 2000;

/** Reads an item as DynamoDB returns it. Returns undefined for no item; throws on an item that breaks the contract. */
export function registryItemFromAttributes(attrs: Attributes | undefined): RegistryItem | undefined {
  if (!attrs) return undefined;
  const str = (k: string) => (attrs[k] as { S?: string } | undefined)?.S;
  const tenantId = str(REGISTRY_KEY);
  const model = str('model') as IsolationModel | undefined;
  const status = str('status') as TenantStatus | undefined;
  if (
    !tenantId ||
    !model ||
    !ISOLATION_MODELS.includes(model) ||
    !status ||
    !TENANT_STATUSES.includes(status)
  ) {
    throw new Error(
      `tenant registry item ${JSON.stringify(tenantId ?? '?')} breaks the registry contract (model ${JSON.stringify(model)}, status ${JSON.stringify(status)}): repair it or remove it`,
    );
  }
  const item: Record<string, unknown> = { tenantId, model, status };
  for (const [field, type] of Object.entries(FIELD_TYPES)) {
    if (field === 'model' || field === 'status') continue;
    const v = attrs[field] as Record<string, unknown> | undefined;
    if (!v) continue;
    if (type === 'S' && typeof v.S === 'string') item[field] = v.S;
    if (type === 'N' && typeof v.N === 'string') item[field] = Number(v.N);
    if (type === 'BOOL' && typeof v.BOOL === 'boolean') item[field] = v.BOOL;
  }
  return item as unknown as RegistryItem;
}

export interface RegistryUpdate {
  readonly Key: Record<string, { S: string }>;
  readonly UpdateExpression: string;
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues: Record<string, AttributeValue>;
}

/**
 * A condition on the item, for a conditional write. Each writer states what it requires of the item it changes:
 * - `absent`: no item for the tenant yet;
 * - `unlocked`: nobody holds the tenant's lock (or there is no item);
 * - `lockedBy`: this execution holds it;
 * - `statusIn`: the item exists with one of these statuses.
 * All listed conditions must hold; `anyOf` lists alternatives, one of which must hold.
 */
export interface RegistryCondition {
  readonly absent?: boolean;
  /** The item exists (an update never creates it). */
  readonly exists?: boolean;
  /** Its schemaVersion is absent or lower than this (a late write never lowers it). */
  readonly schemaVersionBelow?: number;
  readonly unlocked?: boolean;
  readonly lockedBy?: string;
  readonly statusIn?: readonly TenantStatus[];
  /** No item yet, or one whose model is this (a cell's writes never land on a tenant another cell serves). */
  readonly modelIs?: IsolationModel;
  readonly anyOf?: readonly RegistryCondition[];
}

function conditionExpression(
  c: RegistryCondition,
  names: Record<string, string>,
  values: Record<string, AttributeValue>,
  prefix: string,
): string {
  const parts: string[] = [];
  if (c.absent) {
    names['#key'] = REGISTRY_KEY;
    parts.push('attribute_not_exists(#key)');
  }
  if (c.exists) {
    names['#key'] = REGISTRY_KEY;
    parts.push('attribute_exists(#key)');
  }
  if (c.schemaVersionBelow !== undefined) {
    names['#sv'] = 'schemaVersion';
    values[`:${prefix}sv`] = { N: String(c.schemaVersionBelow) };
    parts.push(`(attribute_not_exists(#sv) OR #sv < :${prefix}sv)`);
  }
  if (c.unlocked) {
    names['#lock'] = 'lock';
    parts.push('attribute_not_exists(#lock)');
  }
  if (c.lockedBy !== undefined) {
    names['#lock'] = 'lock';
    values[`:${prefix}lock`] = { S: c.lockedBy };
    parts.push(`#lock = :${prefix}lock`);
  }
  if (c.statusIn) {
    names['#status'] = 'status';
    const refs = c.statusIn.map((s, i) => {
      values[`:${prefix}s${i}`] = { S: s };
      return `:${prefix}s${i}`;
    });
    parts.push(`#status IN (${refs.join(', ')})`);
  }
  if (c.modelIs !== undefined) {
    names['#key'] = REGISTRY_KEY;
    names['#model'] = 'model';
    values[`:${prefix}model`] = { S: c.modelIs };
    parts.push(`(attribute_not_exists(#key) OR #model = :${prefix}model)`);
  }
  if (c.anyOf) {
    parts.push(
      `(${c.anyOf.map((alt, i) => `(${conditionExpression(alt, names, values, `${prefix}a${i}`)})`).join(' OR ')})`,
    );
  }
  return parts.join(' AND ');
}

/**
 * The UpdateItem input that sets `set` on the tenant's item (creating it if absent) and removes `remove`.
 * `updatedAt` is always set. Undefined values in `set` are skipped.
 */
export function registryUpdate(
  tenantId: string,
  set: Partial<Omit<RegistryItem, 'tenantId' | 'updatedAt'>>,
  remove: readonly RegistryField[] = [],
  condition?: RegistryCondition,
  now = new Date(),
): RegistryUpdate {
  const names: Record<string, string> = {};
  const values: Record<string, AttributeValue> = {};
  const assignments: string[] = [];
  const fields = { ...set, updatedAt: now.toISOString() } as Record<string, unknown>;
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const type = FIELD_TYPES[field as RegistryField];
    if (!type) throw new Error(`registry update: "${field}" is not a registry field`);
    names[`#${field}`] = field;
    let v = value;
    if (field === 'failureReason' || field === 'upgradeFailure')
      v = String(value).slice(0, MAX_REASON_LENGTH);
    values[`:${field}`] =
      type === 'N' ? { N: String(v) } : type === 'BOOL' ? { BOOL: Boolean(v) } : { S: String(v) };
    assignments.push(`#${field} = :${field}`);
  }
  const removals = remove.filter((f) => fields[f] === undefined);
  for (const f of removals) names[`#${f}`] = f;
  const conditionText = condition ? conditionExpression(condition, names, values, 'c') : '';
  return {
    Key: { [REGISTRY_KEY]: { S: tenantId } },
    UpdateExpression:
      `SET ${assignments.join(', ')}` +
      (removals.length ? ` REMOVE ${removals.map((f) => `#${f}`).join(', ')}` : ''),
    ...(conditionText ? { ConditionExpression: conditionText } : {}),
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}
