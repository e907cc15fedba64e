/**
 * Pool: every tenant's rows in shared tables (schema `pool`), each row carrying `tenant_id`, kept apart by
 * Row-Level Security (ENABLE + FORCE, one FOR ALL policy on the tenant setting). A tenant is a registration in
 * tenancy.pool_tenants; its rows can exist only once it is registered.
 */
import type { ClientBase } from 'pg';
import { validateTenantId } from '../naming';
import { LATEST_VERSION } from '../migrations';
import { migrateTarget, MigrationTarget, RetiredTenantError, targetState } from '../migrate';
import { ADMIN_SCHEMA, OWNER_ROLE, POOL_SCHEMA, RUNTIME_ROLES } from '../roles';
import { ident, sql } from '../sql';
import { exec, inTransaction, lockTarget } from '../tx';
import type { DataModel } from './model';

const poolTarget = (): MigrationTarget => ({
  target: 'pool',
  model: 'pool',
  schema: POOL_SCHEMA,
  grantee: RUNTIME_ROLES.pool,
  kind: 'pool',
});

/** Pool database: the shared tables at `version`. */
export async function migratePool(client: ClientBase, version = LATEST_VERSION): Promise<void> {
  await inTransaction(client, () => migrateTarget(client, poolTarget(), version));
}

/**
 * Registers (or re-activates) a pool tenant. Its rows can only exist once it is registered. Returns the shared
 * tables' schema version.
 */
export async function registerPoolTenant(
  client: ClientBase,
  tenantId: string,
  name: string,
  options: { restore?: boolean } = {},
): Promise<number> {
  validateTenantId(tenantId, 'registerPoolTenant');
  return inTransaction(client, async () => {
    await exec(client, lockTarget(`pool:${tenantId}`));
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    const existing = await client.query<{ status: string }>(
      `SELECT status FROM ${ADMIN_SCHEMA}.pool_tenants WHERE tenant_id = $1 FOR UPDATE`,
      [tenantId],
    );
    if (existing.rows[0]?.status === 'offboarded' && !options.restore) {
      throw new RetiredTenantError(`pool:${tenantId}`);
    }
    // A tenant frozen while its data moves stays frozen (only the mover thaws it): a provisioning run in the middle
    // of a move (a redeploy of its stack, say) must not let a write land in the copy being retired (M1).
    await exec(
      client,
      sql`INSERT INTO ${ident(ADMIN_SCHEMA)}.pool_tenants (tenant_id, name, status) VALUES (${tenantId}, ${name}, 'active')
          ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name,
            status = CASE WHEN pool_tenants.status = 'frozen' THEN 'frozen' ELSE 'active' END, updated_at = now()`,
    );
    return (await targetState(client, poolTarget().target))?.version ?? 0;
  });
}

/**
 * Offboards a pool tenant. `retain` keeps every row and marks the tenant offboarded (the database refuses it
 * from then on, whatever an API's cache says);
 * `destroy` deletes its rows, through the same RLS policy that scopes the API, so no other tenant's row can
 * be touched even by a bug here.
 */
export async function offboardPoolTenant(
  client: ClientBase,
  tenantId: string,
  policy: 'retain' | 'destroy',
): Promise<void> {
  validateTenantId(tenantId, 'offboardPoolTenant');
  await inTransaction(client, async () => {
    await exec(client, lockTarget(`pool:${tenantId}`));
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    // Idempotent: a tenant with no registration has no rows (its rows reference it) and nothing to offboard.
    const registered = await client.query(
      `SELECT 1 FROM ${ADMIN_SCHEMA}.pool_tenants WHERE tenant_id = $1 FOR UPDATE`,
      [tenantId],
    );
    if (registered.rowCount === 0) return;
    if (policy === 'destroy') {
      // A credential for this backend, computed in the database (the owner reads the key): the policies admit
      // the owner only with one too (FORCE).
      await exec(client, sql`SELECT ${ident(ADMIN_SCHEMA)}.owner_enter(${tenantId})`);
      // The policies admit only an active tenant (migration 3). A tenant offboarded earlier with its data kept
      // is active again only inside this transaction, which nobody else sees before its rows are gone.
      await exec(
        client,
        sql`UPDATE ${ident(ADMIN_SCHEMA)}.pool_tenants SET status = 'active' WHERE tenant_id = ${tenantId}`,
      );
      // Items go with their invoices (ON DELETE CASCADE).
      await exec(client, sql`DELETE FROM ${ident(POOL_SCHEMA)}.invoices`);
      await exec(client, sql`DELETE FROM ${ident(ADMIN_SCHEMA)}.pool_tenants WHERE tenant_id = ${tenantId}`);
    } else {
      await exec(
        client,
        sql`UPDATE ${ident(ADMIN_SCHEMA)}.pool_tenants SET status = 'offboarded', updated_at = now() WHERE tenant_id = ${tenantId}`,
      );
    }
  });
}

/** The schema version that knows the `frozen` registration (migration 5). */
const FREEZE_VERSION = 5;

/**
 * Freezes (or thaws) a pool tenant's registration: `frozen` admits its credential in read-only transactions only
 * (migration 5). Only an active (or already frozen) tenant can be frozen.
 */
async function setPoolFrozen(client: ClientBase, tenantId: string, frozen: boolean): Promise<void> {
  validateTenantId(tenantId, frozen ? 'freeze' : 'unfreeze');
  await inTransaction(client, async () => {
    await exec(client, lockTarget(`pool:${tenantId}`));
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    const version = (await targetState(client, poolTarget().target))?.version ?? 0;
    if (version < FREEZE_VERSION) {
      throw new Error(
        `the pool schema is at version ${version}; freezing a tenant needs version ${FREEZE_VERSION} or later: run the fleet migration first (npm run migrate)`,
      );
    }
    const r = await client.query(
      `UPDATE ${ADMIN_SCHEMA}.pool_tenants SET status = $2, updated_at = now()
        WHERE tenant_id = $1 AND status IN ('active', 'frozen') RETURNING tenant_id`,
      [tenantId, frozen ? 'frozen' : 'active'],
    );
    if (r.rowCount === 0) {
      throw new Error(
        `pool tenant "${tenantId}" is not registered as active in this database: nothing to ${frozen ? 'freeze' : 'unfreeze'}`,
      );
    }
  });
}

export const pool: DataModel = {
  model: 'pool',
  databasePerTenant: false,
  runtimeRole: () => RUNTIME_ROLES.pool,
  bootstrap: async () => undefined,
  afterBootstrap: (client, { version }) => migratePool(client, version),
  async provision(client, tenant, options) {
    const version = await registerPoolTenant(client, tenant.id, tenant.name, options);
    return { schema: POOL_SCHEMA, version, fromVersion: version };
  },
  offboard: (client, tenantId, policy) => offboardPoolTenant(client, tenantId, policy),
  freeze: (client, tenantId) => setPoolFrozen(client, tenantId, true),
  unfreeze: (client, tenantId) => setPoolFrozen(client, tenantId, false),
  thawWithin: async (client, tenantId) => {
    await client.query(
      `UPDATE ${ADMIN_SCHEMA}.pool_tenants SET status = 'active', updated_at = now() WHERE tenant_id = $1 AND status = 'frozen'`,
      [validateTenantId(tenantId, 'thaw')],
    );
  },
  placed: async (client, tenantId) =>
    ((await client.query(`SELECT 1 FROM ${ADMIN_SCHEMA}.pool_tenants WHERE tenant_id = $1`, [tenantId]))
      .rowCount ?? 0) > 0,
  schemaOf: () => POOL_SCHEMA,
  migrationTarget: () => poolTarget(),
  // RLS reads the tenant setting; search_path lets the same unqualified SQL serve every model.
  // The tenant itself travels with its credential (db/context.ts).
  contextSettings: () => [['search_path', POOL_SCHEMA]],
};
