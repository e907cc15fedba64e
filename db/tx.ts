/**
 * Transactions, locks and small catalog helpers for the provisioning code (as the database's administrative
 * user, never the API). Every provisioning operation runs in one transaction per target under a lock on that
 * target, so a retried or concurrent provisioner either finds the work done or waits for it; it never
 * half-applies.
 */
import type { ClientBase } from 'pg';
import { ADMIN_SCHEMA, OWNER_ROLE } from './roles';
import { ident, sql, Sql } from './sql';

/** One advisory-lock key per target; `hashtextextended` is stable across sessions and servers. */
/**
 * The provisioning lock of one target (a tenant, a schema, the bootstrap): a row lock in tenancy.locks, which no
 * runtime role can see, so injected SQL cannot take or hold it (I6). Held until the transaction ends; waits at most
 * lock_timeout.
 */
export const lockBootstrap = () =>
  // Before tenancy.locks exists: an advisory lock (a runtime role could only delay a bootstrap, which retries).
  sql`SELECT pg_advisory_xact_lock(hashtextextended('tenancy:bootstrap', 0))`;

export const lockTarget = (target: string) =>
  sql`WITH t AS (INSERT INTO tenancy.locks (target) VALUES (${target}) ON CONFLICT (target) DO UPDATE SET target = excluded.target RETURNING target) SELECT target FROM t`;

/**
 * The target's lock shared, until the transaction ends: holders of it (restores, each of one tenant of a shared
 * schema) do not wait for each other, and lockTarget (a migration) waits for all of them, as they wait for it.
 * Two statements: the row is made once, then share-locked.
 */
export async function shareTarget(client: ClientBase, target: string): Promise<void> {
  await exec(
    client,
    sql`INSERT INTO tenancy.locks (target) VALUES (${target}) ON CONFLICT (target) DO NOTHING`,
  );
  await exec(client, sql`SELECT target FROM tenancy.locks WHERE target = ${target} FOR SHARE`);
}

export async function exec(client: ClientBase, statement: Sql): Promise<void> {
  await client.query(statement.toQuery());
}

export async function inTransaction<T>(client: ClientBase, work: () => Promise<T>): Promise<T> {
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

export async function serverVersion(client: ClientBase): Promise<number> {
  const r = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Number(r.rows[0].v);
}

export async function roleExists(client: ClientBase, role: string): Promise<boolean> {
  const r = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  return (r.rowCount ?? 0) > 0;
}

export async function currentDatabase(client: ClientBase): Promise<string> {
  const r = await client.query<{ db: string }>('SELECT current_database() AS db');
  return r.rows[0].db;
}

/** An identifier quoted by the driver, for the few utility statements that take no parameters. */
export function quote(identifier: string): string {
  return sql`${ident(identifier)}`.toLiteralSql();
}

/**
 * CREATE ROLE unless it exists. Roles are cluster-wide and advisory locks are per database, so two databases
 * on one server (the local platform's silos) may race: a duplicate is taken as "already there".
 */
export async function ensureRole(client: ClientBase, role: string, attributes: string): Promise<void> {
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
 * Freezes or thaws the runtime principal's writes on every table of a tenant's own schema (bridge, silo): the
 * freeze revokes INSERT, UPDATE and DELETE and keeps SELECT; the thaw grants them again. Under the target's lock,
 * as the owner. Refuses a target that is not active (offboarded data stays unreachable).
 */
export async function setSchemaFrozen(
  client: ClientBase,
  target: { target: string; schema: string; grantee: string },
  frozen: boolean,
): Promise<void> {
  await inTransaction(client, async () => {
    await exec(client, lockTarget(target.target));
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    const state = await client.query<{ status: string }>(
      `SELECT status FROM ${ADMIN_SCHEMA}.targets WHERE target = $1`,
      [target.target],
    );
    if (state.rows[0]?.status !== 'active') {
      throw new Error(
        `${target.target} is ${state.rows[0]?.status ?? 'not provisioned'} in this database: nothing to ${frozen ? 'freeze' : 'unfreeze'}`,
      );
    }
    if (frozen) {
      await exec(
        client,
        sql`REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${ident(target.schema)} FROM ${ident(target.grantee)}`,
      );
    } else {
      await thawSchemaWithin(client, target);
    }
  });
}

/** The thaw of setSchemaFrozen inside the caller's transaction, as the owner role. */
export async function thawSchemaWithin(
  client: ClientBase,
  target: { schema: string; grantee: string },
): Promise<void> {
  await exec(
    client,
    sql`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${ident(target.schema)} TO ${ident(target.grantee)}`,
  );
}
