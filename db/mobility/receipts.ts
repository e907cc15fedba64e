/**
 * Receipts of restores over a tenant's data in AWS (lambda/tenant-provisioner/mobility-replace.ts), one per
 * request (the onboarding workflow's execution), in `tenancy.restore_receipts` (no runtime role can read or write
 * it). The replace writes `replaced` in the same transaction that replaces the rows, so the receipt exists exactly
 * when the rows were replaced; the thaw writes `ended` before it lifts the freeze, so a replace of that request
 * that had not yet started finds its request ended and does nothing. Both run under the tenant's operation lock
 * (lock.ts), so they never interleave; the primary key settles it anyway (a request is replaced or ended, never
 * both in that order).
 */
import type { ClientBase } from 'pg';
import { ADMIN_SCHEMA, OWNER_ROLE } from '../roles';
import { ident, sql } from '../sql';
import { exec, inTransaction, lockBootstrap } from '../tx';

const TABLE = `${ADMIN_SCHEMA}.restore_receipts`;

/** Creates the receipts table if this database has none yet (cells bootstrapped by an earlier release). */
export async function ensureRestoreReceipts(client: ClientBase): Promise<void> {
  const there = async () =>
    (await client.query<{ t: string | null }>(`SELECT to_regclass('${TABLE}')::text AS t`)).rows[0].t !==
    null;
  if (await there()) return;
  // As the owner role (whose schema it is), readable and writable by the master user only, as tenancy.locks; one
  // creator at a time (the bootstrap's lock), so two first uses do not collide.
  await inTransaction(client, async () => {
    await exec(client, lockBootstrap());
    if (await there()) return;
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${TABLE} (
         request text PRIMARY KEY,
         tenant_id text NOT NULL,
         state text NOT NULL CHECK (state IN ('replaced', 'ended')),
         safety_archive text,
         at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    await client.query(`GRANT SELECT, INSERT ON ${TABLE} TO SESSION_USER`);
  });
}

/** What became of `request` so far: ended by its thaw, replaced, or nothing yet (a replace may begin only then). */
export async function restoreReceipt(
  client: ClientBase,
  request: string,
): Promise<'ended' | 'replaced' | undefined> {
  const r = await client.query<{ state: 'ended' | 'replaced' }>(
    `SELECT state FROM ${TABLE} WHERE request = $1`,
    [request],
  );
  return r.rows[0]?.state;
}

/** Inside the replace's transaction: the rows of `tenantId` were replaced for `request`. */
export async function recordReplaced(
  client: ClientBase,
  request: string,
  tenantId: string,
  safetyArchive: string,
): Promise<void> {
  const r = await client.query(
    `INSERT INTO ${TABLE} (request, tenant_id, state, safety_archive) VALUES ($1, $2, 'replaced', $3)
     ON CONFLICT (request) DO NOTHING`,
    [request, tenantId, safetyArchive],
  );
  if (r.rowCount !== 1) {
    throw new Error(
      `the restore request ${request} was already ended (or replaced) when its replace of tenant "${tenantId}" was about to commit: nothing was written`,
    );
  }
}

/**
 * Ends `request` (if its replace has not committed) and says what it came to: replaced (with its safety
 * archive), or not.
 */
export async function endRestore(
  client: ClientBase,
  request: string,
  tenantId: string,
): Promise<{ replaced: boolean; safetyArchive: string }> {
  await client.query(
    `INSERT INTO ${TABLE} (request, tenant_id, state) VALUES ($1, $2, 'ended') ON CONFLICT (request) DO NOTHING`,
    [request, tenantId],
  );
  const r = await client.query<{ state: string; safety_archive: string | null; tenant_id: string }>(
    `SELECT state, safety_archive, tenant_id FROM ${TABLE} WHERE request = $1`,
    [request],
  );
  const row = r.rows[0];
  if (!row || row.tenant_id !== tenantId) {
    throw new Error(`the restore request ${request} is tenant "${row?.tenant_id}"'s, not "${tenantId}"'s`);
  }
  return { replaced: row.state === 'replaced', safetyArchive: row.safety_archive ?? '' };
}
