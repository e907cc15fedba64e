/**
 * The migration runner: brings one target (the pool schema, one bridge tenant's schema, or a silo database's
 * schema) to a version of db/migrations, as the owner role, inside the caller's transaction, under the target's
 * lock. The provisioner, the local platform and fleet-wide upgrades all migrate through this one function.
 */
import type { ClientBase } from 'pg';
import { validateTenantId, type IsolationModel } from './naming';
import { MIGRATIONS, type Migration } from './migrations';
import { ADMIN_SCHEMA, OWNER_ROLE, RUNTIME_TABLE_PRIVILEGES } from './roles';
import { ident, raw, sql } from './sql';
import { exec, lockTarget } from './tx';

/** One schema the migrations apply to. */
export interface MigrationTarget {
  /** Its key in tenancy.targets and its lock: `pool`, `bridge:<tenant>` or `silo`. */
  readonly target: string;
  readonly model: IsolationModel;
  readonly schema: string;
  /** The only role granted DML on its tables. */
  readonly grantee: string;
  /** Which rendering of each migration it takes. */
  readonly kind: 'pool' | 'tenant';
  /**
   * A schema of one tenant in a shared database (bridge): each of its tables admits only that tenant's verified
   * credential, so SET ROLE to this tenant's role reaches nothing without it (I2).
   */
  readonly tenantId?: string;
}

export function checkVersionExists(version: number, migrations: readonly Migration[] = MIGRATIONS): void {
  if (!migrations.some((m) => m.version === version)) {
    throw new Error(
      `schema version ${version} does not exist: this provisioner knows versions ${migrations.map((m) => m.version).join(', ')}`,
    );
  }
}

/**
 * Creates the target's schema if needed and brings it to `toVersion`, inside the caller's transaction, as the
 * owner role. Grants the target's grantee DML on every table and view of the schema, and nothing else.
 * Returns the version the target was at.
 */
export async function migrateTarget(
  client: ClientBase,
  target: MigrationTarget,
  toVersion: number,
  options: { restore?: boolean; migrations?: readonly Migration[] } = {},
): Promise<number> {
  const migrations = options.migrations ?? MIGRATIONS;
  checkVersionExists(toVersion, migrations);
  await exec(client, lockTarget(target.target));
  await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
  const current = await client.query<{ version: number; status: string }>(
    `SELECT version, status FROM ${ADMIN_SCHEMA}.targets WHERE target = $1 FOR UPDATE`,
    [target.target],
  );
  if (current.rows[0]?.status === 'offboarded' && !options.restore)
    throw new RetiredTenantError(target.target);
  const from = current.rows[0]?.version ?? 0;
  if (from > 0 && target.kind === 'tenant' && (await isFrozen(client, target))) {
    throw new FrozenTargetError(target.target);
  }
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
  for (const m of migrations) {
    if (m.version > from && m.version <= toVersion) {
      const statements = target.kind === 'pool' ? m.pool : m.tenant;
      if (statements.trim() !== '') await client.query(statements);
      if (target.tenantId !== undefined && m.bridge) {
        const literal = sql`${validateTenantId(target.tenantId, 'migration target')}`.toLiteralSql();
        // A function, so nothing in the literal is read as a replacement pattern ($&, $').
        await client.query(m.bridge.replaceAll('{{tenant}}', () => literal));
      }
      const backfill = target.kind === 'pool' ? m.backfill?.pool : m.backfill?.tenant;
      if (backfill) await withRlsUnforced(client, target.schema, backfill);
    }
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

/**
 * Runs `statements` with the schema's forced-RLS tables unforced, then forces them again, all in the caller's
 * transaction (see Migration.backfill).
 */
async function withRlsUnforced(client: ClientBase, schema: string, statements: string): Promise<void> {
  const forced = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relforcerowsecurity ORDER BY c.relname`,
    [schema],
  );
  const tables = forced.rows.map((r) => sql`${ident(schema)}.${ident(r.name)}`.toLiteralSql());
  for (const t of tables) await client.query(`ALTER TABLE ${t} NO FORCE ROW LEVEL SECURITY`);
  await client.query(statements);
  for (const t of tables) await client.query(`ALTER TABLE ${t} FORCE ROW LEVEL SECURITY`);
}

/**
 * A tenant schema frozen while its data moves (its grantee holds SELECT but not INSERT on some table: see
 * DataModel.freeze). Migrating it then would give a table the migration adds full DML by default privileges, and
 * change what the move is copying: it waits until the move is over.
 */
async function isFrozen(client: ClientBase, target: MigrationTarget): Promise<boolean> {
  const r = await client.query(
    `SELECT 1 FROM pg_catalog.pg_tables t
      WHERE t.schemaname = $1
        AND has_table_privilege($2, format('%I.%I', t.schemaname, t.tablename), 'SELECT')
        AND NOT has_table_privilege($2, format('%I.%I', t.schemaname, t.tablename), 'INSERT')
      LIMIT 1`,
    [target.schema, target.grantee],
  );
  return (r.rowCount ?? 0) > 0;
}

export class FrozenTargetError extends Error {
  constructor(target: string) {
    super(
      `${target} is frozen while its data moves (npm run tenant -- move or restore --force), or is the silo a move out of it kept until its purge: it is migrated after the move (run the migration again then); a kept silo goes with its purge`,
    );
    this.name = 'FrozenTargetError';
  }
}

/** An offboarded tenant's data is still there: it comes back only through an explicit restore. */
export class RetiredTenantError extends Error {
  constructor(target: string) {
    super(
      `${target} was offboarded with its data kept: it is provisioned again only by an explicit restore (the onboarding request's "restore": true), never as a new tenant`,
    );
    this.name = 'RetiredTenantError';
  }
}

export interface TargetState {
  readonly target: string;
  readonly model: IsolationModel;
  readonly schema: string;
  readonly version: number;
  readonly status: 'active' | 'offboarded';
}

export async function targetState(client: ClientBase, target: string): Promise<TargetState | undefined> {
  const r = await client.query(
    `SELECT target, model, schema_name AS schema, version, status FROM ${ADMIN_SCHEMA}.targets WHERE target = $1`,
    [target],
  );
  return r.rows[0] as TargetState | undefined;
}

/** Whether tenancy.targets records `target` (as the owner role). */
export async function hasTarget(client: ClientBase, target: string): Promise<boolean> {
  const r = await client.query(`SELECT 1 FROM ${ADMIN_SCHEMA}.targets WHERE target = $1`, [target]);
  return (r.rowCount ?? 0) > 0;
}

/** Every bridge tenant below `version`, for a fleet-wide schema upgrade. */
export async function bridgeTenantsBelow(client: ClientBase, version: number): Promise<string[]> {
  const r = await client.query<{ target: string }>(
    `SELECT target FROM ${ADMIN_SCHEMA}.targets WHERE model = 'bridge' AND status = 'active' AND version < $1 ORDER BY target`,
    [version],
  );
  return r.rows.map((row) => row.target.slice('bridge:'.length));
}
