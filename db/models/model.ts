import type { ClientBase } from 'pg';
import type { IsolationModel } from '../naming';
import type { MigrationTarget } from '../migrate';

/** Settings some models need; each model reads only its own. */
export interface ModelOptions {
  /**
   * Bridge: the key for opaque schema and role names (see `tenantDbNames`); the provisioner and the API must use
   * the same one.
   * @default - names derived from the tenant id
   */
  readonly namingKey?: string;
  /**
   * Silo: the runtime login role of this silo database. On RDS each silo is its own instance and this is
   * `app_silo`; the local platform keeps several silo databases on one server and gives each its own login role.
   * @default 'app_silo'
   */
  readonly siloRuntimeRole?: string;
}

export interface ProvisionOptions extends ModelOptions {
  /** @default LATEST_VERSION */
  readonly version?: number;
  /**
   * Bring back an offboarded tenant whose data was kept. Without it, provisioning an offboarded tenant is
   * refused: a retired id must never hand a new customer the old customer's data.
   * @default false
   */
  readonly restore?: boolean;
}

export interface TenantRef {
  readonly id: string;
  /** Display name (pool keeps it with the registration). */
  readonly name: string;
}

export interface Provisioned {
  /** The schema that holds the tenant's tables. */
  readonly schema: string;
  /** The schema version the tenant's tables are at now. */
  readonly version: number;
  /** The version they were at before (0 for a new tenant; pool: the shared tables' version). */
  readonly fromVersion: number;
}

/**
 * One isolation model in the data plane: how a database of this model is bootstrapped, how a tenant is
 * provisioned and offboarded, which schema its tables are in, and what binds a transaction to a tenant.
 * The provisioner Lambda, the local platform and the tenant context look a model up (`dataModel`) rather than
 * switch on it.
 */
export interface DataModel {
  readonly model: IsolationModel;
  /** Whether each tenant has a database of its own (silo) rather than a place in a shared cell's database. */
  readonly databasePerTenant: boolean;
  /** The login role the API signs in as. */
  runtimeRole(options: ModelOptions): string;
  /** The model's part of the once-per-database bootstrap, inside its transaction, as the master user. */
  bootstrap(client: ClientBase, options: ModelOptions): Promise<void>;
  /** What the bootstrap does after its transaction (pool: the shared tables at `version`). */
  afterBootstrap(client: ClientBase, options: ProvisionOptions & { version: number }): Promise<void>;
  /** Creates (or brings up to `version`) one tenant. Idempotent. */
  provision(client: ClientBase, tenant: TenantRef, options: ProvisionOptions): Promise<Provisioned>;
  /** `retain` keeps the tenant's data and takes away every path to it; `destroy` removes it. Idempotent. */
  offboard(
    client: ClientBase,
    tenantId: string,
    policy: 'retain' | 'destroy',
    options: ModelOptions,
  ): Promise<void>;
  /**
   * Freezes a tenant's writes while its data moves (db/mobility/): every write of its runtime principal is
   * refused with insufficient_privilege from the next statement on; reads in READ ONLY transactions stay admitted
   * (an export runs as the runtime principal). Idempotent. Transactions that passed their checks before the
   * freeze may still commit: wait for them (db/mobility/freeze.ts) before reading what to copy.
   */
  freeze(client: ClientBase, tenantId: string, options: ModelOptions): Promise<void>;
  /** Lifts `freeze` (a failed move: the tenant serves again where it was). Idempotent. */
  unfreeze(client: ClientBase, tenantId: string, options: ModelOptions): Promise<void>;
  /**
   * Lifts `freeze` inside the caller's transaction, as the owner role (a restore over a frozen tenant: its rows and
   * its thaw commit together). Does nothing to a tenant that is not frozen.
   */
  thawWithin(client: ClientBase, tenantId: string, options: ModelOptions): Promise<void>;
  /**
   * Whether this database holds a place for the tenant (its data, or a retired copy), inside the caller's
   * transaction, as the owner role.
   */
  placed(client: ClientBase, tenantId: string, options: ModelOptions): Promise<boolean>;
  /** The schema a tenant's tables are in. */
  schemaOf(tenantId: string, options: ModelOptions): string;
  /** The schema the migrations bring up to date for this tenant (pool: the one shared schema). */
  migrationTarget(tenantId: string, options: ModelOptions): MigrationTarget;
  /**
   * The transaction-local settings that bind a transaction to a tenant (`set_config(name, value, true)` each).
   * The id has been validated; a silo database has checked it is its own tenant.
   */
  contextSettings(tenantId: string, options: ModelOptions): readonly (readonly [string, string])[];
}
