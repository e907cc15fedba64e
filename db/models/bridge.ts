/**
 * Bridge: one schema and one NOLOGIN role per tenant on a shared server. The runtime login role holds no
 * tenant's privileges (NOINHERIT; PG16+: WITH INHERIT FALSE, SET TRUE) until it SETs the tenant's role inside
 * the transaction; privileges are the boundary, `search_path` only resolves the tenant's unqualified names.
 */
import type { ClientBase } from 'pg';
import { tenantDbNames, validateTenantId } from '../naming';
import { LATEST_VERSION } from '../migrations';
import { hasTarget, migrateTarget, MigrationTarget } from '../migrate';
import { actAsRoleAdmin, ensureRoleAdmins } from '../role-admin';
import { ADMIN_SCHEMA, OWNER_ROLE, RUNTIME_ROLES } from '../roles';
import { ident, sql } from '../sql';
import {
  ensureRole,
  exec,
  inTransaction,
  lockTarget,
  roleExists,
  serverVersion,
  setSchemaFrozen,
  thawSchemaWithin,
} from '../tx';
import type { DataModel, ModelOptions, ProvisionOptions } from './model';

const bridgeTarget = (tenantId: string, namingKey?: string): MigrationTarget => {
  const { schema, role } = tenantDbNames(tenantId, namingKey);
  return { target: `bridge:${tenantId}`, model: 'bridge', schema, grantee: role, kind: 'tenant', tenantId };
};

/**
 * A bridge tenant: its NOLOGIN role, its schema (owned by the owner role, USAGE for its own role only), the
 * application tables at `version`, default privileges for tables that later migrations add, and membership
 * of app_bridge in the tenant role without inheritance (PG16+: WITH INHERIT FALSE, SET TRUE).
 */
export async function provisionBridgeTenant(
  client: ClientBase,
  tenantId: string,
  options: ProvisionOptions = {},
): Promise<{ schema: string; role: string; fromVersion: number }> {
  validateTenantId(tenantId, 'provisionBridgeTenant');
  const version = options.version ?? LATEST_VERSION;
  const target = bridgeTarget(tenantId, options.namingKey);
  const pg16 = (await serverVersion(client)) >= 160000;
  const fromVersion = await inTransaction(client, async () => {
    await exec(client, lockTarget(target.target));
    await actAsRoleAdmin(client, target.grantee);
    await ensureRole(client, target.grantee, 'NOLOGIN NOINHERIT');
    await exec(
      client,
      pg16
        ? sql`GRANT ${ident(target.grantee)} TO ${ident(RUNTIME_ROLES.bridge)} WITH INHERIT FALSE, SET TRUE`
        : sql`GRANT ${ident(target.grantee)} TO ${ident(RUNTIME_ROLES.bridge)}`,
    );
    await client.query('RESET ROLE');
    return migrateTarget(client, target, version, { restore: options.restore });
  });
  return { schema: target.schema, role: target.grantee, fromVersion };
}

/**
 * Offboards a bridge tenant. `retain` keeps the schema and its rows but takes away every path to them:
 * app_bridge loses the tenant role, the tenant role loses USAGE. `destroy` drops the schema and the role.
 */
export async function offboardBridgeTenant(
  client: ClientBase,
  tenantId: string,
  policy: 'retain' | 'destroy',
  namingKey?: string,
): Promise<void> {
  validateTenantId(tenantId, 'offboardBridgeTenant');
  const { target, schema, grantee: role } = bridgeTarget(tenantId, namingKey);
  await inTransaction(client, async () => {
    await exec(client, lockTarget(target));
    if (!(await roleExists(client, role))) return;
    await actAsRoleAdmin(client, role);
    await exec(client, sql`REVOKE ${ident(role)} FROM ${ident(RUNTIME_ROLES.bridge)}`);
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    if (policy === 'destroy') {
      await exec(client, sql`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
      await exec(client, sql`DELETE FROM ${ident(ADMIN_SCHEMA)}.targets WHERE target = ${target}`);
      await client.query('RESET ROLE');
      await actAsRoleAdmin(client, role);
      await exec(client, sql`DROP ROLE ${ident(role)}`);
    } else {
      await exec(client, sql`REVOKE USAGE ON SCHEMA ${ident(schema)} FROM ${ident(role)}`);
      await exec(
        client,
        sql`UPDATE ${ident(ADMIN_SCHEMA)}.targets SET status = 'offboarded', updated_at = now() WHERE target = ${target}`,
      );
    }
  });
}

export const bridge: DataModel = {
  model: 'bridge',
  databasePerTenant: false,
  runtimeRole: () => RUNTIME_ROLES.bridge,
  bootstrap: (client) => ensureRoleAdmins(client),
  afterBootstrap: async () => undefined,
  async provision(client, tenant, options) {
    const version = options.version ?? LATEST_VERSION;
    const { schema, fromVersion } = await provisionBridgeTenant(client, tenant.id, options);
    return { schema, version, fromVersion };
  },
  offboard: (client, tenantId, policy, options: ModelOptions) =>
    offboardBridgeTenant(client, tenantId, policy, options.namingKey),
  freeze: (client, tenantId, options) =>
    setSchemaFrozen(client, bridgeTarget(validateTenantId(tenantId, 'freeze'), options.namingKey), true),
  unfreeze: (client, tenantId, options) =>
    setSchemaFrozen(client, bridgeTarget(validateTenantId(tenantId, 'unfreeze'), options.namingKey), false),
  thawWithin: (client, tenantId, options) =>
    thawSchemaWithin(client, bridgeTarget(validateTenantId(tenantId, 'thaw'), options.namingKey)),
  placed: (client, tenantId, options) => hasTarget(client, bridgeTarget(tenantId, options.namingKey).target),
  schemaOf: (tenantId, options) => tenantDbNames(tenantId, options.namingKey).schema,
  migrationTarget: (tenantId, options) => bridgeTarget(tenantId, options.namingKey),
  // Privileges are the boundary (the role); search_path only resolves the tenant's unqualified names.
  contextSettings: (tenantId, options) => {
    const { role, schema } = tenantDbNames(tenantId, options.namingKey);
    return [
      ['role', role],
      ['search_path', sql`${ident(schema)}`.toLiteralSql()],
    ];
  },
};
