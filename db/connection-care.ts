/**
 * What the tenant context does with a pooled connection after a unit of work (db/tenant-context.ts): the
 * transaction status the server reported, the resets after a failed unit, the names of the API's prepared
 * statements, and how a connection in an unknown state is ended rather than handed to the next tenant.
 */
import { Client, Pool, PoolClient, PoolConfig } from 'pg';
import { isConnectionFault } from './faults';
import { asUser, isSlotBusy } from './slots';
import { forgetParsedStatements } from './unit-of-work';

export function txStatus(client: PoolClient): string | undefined {
  return (client as unknown as { _txStatus?: string })._txStatus;
}

/** After a 26000: every prepared statement of the connection gone and forgotten (the connection is kept). */
export async function resetStatements(client: PoolClient): Promise<boolean> {
  try {
    await client.query('DEALLOCATE ALL');
    forgetParsedStatements(client);
    return true;
  } catch (e) {
    destroy(client, e);
    return false;
  }
}

/**
 * After a failed unit: the role's defaults back (one round trip, errors only), then back to the pool. RESET ALL
 * leaves `role` alone, so RESET ROLE too: a session-level SET ROLE to a tenant role (bridge) would otherwise stay
 * the connection's role between units (enter() sets it back to none for each unit it starts).
 */
export async function resetSession(client: PoolClient): Promise<boolean> {
  try {
    await client.query('RESET ALL; RESET ROLE');
    client.release();
    return true;
  } catch (e) {
    destroy(client, e);
    return false;
  }
}

/**
 * Each distinct statement text gets a protocol-level statement name, parsed once per connection, so its plan is
 * kept. Past MAX_NAMED_STATEMENTS texts (generated SQL, which the API does not write) statements go unnamed.
 */
const statementNames = new Map<string, string>();
const MAX_NAMED_STATEMENTS = 256;
export function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
    statementNames.set(text, (name = `tf_${statementNames.size + 1}`));
  }
  return name;
}

/**
 * Ends a failed transaction. After a connection fault (a timeout, a cut socket) the connection's protocol state is
 * unknown: a late reply could answer the next query, another tenant's. So it is destroyed at once, without even a
 * ROLLBACK (the server rolls back a transaction whose connection goes). Otherwise: ROLLBACK, then back to the
 * pool; if even ROLLBACK fails the connection is destroyed rather than returned (a client released
 * mid-transaction poisons the pool).
 */
export async function abandon(client: PoolClient, error: unknown, pool?: Pool): Promise<void> {
  if (isConnectionFault(error)) {
    const { processID: pid, user } = client as unknown as { processID?: number | null; user?: string };
    destroy(client, error);
    if (pool && pid && user && isClientTimeout(error)) await endBackend(pool, pid, user);
    return;
  }
  try {
    await client.query('ROLLBACK');
    client.release();
  } catch (e) {
    destroy(client, e);
  }
}

/** The driver stopped waiting for the server (its query timeout): the server may still be working on the unit. */
function isClientTimeout(e: unknown): boolean {
  return (e as { message?: unknown })?.message === 'Query read timeout';
}

/**
 * Ends the backend a timed-out unit of work left running, from a new connection as the same login role (a role
 * may end its own backends; with one login role per connection, db/slots.ts, no other connection of the pool
 * could), waiting up to a second for it to go. Closing the socket is not enough: PostgreSQL notices a gone client
 * only when it next writes to it, and SQL in the unit may have turned off its own statement timeout (SET LOCAL)
 * while it holds locks that stall every tenant of the cell, or a move's freeze (I6). The new connection is one
 * nobody else used (no SQL can have left a session-level SET ROLE on it), it takes the slot role's second seat,
 * and only a backend whose current statement began before the timeout is ended (its pid, if freed meanwhile,
 * could be a new backend's). Returns whether it ended one; best effort: the server's own limits stay the backstop.
 */
export async function endBackend(pool: Pool, pid: number, user: string): Promise<boolean> {
  const options = (pool as unknown as { options: PoolConfig }).options;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const client = new Client(asUser(options, user));
    client.on('error', () => undefined);
    try {
      await client.connect();
      const r = await client.query<{ ended: boolean }>(
        `SELECT pg_catalog.pg_terminate_backend(a.pid, 1000) AS ended FROM pg_catalog.pg_stat_activity a
          WHERE a.pid = $1::pg_catalog.int4 AND a.query_start < pg_catalog.now() - interval '1 second'`,
        [pid],
      );
      return r.rows[0]?.ended === true;
    } catch (e) {
      // The slot's second seat is taken for a moment by a connection that is leaving it (db/slots.ts).
      if (!isSlotBusy(e) || attempt === 3) return false;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return false;
}

/** Closes the socket now (a half-open socket would otherwise linger until TCP gives up) and drops the client. */
export function destroy(client: PoolClient, error: unknown): void {
  forgetParsedStatements(client);
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  client.release(error instanceof Error ? error : new Error(String(error)));
}
