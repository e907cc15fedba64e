/**
 * What the tenant context does with a pooled connection after a unit of work (db/tenant-context.ts): the
 * transaction status the server reported, the resets after a failed unit, the names of the API's prepared
 * statements, and how a connection in an unknown state is ended rather than handed to the next tenant.
 */
import type { PoolClient } from 'pg';
import { isConnectionFault } from './faults';
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
export async function abandon(client: PoolClient, error: unknown): Promise<void> {
  if (isConnectionFault(error)) return destroy(client, error);
  try {
    await client.query('ROLLBACK');
    client.release();
  } catch (e) {
    destroy(client, e);
  }
}

/** Closes the socket now (a half-open socket would otherwise linger until TCP gives up) and drops the client. */
export function destroy(client: PoolClient, error: unknown): void {
  forgetParsedStatements(client);
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  client.release(error instanceof Error ? error : new Error(String(error)));
}
