/**
 * Restoring a tenant's own archive over its data in AWS (the local platform's `restore --force`), within its shared
 * cell, for the onboarding workflow's execution of an approver's `restore` request (the entry set the tenant
 * `moving` within its model, so the API answers it 503, and recorded the archive with the lock):
 *
 *   replace  takes the tenant's operation lock, then checks the request (mobility-approval.ts), verifies the
 *            archive, freezes the tenant's writes and waits for the runtime role's older transactions (every write
 *            acknowledged before the freeze is committed), exports what the tenant holds now to its safety archive
 *            (`tenants/<id>/before-restore-<execution digest>.tfa`), then replaces its rows with the archive's and
 *            lifts the freeze in ONE transaction, which checks the request once more just before it commits. Any
 *            failure before that commit lifts the freeze again: the tenant keeps exactly what it had.
 *   thaw     the workflow's failure path (or an approver's abandon request; or a move's failure path): waits for the operation lock (a
 *            replace still running finishes first), ends the request (a replace of it not started yet then does
 *            nothing), lifts the freeze, and says from the request's receipt whether its replace committed though
 *            its answer was lost, and where its safety archive is (db/mobility/receipts.ts).
 */
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Client } from 'pg';
import { dataModel } from '../../db/models';
import {
  endRestore,
  ensureRestoreReceipts,
  exportTenant,
  holdTenantLock,
  recordReplaced,
  restoreReceipt,
  restoreArchive,
  TenantBusy,
  verifyArchive,
  waitForOlderTransactions,
} from '../../db/mobility';
import { isConnectionFault } from '../../db/faults';
import { downloadArchive, uploadArchive } from './archives';
import { expectApprovedReplace, expectApprovedThaw } from './mobility-approval';
import { expectMoveHeld, movingBetweenCells } from './mobility-move';
import { MobilityDeps, MobilityReport, schemaVersionOf } from './mobility';
import type { Env } from './request';

export interface ReplaceRequest {
  readonly action: 'replace' | 'thaw';
  readonly tenantId: string;
  readonly archive?: { key: string; tenantId: string };
  readonly execution: string;
}

/**
 * How long a thaw waits for a replace that still holds the tenant's operation lock: within the function's 15 minutes,
 * and longer than the database takes to end the session of a function that was stopped (KEEPALIVE_PARAMETERS
 * in lib/constructs/database.ts: about 2 minutes).
 */
export const THAW_WAIT_MS = 10 * 60 * 1000;

export async function replaceOrThaw(
  request: ReplaceRequest,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  const { tenantId, execution } = request;
  const started = Date.now();
  // The receipts (db/mobility/receipts.ts) exist before either takes the tenant's lock.
  await withClient(deps, (c) => ensureRestoreReceipts(c));
  if (request.action === 'thaw') {
    // Checked first, so that a thaw nobody asked for does not even wait for the lock. A move's failure path thaws
    // the tenant where it was (mobility-move.ts checks the move).
    const approvedThaw = async () =>
      movingBetweenCells(await deps.registryEntry(tenantId))
        ? expectMoveHeld('source', tenantId, execution, env, deps)
        : expectApprovedThaw(tenantId, execution, env, deps);
    const entry = await approvedThaw();
    const lockClient = await deps.connect();
    try {
      const release = await waitForTenantLock(lockClient, tenantId, THAW_WAIT_MS);
      try {
        await approvedThaw();
        // The request ends here: a replace of it that has not started yet will do nothing. Whether one committed
        // (its answer lost, or its function stopped after COMMIT) is on its receipt.
        const outcome = await withClient(deps, (c) => endRestore(c, execution, tenantId));
        await withClient(deps, (c) => dataModel(env.model).unfreeze(c, tenantId, {}));
        const restored = outcome.replaced;
        const safetyArchive = outcome.safetyArchive;
        deps.log('thawed', { tenantId, execution, restored, safetyArchive });
        return {
          ...reportWithoutData('thaw', tenantId, env, deps, started, entry.restoreArchive ?? ''),
          restored,
          safetyArchive,
        };
      } finally {
        await release();
      }
    } finally {
      await lockClient.end().catch(() => undefined);
    }
  }

  const archive = request.archive!;
  const approved = () => expectApprovedReplace(archive.key, tenantId, execution, env, deps);
  await approved();
  fs.rmSync(deps.workDir, { recursive: true, force: true });
  fs.mkdirSync(deps.workDir, { recursive: true, mode: 0o700 });
  const file = path.join(deps.workDir, `${tenantId}-${randomBytes(6).toString('hex')}.tfa`);
  const safetyFile = path.join(deps.workDir, `${tenantId}-before-${randomBytes(6).toString('hex')}.tfa`);
  const lockClient = await deps.connect();
  try {
    // The lock first, then the request again: a thaw that got the lock before this replace (its invocation's
    // answer was an error while it was still starting) has ended the request, and this replace then does nothing.
    const release = await holdTenantLock(lockClient, tenantId);
    try {
      await approved();
      const receipt = await restoreReceipt(lockClient, execution);
      if (receipt) {
        throw new Error(
          receipt === 'ended'
            ? `the restore request ${execution} was ended by its thaw before this replace began: nothing was written`
            : `the restore request ${execution} was already carried out: nothing was written`,
        );
      }
      const bytes = await downloadArchive(deps.s3, deps.bucket, archive.key, file, deps.maxArchiveBytes);
      const key = await deps.archiveKey();
      const manifest = await verifyArchive(file, key);
      if (manifest.tenantId !== tenantId) {
        throw new Error(
          `${archive.key} holds tenant "${manifest.tenantId}"'s data, not "${tenantId}"'s as its key says: refused, nothing was written`,
        );
      }
      const model = dataModel(env.model);
      // Whether the freeze committed: a refusal means it did not; a lost connection leaves it unknown, so the thaw
      // runs anyway (it is idempotent).
      let froze: 'no' | 'yes' | 'unknown' = 'no';
      try {
        await lockClient.query('SELECT 1'); // the lock's connection is still there before anything is frozen
        await withClient(deps, async (c) => {
          try {
            await model.freeze(c, tenantId, {});
            froze = 'yes';
          } catch (e) {
            froze = isConnectionFault(e) ? 'unknown' : 'no';
            throw e;
          }
          await waitForOlderTransactions(c, model.runtimeRole({}));
        });
        // What the tenant holds now, frozen: kept in the bucket before anything of it is replaced.
        const schemaVersion = await schemaVersionOf(tenantId, env, deps);
        const database = await deps.runtimeDatabase();
        const before = await exportTenant(database.forTenant(tenantId), safetyFile, key, { schemaVersion });
        const safetyBytes = fs.statSync(safetyFile).size;
        if (safetyBytes > deps.maxArchiveBytes) {
          throw new Error(
            `what tenant "${tenantId}" holds now exports to ${safetyBytes} bytes, more than this runner's ${deps.maxArchiveBytes}: it was not replaced (restore it on the local platform from the cell's backups)`,
          );
        }
        // A migration of the tenant's schema between the version read and the export would mislabel it.
        if ((await schemaVersionOf(tenantId, env, deps)) !== schemaVersion) {
          throw new Error(
            `tenant "${tenantId}"'s schema was migrated while what it holds was exported: nothing was replaced; request the restore again`,
          );
        }
        const safety = await uploadArchive(
          deps.s3,
          deps.bucket,
          tenantId,
          safetyFile,
          safetyBytes,
          {
            model: env.model,
            'schema-version': String(before.schemaVersion),
            'restore-execution': execution,
          },
          safetyArchiveName(execution),
        );
        deps.log('exported before restore', { tenantId, archive: safety.key, rows: before.rows });
        const restored = await withClient(deps, async (c) => {
          // As for restore: the server ends a transaction left idle this long, whatever the function does.
          await c.query("SET idle_in_transaction_session_timeout = '60s'");
          return restoreArchive(c, file, key, {
            tenantId,
            archiveTenantId: tenantId,
            model: env.model,
            options: {},
            verified: manifest,
            replace: true,
            thaw: true,
            // The last look, then the receipt, in the same transaction as the rows.
            beforeCommit: async () => {
              await approved();
              // Still holding the tenant's lock (its connection alive): no thaw can have run meanwhile.
              await lockClient.query('SELECT 1');
              // Its step still waits for it (runner-task.ts): not after the workflow's rollback began.
              await deps.stepStillWaiting?.();
              await recordReplaced(c, execution, tenantId, safety.key);
            },
          });
        });
        froze = 'no';
        deps.log('restored over the tenant', {
          tenantId,
          archive: archive.key,
          safetyArchive: safety.key,
          rows: restored.rows,
        });
        return {
          action: 'replace',
          tenantId,
          model: env.model,
          bucket: deps.bucket,
          archive: archive.key,
          bytes,
          archiveTenantId: tenantId,
          schemaVersion: restored.schemaVersion,
          rows: restored.rows,
          checksums: restored.checksums,
          ms: Date.now() - started,
          safetyArchive: safety.key,
        };
      } catch (e) {
        if (froze !== 'no') {
          try {
            await withClient(deps, (c) => model.unfreeze(c, tenantId, {}));
          } catch (thawError) {
            throw new Error(
              `${(e as Error).message}; then lifting tenant "${tenantId}"'s freeze failed (${(thawError as Error).message}): it stays read-only until the workflow's thaw lifts it`,
              { cause: e },
            );
          }
        }
        throw e;
      }
    } finally {
      await release();
    }
  } finally {
    await lockClient.end().catch(() => undefined);
    fs.rmSync(file, { force: true });
    fs.rmSync(safetyFile, { force: true });
  }
}

/** The report of an action that moves no data (a thaw, a move's drop, a purge). */
export function reportWithoutData(
  action: MobilityReport['action'],
  tenantId: string,
  env: Env,
  deps: MobilityDeps,
  started: number,
  archive = '',
): MobilityReport {
  return {
    action,
    tenantId,
    model: env.model,
    bucket: deps.bucket,
    archive,
    bytes: 0,
    archiveTenantId: tenantId,
    schemaVersion: 0,
    rows: {},
    checksums: {},
    ms: Date.now() - started,
  };
}

/** The safety archive's name for the request `execution`: one per request, found again by its thaw. */
function safetyArchiveName(execution: string): string {
  return `before-restore-${createHash('sha256').update(execution).digest('hex').slice(0, 24)}`;
}

export async function withClient<T>(deps: MobilityDeps, work: (c: Client) => Promise<T>): Promise<T> {
  const c = await deps.connect();
  try {
    return await work(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The tenant's operation lock, waited for (holdTenantLock refuses at once when another operation holds it). */
export async function waitForTenantLock(
  client: Client,
  tenantId: string,
  waitMs: number,
): Promise<() => Promise<void>> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await holdTenantLock(client, tenantId);
    } catch (e) {
      if (!(e instanceof TenantBusy) || Date.now() > until) throw e;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
