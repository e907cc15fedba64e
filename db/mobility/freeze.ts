/**
 * The write freeze of a move (M1, M2). Freezing a tenant (DataModel.freeze) refuses its writes from the next
 * statement on; a transaction that passed its checks before the freeze may still be running and commit. So after
 * the freeze commits, the mover waits until every transaction the runtime role had open in the database then has
 * ended (as CREATE INDEX CONCURRENTLY waits for older snapshots): from then on, every write acknowledged before
 * the freeze is committed, and the export's snapshot sees it. Only the runtime role's sessions count: the
 * tenant's writes can come from nowhere else; operators' sessions and autovacuum are not waited for.
 */
import type { ClientBase } from 'pg';

export class FreezeTimeout extends Error {
  constructor(waitedMs: number, left: readonly string[]) {
    super(
      `${left.length} transaction(s) of the runtime role that began before the freeze were still running after ${waitedMs} ms (${left.join('; ')}): the operation stops and the tenant serves again; run it again later (an export of another tenant of this cell, say, may still be reading)`,
    );
    this.name = 'FreezeTimeout';
  }
}

/**
 * Waits until every transaction that `runtimeRole`'s sessions (its slot roles' too, db/slots.ts) had open in this
 * database when it was called has ended. The API's transactions end within their statement and idle-in-transaction timeouts (5 s, 10 s), so
 * the default bound covers them; an export of another tenant of the same cell (a read-only snapshot that can run
 * for minutes) is waited for too, and past the bound the move stops and can be run again once it has finished.
 */
export async function waitForOlderTransactions(
  client: ClientBase,
  runtimeRole: string,
  timeoutMs = 20000,
): Promise<void> {
  const r = await client.query<{ vxid: string }>(
    `SELECT l.virtualxid AS vxid
       FROM pg_catalog.pg_locks l
       JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'virtualxid' AND l.granted AND l.pid <> pg_backend_pid()
        AND a.datname = current_database()
        AND (a.usename = $1 OR (pg_catalog.left(a.usename, pg_catalog.length($1) + 2) = $1 || '_s'
             AND pg_catalog.substr(a.usename, pg_catalog.length($1) + 3) ~ '^[0-9]+$'))`,
    [runtimeRole],
  );
  const older = r.rows.map((row) => row.vxid);
  const started = Date.now();
  while (older.length > 0) {
    const left = await client.query<{ who: string }>(
      `SELECT format('pid %s (%s)', l.pid, coalesce(a.usename::text, 'unknown role')) AS who
         FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'virtualxid' AND l.granted AND l.virtualxid = ANY($1::text[])`,
      [older],
    );
    if (left.rows.length === 0) return;
    if (Date.now() - started > timeoutMs) {
      throw new FreezeTimeout(
        Date.now() - started,
        left.rows.map((row) => row.who),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
