/**
 * Once per database: the owner role, the model's runtime login role (the only role besides the owner that may
 * connect), the bookkeeping schema, and PUBLIC's default privileges taken away (B3). Then the model's own part
 * (db/models). Safe to run again. Runs as the database's administrative user (the RDS master user: CREATEROLE
 * and CREATEDB, not a superuser), never as the API.
 */
import type { ClientBase } from 'pg';
import type { IsolationModel } from './naming';
import { LATEST_VERSION } from './migrations';
import { dataModel, ModelOptions } from './models';
import {
  ADMIN_SCHEMA,
  OWNER_ROLE,
  RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT,
  RUNTIME_STATEMENT_TIMEOUT,
} from './roles';
import { ident, sql } from './sql';
import {
  currentDatabase,
  ensureRole,
  exec,
  inTransaction,
  lockTarget,
  quote,
  roleExists,
  serverVersion,
} from './tx';

export interface BootstrapOptions extends ModelOptions {
  /**
   * Passwords for the runtime login roles (the local platform). In AWS they sign in with IAM tokens instead,
   * and have no password.
   * @default - passwords unchanged; `rds_iam` granted where it exists
   */
  readonly runtimePasswords?: Partial<Record<IsolationModel, string>>;
  /**
   * The schema version the model's shared part is brought to (pool: the shared tables).
   * @default LATEST_VERSION
   */
  readonly version?: number;
}

export async function bootstrapDatabase(
  client: ClientBase,
  model: IsolationModel,
  options: BootstrapOptions = {},
): Promise<void> {
  const impl = dataModel(model);
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
    const role = impl.runtimeRole(options);
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
    await impl.bootstrap(client, options);
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
  await impl.afterBootstrap(client, { ...options, version: options.version ?? LATEST_VERSION });
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
