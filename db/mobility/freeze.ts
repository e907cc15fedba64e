/**
 * The write freeze of a move (M1, M2). Freezing a tenant (DataModel.freeze) refuses its writes from the next
 * statement on; a transaction that passed its checks before the freeze may still be running and commit. So after
 * the freeze commits, the mover waits until every transaction that was running in the database then has ended
 * (as CREATE INDEX CONCURRENTLY waits for older snapshots): from then on, every write acknowledged before the
 * freeze is committed, and the export's snapshot sees it.
 */
import type { ClientBase } from 'pg';

export class FreezeTimeout extends Error {
  constructor(waitedMs: number, left: number) {
    super(
      `${left} transaction(s) that began before the freeze were still running after ${waitedMs} ms: the move stops and the tenant serves again; try later`,
    );
    this.name = 'FreezeTimeout';
  }
}

/**
 * Waits until every transaction that was open in this database when it was called (but the caller's) has ended.
 * Runtime transactions end within their statement and idle-in-transaction timeouts (5 s, 10 s), so the default
 * bound covers them.
 */
export async function waitForOlderTransactions(client: ClientBase, timeoutMs = 20000): Promise<void> {
  const r = await client.query<{ vxid: string }>(
    `SELECT l.virtualxid AS vxid
       FROM pg_catalog.pg_locks l
       JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'virtualxid' AND l.granted AND l.pid <> pg_backend_pid()
        AND a.datname = current_database()`,
  );
  const older = r.rows.map((row) => row.vxid);
  const started = Date.now();
  while (older.length > 0) {
    const left = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_catalog.pg_locks
        WHERE locktype = 'virtualxid' AND granted AND virtualxid = ANY($1::text[])`,
      [older],
    );
    if (left.rows[0].n === 0) return;
    if (Date.now() - started > timeoutMs) throw new FreezeTimeout(Date.now() - started, left.rows[0].n);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
