/**
 * Provisioning: everything that creates or removes tenant structures in PostgreSQL. It runs as the database's
 * administrative user (the RDS master user: CREATEROLE and CREATEDB, not a superuser) from the provisioner
 * Lambda and from the local platform, never from the API.
 *
 * Every operation is idempotent and runs in one transaction per target under an advisory lock, so a retried
 * or concurrent provisioner either finds the work done or waits for it; it never half-applies.
 */
import { createHash } from 'crypto';
import type { ClientBase } from 'pg';
import { IsolationModel, tenantDbNames, validateTenantId } from './naming';
import { LATEST_VERSION, MIGRATIONS } from './migrations';
import {
  ADMIN_SCHEMA,
  OWNER_ROLE,
  POOL_SCHEMA,
  RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT,
  RUNTIME_ROLES,
  RUNTIME_STATEMENT_TIMEOUT,
  RUNTIME_TABLE_PRIVILEGES,
  SILO_SCHEMA,
} from './roles';
import { ident, sql, Sql, raw } from './sql';

export interface BootstrapOptions {
  /**
   * Passwords for the runtime login roles (the local platform). In AWS they sign in with IAM tokens instead,
   * and have no password.
   * @default - passwords unchanged; `rds_iam` granted where it exists
   */
  readonly runtimePasswords?: Partial<Record<IsolationModel, string>>;
  /**
   * The runtime login role for a silo database. On RDS each silo is its own instance and this is `app_silo`;
   * the local platform keeps several silo databases on one server and gives each its own login role.
   * @default 'app_silo'
   */
  readonly siloRuntimeRole?: string;
}

export interface BridgeOptions {
  /** @default LATEST_VERSION */
  readonly version?: number;
  /** Opaque schema and role names (see `tenantDbNames`); the API must use the same key. */
  readonly namingKey?: string;
}

export interface TargetState {
  readonly target: string;
  readonly model: IsolationModel;
  readonly schema: string;
  readonly version: number;
  readonly status: 'active' | 'offboarded';
}

/** One advisory-lock key per target; `hashtextextended` is stable across sessions and servers. */
const lockTarget = (target: string) =>
  sql`SELECT pg_advisory_xact_lock(hashtextextended(${`tenancy:${target}`}, 0))`;

async function exec(client: ClientBase, statement: Sql): Promise<void> {
  await client.query(statement.toQuery());
}

async function inTransaction<T>(client: ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

async function serverVersion(client: ClientBase): Promise<number> {
  const r = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Number(r.rows[0].v);
}

async function roleExists(client: ClientBase, role: string): Promise<boolean> {
  const r = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  return (r.rowCount ?? 0) > 0;
}

/**
 * CREATE ROLE unless it exists. Roles are cluster-wide and advisory locks are per database, so two databases
 * on one server (the local platform's silos) may race: a duplicate is taken as "already there".
 */
async function ensureRole(client: ClientBase, role: string, attributes: string): Promise<void> {
  if (await roleExists(client, role)) return;
  await client.query('SAVEPOINT ensure_role');
  try {
    await client.query(`CREATE ROLE ${quote(role)} ${attributes}`);
    await client.query('RELEASE SAVEPOINT ensure_role');
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== '42710' && code !== '23505') throw e;
    await client.query('ROLLBACK TO SAVEPOINT ensure_role');
  }
}

/**
 * On PostgreSQL 16+, a non-superuser CREATEROLE user (the RDS master) becomes an ADMIN member of every role
 * it creates, and every later GRANT it makes walks that membership list: with thousands of tenant roles,
 * granting one took 0.3 ms at 0 tenants and 22 ms at 5,000 (bench/db.ts). So tenant roles are created and
 * administered by one of 64 NOLOGIN CREATEROLE "role admin" roles, chosen by a hash of the role name; each
 * holds 1/64th of the memberships, and the master only SETs ROLE to them inside the transaction.
 */
export const ROLE_ADMIN_BUCKETS = 64;
const roleAdminName = (bucket: number) => `tenant_role_admin_${String(bucket).padStart(2, '0')}`;
export function roleAdminFor(role: string): string {
  return roleAdminName(createHash('sha256').update(role).digest().readUInt16BE(0) % ROLE_ADMIN_BUCKETS);
}

async function actAsRoleAdmin(client: ClientBase, role: string): Promise<void> {
  if ((await serverVersion(client)) < 160000) return;
  const admin = roleAdminFor(role);
  if (!(await roleExists(client, admin))) {
    throw new Error(
      `role admin "${admin}" does not exist: run the database bootstrap (Custom::DatabaseBootstrap) for this bridge database first`,
    );
  }
  await exec(client, sql`SET LOCAL ROLE ${ident(admin)}`);
}

/** Bridge bootstrap: all role-admin buckets at once, under the bootstrap lock (no race between tenants). */
async function ensureRoleAdmins(client: ClientBase): Promise<void> {
  if ((await serverVersion(client)) < 160000) return;
  for (let i = 0; i < ROLE_ADMIN_BUCKETS; i++) {
    const admin = roleAdminName(i);
    await ensureRole(client, admin, 'NOLOGIN NOINHERIT CREATEROLE');
    await exec(client, sql`GRANT ${ident(admin)} TO CURRENT_USER WITH INHERIT FALSE, SET TRUE`);
  }
}

/**
 * Once per database: the owner role, the model's runtime login role (the only role besides the owner that may
 * connect), the bookkeeping schema, and PUBLIC's default privileges taken away (B3). Safe to run again.
 */
export async function bootstrapDatabase(
  client: ClientBase,
  model: IsolationModel,
  options: BootstrapOptions = {},
): Promise<void> {
  const pg16 = (await serverVersion(client)) >= 160000;
  await inTransaction(client, async () => {
    await exec(client, lockTarget('bootstrap'));
    await ensureRole(client, OWNER_ROLE, 'NOLOGIN NOINHERIT');
    // The provisioning user acts as the owner only through SET ROLE, never by inheritance.
    await exec(
      client,
      pg16
        ? sql`GRANT ${ident(OWNER_ROLE)} TO CURRENT_USER WITH INHERIT FALSE, SET TRUE`
        : sql`GRANT ${ident(OWNER_ROLE)} TO CURRENT_USER`,
    );
    const role = model === 'silo' ? (options.siloRuntimeRole ?? RUNTIME_ROLES.silo) : RUNTIME_ROLES[model];
    // NOINHERIT: app_bridge holds no tenant's privileges until it SETs that tenant's role (B2).
    await ensureRole(client, role, 'LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT');
    await assertRuntimeRoleAttributes(client, role);
    const password = options.runtimePasswords?.[model];
    if (password !== undefined) {
      await client.query(`ALTER ROLE ${quote(role)} PASSWORD ${sql`${password}`.toLiteralSql()}`);
    }
    if (await roleExists(client, 'rds_iam')) await exec(client, sql`GRANT rds_iam TO ${ident(role)}`);
    // Every session of the runtime role starts with these limits, at no per-query cost: one tenant's runaway
    // query cannot hold a pooled connection, and a transaction left open by a bug is ended.
    // (Utility statements take no parameters: the values are rendered as literals by the driver.)
    await client.query(
      sql`ALTER ROLE ${ident(role)} SET statement_timeout = ${RUNTIME_STATEMENT_TIMEOUT}`.toLiteralSql(),
    );
    await client.query(
      sql`ALTER ROLE ${ident(role)} SET idle_in_transaction_session_timeout = ${RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT}`.toLiteralSql(),
    );

    const db = ident(await currentDatabase(client));
    await exec(client, sql`GRANT CONNECT ON DATABASE ${db} TO ${ident(role)}`);
    // The owner creates the schemas it owns (tenancy, pool, app, t_<tenant>).
    await exec(client, sql`GRANT CREATE ON DATABASE ${db} TO ${ident(OWNER_ROLE)}`);
    if (model === 'bridge') await ensureRoleAdmins(client);
    // B3: PUBLIC may not connect, create temporary tables, or use the public schema.
    await exec(client, sql`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    await exec(client, sql`REVOKE ALL ON SCHEMA public FROM PUBLIC`);

    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    await exec(client, sql`CREATE SCHEMA IF NOT EXISTS ${ident(ADMIN_SCHEMA)}`);
    await exec(client, sql`REVOKE ALL ON SCHEMA ${ident(ADMIN_SCHEMA)} FROM PUBLIC`);
    // B3/B6: functions the owner creates are not executable by PUBLIC unless granted.
    await exec(
      client,
      sql`ALTER DEFAULT PRIVILEGES FOR ROLE ${ident(OWNER_ROLE)} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`,
    );
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${ADMIN_SCHEMA}.targets (
        target text PRIMARY KEY,
        model text NOT NULL CHECK (model IN ('pool', 'bridge', 'silo')),
        schema_name text NOT NULL,
        version integer NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'offboarded')),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS ${ADMIN_SCHEMA}.pool_tenants (
        tenant_id text PRIMARY KEY,
        name text NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'offboarded')),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `);
  });
}

async function currentDatabase(client: ClientBase): Promise<string> {
  const r = await client.query<{ db: string }>('SELECT current_database() AS db');
  return r.rows[0].db;
}

function quote(identifier: string): string {
  return sql`${ident(identifier)}`.toLiteralSql();
}

/** Refuses a runtime role that could skip Row-Level Security or own tenant data (P1, P2). */
async function assertRuntimeRoleAttributes(client: ClientBase, role: string): Promise<void> {
  const r = await client.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
    'SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1',
    [role],
  );
  const { rolsuper, rolbypassrls } = r.rows[0];
  if (rolsuper || rolbypassrls) {
    throw new Error(
      `runtime role "${role}" is ${rolsuper ? 'SUPERUSER' : 'BYPASSRLS'}, which skips Row-Level Security: ` +
        `run ALTER ROLE ${role} NOSUPERUSER NOBYPASSRLS as a superuser, then provision again`,
    );
  }
}

/**
 * Creates `schema` if needed and brings it to `toVersion`, inside the caller's transaction, as the owner role.
 * Grants the runtime principal DML on every table and view of the schema, and nothing else.
 */
async function migrateSchema(
  client: ClientBase,
  target: { target: string; model: IsolationModel; schema: string; grantee: string; kind: 'pool' | 'tenant' },
  toVersion: number,
): Promise<number> {
  if (!MIGRATIONS.some((m) => m.version === toVersion)) {
    throw new Error(
      `schema version ${toVersion} does not exist: this provisioner knows versions ${MIGRATIONS.map((m) => m.version).join(', ')}`,
    );
  }
  await exec(client, lockTarget(target.target));
  await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
  const current = await client.query<{ version: number }>(
    `SELECT version FROM ${ADMIN_SCHEMA}.targets WHERE target = $1 FOR UPDATE`,
    [target.target],
  );
  const from = current.rows[0]?.version ?? 0;
  if (from > toVersion) {
    throw new Error(
      `${target.target} is at schema version ${from}, newer than the requested ${toVersion}: downgrades are not supported; deploy the newer provisioner`,
    );
  }
  const schema = ident(target.schema);
  const grantee = ident(target.grantee);
  await exec(client, sql`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await exec(client, sql`REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC`);
  await exec(client, sql`GRANT USAGE ON SCHEMA ${schema} TO ${grantee}`);
  // Default privileges, set before any table exists, grant each table and view as a migration creates it:
  // no GRANT ... ON ALL TABLES IN SCHEMA, which scans the whole catalog and slows as tenants accumulate.
  await exec(
    client,
    sql`ALTER DEFAULT PRIVILEGES FOR ROLE ${ident(OWNER_ROLE)} IN SCHEMA ${schema}
        GRANT ${raw(RUNTIME_TABLE_PRIVILEGES)} ON TABLES TO ${grantee}`,
  );
  await exec(client, sql`SET LOCAL search_path = ${schema}`);
  for (const m of MIGRATIONS) {
    if (m.version > from && m.version <= toVersion)
      await client.query(target.kind === 'pool' ? m.pool : m.tenant);
  }
  await exec(client, sql`SET LOCAL search_path = pg_catalog`);
  await client.query(
    `INSERT INTO ${ADMIN_SCHEMA}.targets (target, model, schema_name, version, status)
     VALUES ($1, $2, $3, $4, 'active')
     ON CONFLICT (target) DO UPDATE SET version = EXCLUDED.version, status = 'active', updated_at = now()`,
    [target.target, target.model, target.schema, toVersion],
  );
  await client.query('RESET ROLE');
  return from;
}

const poolTarget = () => ({
  target: 'pool',
  model: 'pool' as const,
  schema: POOL_SCHEMA,
  grantee: RUNTIME_ROLES.pool,
  kind: 'pool' as const,
});

/** Pool database: bootstrap, then the shared tables at `version`. */
export async function migratePool(client: ClientBase, version = LATEST_VERSION): Promise<void> {
  await inTransaction(client, () => migrateSchema(client, poolTarget(), version));
}

/** Silo database: its application schema at `version`, readable by the silo's runtime role only. */
export async function migrateSilo(
  client: ClientBase,
  version = LATEST_VERSION,
  siloRuntimeRole = RUNTIME_ROLES.silo,
): Promise<void> {
  await inTransaction(client, () =>
    migrateSchema(
      client,
      { target: 'silo', model: 'silo', schema: SILO_SCHEMA, grantee: siloRuntimeRole, kind: 'tenant' },
      version,
    ),
  );
}

/** Registers (or re-activates) a pool tenant. Its rows can only exist once it is registered. */
export async function registerPoolTenant(client: ClientBase, tenantId: string, name: string): Promise<void> {
  validateTenantId(tenantId, 'registerPoolTenant');
  await inTransaction(client, async () => {
    await exec(client, lockTarget(`pool:${tenantId}`));
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    await exec(
      client,
      sql`INSERT INTO ${ident(ADMIN_SCHEMA)}.pool_tenants (tenant_id, name, status) VALUES (${tenantId}, ${name}, 'active')
          ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name, status = 'active', updated_at = now()`,
    );
  });
}

/**
 * Offboards a pool tenant. `retain` keeps every row and marks the tenant offboarded (the API refuses it);
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
    if (policy === 'destroy') {
      await exec(client, sql`SELECT set_config('app.tenant_id', ${tenantId}, true)`);
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

/**
 * A bridge tenant: its NOLOGIN role, its schema (owned by the owner role, USAGE for its own role only), the
 * application tables at `version`, default privileges for tables that later migrations add, and membership
 * of app_bridge in the tenant role without inheritance (PG16+: WITH INHERIT FALSE, SET TRUE).
 */
export async function provisionBridgeTenant(
  client: ClientBase,
  tenantId: string,
  options: BridgeOptions = {},
): Promise<{ schema: string; role: string; fromVersion: number }> {
  validateTenantId(tenantId, 'provisionBridgeTenant');
  const version = options.version ?? LATEST_VERSION;
  const { schema, role } = tenantDbNames(tenantId, options.namingKey);
  const pg16 = (await serverVersion(client)) >= 160000;
  const fromVersion = await inTransaction(client, async () => {
    await exec(client, lockTarget(`bridge:${tenantId}`));
    await actAsRoleAdmin(client, role);
    await ensureRole(client, role, 'NOLOGIN NOINHERIT');
    await exec(
      client,
      pg16
        ? sql`GRANT ${ident(role)} TO ${ident(RUNTIME_ROLES.bridge)} WITH INHERIT FALSE, SET TRUE`
        : sql`GRANT ${ident(role)} TO ${ident(RUNTIME_ROLES.bridge)}`,
    );
    await client.query('RESET ROLE');
    return migrateSchema(
      client,
      { target: `bridge:${tenantId}`, model: 'bridge', schema, grantee: role, kind: 'tenant' },
      version,
    );
  });
  return { schema, role, fromVersion };
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
  const { schema, role } = tenantDbNames(tenantId, namingKey);
  const target = `bridge:${tenantId}`;
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

/** Every bridge tenant below `version`, for a fleet-wide schema upgrade. */
export async function bridgeTenantsBelow(client: ClientBase, version: number): Promise<string[]> {
  const r = await client.query<{ target: string }>(
    `SELECT target FROM ${ADMIN_SCHEMA}.targets WHERE model = 'bridge' AND status = 'active' AND version < $1 ORDER BY target`,
    [version],
  );
  return r.rows.map((row) => row.target.slice('bridge:'.length));
}

export async function targetState(client: ClientBase, target: string): Promise<TargetState | undefined> {
  const r = await client.query(
    `SELECT target, model, schema_name AS schema, version, status FROM ${ADMIN_SCHEMA}.targets WHERE target = $1`,
    [target],
  );
  return r.rows[0] as TargetState | undefined;
}
