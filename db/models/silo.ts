/**
 * Silo: the tenant has a database (on RDS, an instance) of its own; its tables are in schema `app`, readable by
 * the silo's runtime role only. The database serves one tenant and refuses any other (TenantDatabase).
 */
import type { ClientBase } from 'pg';
import { LATEST_VERSION } from '../migrations';
import { hasTarget, migrateTarget, MigrationTarget } from '../migrate';
import { ADMIN_SCHEMA, OWNER_ROLE, RUNTIME_ROLES, SILO_SCHEMA } from '../roles';
import { TENANT_TABLES } from '../mobility/tables';
import { ident, join, sql } from '../sql';
import { exec, inTransaction, lockTarget, setSchemaFrozen, thawSchemaWithin } from '../tx';
import type { DataModel, ModelOptions } from './model';

const siloRole = (options: ModelOptions) => options.siloRuntimeRole ?? RUNTIME_ROLES.silo;
const siloTarget = (options: ModelOptions): MigrationTarget => ({
  target: 'silo',
  model: 'silo',
  schema: SILO_SCHEMA,
  grantee: siloRole(options),
  kind: 'tenant',
});

/** Silo database: its application schema at `version`, readable by the silo's runtime role only. */
export async function migrateSilo(
  client: ClientBase,
  version = LATEST_VERSION,
  siloRuntimeRole = RUNTIME_ROLES.silo,
  options: { restore?: boolean } = {},
): Promise<number> {
  return inTransaction(client, () =>
    migrateTarget(client, siloTarget({ siloRuntimeRole }), version, options),
  );
}

/** Offboards a silo database: `retain` revokes the runtime role's access; `destroy` drops the schema. */
export async function offboardSilo(
  client: ClientBase,
  policy: 'retain' | 'destroy',
  siloRuntimeRole = RUNTIME_ROLES.silo,
): Promise<void> {
  await inTransaction(client, async () => {
    await exec(client, lockTarget('silo'));
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    if (policy === 'destroy') {
      await exec(client, sql`DROP SCHEMA IF EXISTS ${ident(SILO_SCHEMA)} CASCADE`);
      await exec(client, sql`DELETE FROM ${ident(ADMIN_SCHEMA)}.targets WHERE target = 'silo'`);
    } else {
      await exec(client, sql`REVOKE USAGE ON SCHEMA ${ident(SILO_SCHEMA)} FROM ${ident(siloRuntimeRole)}`);
      await exec(
        client,
        sql`UPDATE ${ident(ADMIN_SCHEMA)}.targets SET status = 'offboarded', updated_at = now() WHERE target = 'silo'`,
      );
    }
  });
}

/**
 * Empties the silo database's application schema (a move into the silo rolled back, before the silo is removed):
 * its rows go, while the schema, its recorded version and its grants stay. So when the removal fails and the same
 * move is requested again, the restore finds the silo provisioned: CloudFormation does not run the silo's
 * unchanged Custom::SiloTenant again. Idempotent; a silo not provisioned is left as it is.
 */
export async function emptySilo(client: ClientBase): Promise<void> {
  await inTransaction(client, async () => {
    await exec(client, lockTarget('silo'));
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    if (!(await hasTarget(client, 'silo'))) return;
    const tables = TENANT_TABLES.map((t) => sql`${ident(SILO_SCHEMA)}.${ident(t.name)}`);
    await exec(client, sql`TRUNCATE ${join(tables, ', ')}`);
  });
}

export const silo: DataModel = {
  model: 'silo',
  databasePerTenant: true,
  runtimeRole: siloRole,
  bootstrap: async () => undefined,
  afterBootstrap: async () => undefined,
  async provision(client, _tenant, options) {
    const version = options.version ?? LATEST_VERSION;
    const fromVersion = await migrateSilo(client, version, siloRole(options), { restore: options.restore });
    return { schema: SILO_SCHEMA, version, fromVersion };
  },
  offboard: (client, _tenantId, policy, options) => offboardSilo(client, policy, siloRole(options)),
  freeze: (client, _tenantId, options) => setSchemaFrozen(client, siloTarget(options), true),
  unfreeze: (client, _tenantId, options) => setSchemaFrozen(client, siloTarget(options), false),
  thawWithin: (client, _tenantId, options) => thawSchemaWithin(client, siloTarget(options)),
  placed: (client, _tenantId, options) => hasTarget(client, siloTarget(options).target),
  schemaOf: () => SILO_SCHEMA,
  migrationTarget: (_tenantId, options) => siloTarget(options),
  contextSettings: () => [['search_path', SILO_SCHEMA]],
};
