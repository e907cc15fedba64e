/**
 * Tenant data mobility in AWS: each cell's mobility runner (mobility-entry.ts: the pool cell's, the bridge cell's,
 * each silo's own) exports one tenant of its database to the cell's archive bucket, and restores an archive from
 * that bucket into a tenant of its database, with the same data-plane code as `npm run tenant` on the local
 * platform (db/mobility/). `npm run tenant -- export|restore --aws` invokes it (scripts/tenant-aws.ts).
 *
 *   { "action": "export",  "tenantId": "acme" }
 *   { "action": "restore", "tenantId": "acme", "archive": "tenants/acme/20261128T030405Z-1a2b3c4d.tfa" }
 *   { "action": "restore", "tenantId": "acme-2", "archive": "tenants/acme/...tfa", "execution": "arn:aws:states:..." }
 *   { "action": "replace", "tenantId": "acme", "archive": "tenants/acme/...tfa", "execution": "arn:aws:states:..." }
 *   { "action": "checkReplace", "tenantId": "acme", "archive": "tenants/acme/...tfa", "execution": "arn:aws:states:..." }
 *   { "action": "thaw",    "tenantId": "acme", "execution": "arn:aws:states:..." }
 *   { "action": "vouch",   "tenantId": "acme-2", "archive": "tenants/acme/...tfa", "execution": "arn:aws:states:..." }
 *   { "action": "restore", "tenantId": "acme-2", "archive": "tenants/acme/...tfa", "execution": "...", "handover": "https://..." }
 *   { "action": "moveOut", "tenantId": "acme", "execution": "arn:aws:states:...", "taskToken": "..." }
 *   { "action": "dropMovedIn", "tenantId": "acme", "execution": "arn:aws:states:..." }
 *   { "action": "purge", "tenantId": "acme", "execution": "arn:aws:states:..." }
 *   { "action": "restore", "tenantId": "acme", "archive": "tenants/acme/...tfa", "execution": "...", "handover": "https://..." }
 *
 * - Export reads as the tenant's runtime principal (its verified credential, RLS or its role: M3), in one
 *   snapshot, to the function's temporary storage, then to `tenants/<id>/<time>-<random>.tfa` in the bucket,
 *   encrypted with the cell's key (the silo's own key for a silo), never over an existing object.
 * - Restore verifies the whole archive first (signature with the cell's archive signing key, counts, checksums),
 *   then loads it in one transaction under the tenant's operation lock, into the archive's own tenant only, which
 *   must be active here with empty tables (its rows lost, or deleted on purpose). Never into another tenant on an
 *   operator's invoke: one invoke could otherwise hand one customer's data to another that has not written
 *   anything yet. Restoring over a tenant's data is the local platform's (`--force`) for now.
 * - Into a new tenant (the third form, a shared cell's runner only): only for the onboarding workflow's execution
 *   that holds the new tenant while it is being onboarded, and only the archive the approved request named. The
 *   onboarding entry recorded both in the registry (`lock`, `restoreArchive`), which this runner can read and
 *   never write; Step Functions must also say the execution is the workflow's, running, and was started for that
 *   tenant and archive. All of it is checked before anything is read and again just before the restore commits,
 *   with the archive still in the bucket. A run again that finds exactly the archive's rows there is done.
 * - Over a live tenant's data (`replace`, and `thaw` on its failure path; mobility-replace.ts): only for the
 *   onboarding workflow's execution of an approver's `restore` request, checked the same way.
 * - Into a new tenant of the other shared cell (`vouch` here, then `restore` with `handover` there;
 *   mobility-handover.ts): only for the onboarding workflow's execution of an approver's onboard request that
 *   names this cell's archive; the other runner restores only bytes with the digest this one vouched for.
 * - A move between the pool and bridge cells (`moveOut` here, then `restore` with `handover` there, into the same
 *   tenant; mobility-move.ts): only for the onboarding workflow's execution of an approver's `move` request.
 *
 * Which tenants and archives it may touch: its IAM (a silo's runner only its own tenant's prefix and registry
 * item) and these checks (the registry says the tenant is this cell's model and active).
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Client } from 'pg';
import { tenantOfStackName } from '../../contracts';
import { dataModel } from '../../db/models';
import { OWNER_ROLE } from '../../db/roles';
import { targetState } from '../../db/migrate';
import { inTransaction } from '../../db/tx';
import { ident, sql } from '../../db/sql';
import { exec } from '../../db/tx';
import type { TenantDatabase } from '../../db/tenant-context';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  ArchiveKey,
  exportTenant,
  holdTenantLock,
  restoreArchive,
  verifyArchive,
  type ArchiveManifest,
} from '../../db/mobility';
import { downloadArchive, uploadArchive, withdrawArchive } from './archives';
import {
  ApprovalDeps,
  expectActiveHere,
  expectApprovedReplace,
  expectApprovedRestore,
  expectApprovedThaw,
} from './mobility-approval';
import { fetchHandedOver, handoverApproval, vouchForArchive } from './mobility-handover';
import { dropMovedIn, expectApprovedMoveIn, moveOut, movingBetweenCells } from './mobility-move';
import { purgeKeptCopy } from './mobility-purge';
import { replaceOrThaw, ReplaceRequest, reportWithoutData } from './mobility-replace';
import { MobilityEvent, parseMobilityEvent } from './mobility-event';

export { isMobilityEvent, parseMobilityEvent, type MobilityEvent } from './mobility-event';
import type { Env } from './request';
import { ProvisioningInputError } from './request';

export interface MobilityReport {
  readonly action: MobilityEvent['action'];
  readonly tenantId: string;
  readonly model: string;
  readonly bucket: string;
  readonly archive: string;
  readonly bytes: number;
  /** The archive's tenant (a restore into another id says whose data it was). */
  readonly archiveTenantId: string;
  readonly schemaVersion: number;
  readonly rows: Record<string, number>;
  readonly checksums: Record<string, string>;
  readonly ms: number;
  /**
   * restore for the onboarding workflow: the tenant already held exactly this archive's rows (a run again after
   * an answer was lost), so nothing was written.
   */
  readonly alreadyThere?: boolean;
  /**
   * replace: the archive of what the tenant held just before (exported under the freeze), in the same bucket; thaw:
   * that archive if the request's replace wrote it, else ''.
   */
  readonly safetyArchive?: string;
  /** thaw: the tenant holds exactly the request's archive's rows (its replace committed). */
  readonly restored?: boolean;
  /** vouch: the archive's whole-file SHA-256, as this cell's signing key verified it (its link went to Step Functions). */
  readonly sha256?: string;
}

/** The registry, Step Functions and the bucket (what ApprovalDeps reads), and: */
export interface MobilityDeps extends ApprovalDeps {
  /**
   * A shared cell's runner: completes the onboarding workflow's task `taskToken` with `output` (SendTaskSuccess), or
   * fails it (SendTaskFailure).
   */
  sendTaskSuccess?(taskToken: string, output: string): Promise<void>;
  sendTaskFailure?(taskToken: string, error: string, cause: string): Promise<void>;
  /**
   * A workflow step's last look before it commits: throws if Step Functions no longer waits for it (the step
   * timed out, or was retried under a new token). Unset for an operator's invoke.
   */
  stepStillWaiting?(): Promise<void>;
  /**
   * Signs a handover link (vouch): S3 at its dual-stack endpoint, so a cell without NAT gateways (IPv6 out only)
   * fetches it as well as one with them. Default: `s3`.
   */
  readonly presigner?: S3Client;
  /** A connection as the database's master user (the provisioner's). */
  connect(): Promise<Client>;
  /** The cell's database as its runtime role (what the API uses): exports read through it. */
  runtimeDatabase(): Promise<TenantDatabase>;
  archiveKey(): Promise<ArchiveKey>;
  /** Where archives are written and read on the function's own storage. */
  readonly workDir: string;
  /** The most an archive may weigh: what the function's temporary storage holds. */
  readonly maxArchiveBytes: number;
  log(message: string, fields: Record<string, unknown>): void;
}

export async function runMobilityEvent(
  event: MobilityEvent,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  const parsed = parseMobilityEvent(event);
  // A silo's runner acts for its own tenant only, whatever the action.
  const siloTenant = env.model === 'silo' ? tenantOfStackName(env.ownStack) : undefined;
  if (siloTenant && parsed.tenantId !== siloTenant) {
    throw new ProvisioningInputError(
      `tenant "${parsed.tenantId}" is not this silo's: the runner of stack ${env.ownStack} serves tenant "${siloTenant}" only (invoke the runner of the tenant's own cell)`,
    );
  }
  if (parsed.action === 'checkReplace') {
    // Before a silo's replace, nothing frozen yet: this runner can carry out the request (its release, its IAM),
    // and would be allowed to thaw it. A refusal here leaves the tenant as it was.
    const started = Date.now();
    await expectApprovedReplace(parsed.archive!.key, parsed.tenantId, parsed.execution!, env, deps);
    await expectApprovedThaw(parsed.tenantId, parsed.execution!, env, deps);
    return reportWithoutData('checkReplace', parsed.tenantId, env, deps, started, parsed.archive!.key);
  }
  if (parsed.action === 'replace' || parsed.action === 'thaw') {
    return replaceOrThaw(parsed as ReplaceRequest, env, deps);
  }
  if (parsed.action === 'dropMovedIn') return dropMovedIn(parsed.tenantId, parsed.execution!, env, deps);
  if (parsed.action === 'purge') return purgeKeptCopy(parsed.tenantId, parsed.execution!, env, deps);
  const started = Date.now();
  if (parsed.archive && parsed.archive.tenantId !== parsed.tenantId && parsed.execution === undefined) {
    throw new ProvisioningInputError(
      `${parsed.archive.key} is tenant "${parsed.archive.tenantId}"'s archive: an operator restores an archive into its own tenant only, never into "${parsed.tenantId}" (a new tenant starts from another's archive only through an approved onboard request with "restoreFrom"); nothing was written`,
    );
  }
  // Into a new tenant: checked now, and again inside the restore's transaction just before it commits (an
  // execution stopped, or an archive deleted with its tenant, while the restore ran writes nothing). From the
  // other cell's archive: the digest and link its runner handed this execution, and (a shared cell's runner, which
  // may read any registry item) the archive's tenant not destroyed meanwhile; a silo's runner reads its own item
  // only, and relies on the vouching runner's check of it.
  const handedOver = parsed.handover;
  // A handed-over archive of the tenant itself, moving here from the other cell, or of another tenant, for a new one.
  const movingHere =
    handedOver !== undefined &&
    parsed.archive?.tenantId === parsed.tenantId &&
    movingBetweenCells(await deps.registryEntry(parsed.tenantId));
  const handover = handedOver
    ? handoverApproval(
        parsed.archive!,
        parsed.tenantId,
        parsed.execution!,
        event.handover!,
        env,
        deps,
        movingHere ? expectApprovedMoveIn : undefined,
      )
    : undefined;
  const approved =
    parsed.execution === undefined || parsed.action === 'vouch' || parsed.action === 'moveOut'
      ? undefined
      : (handover?.approved ??
        (() => expectApprovedRestore(parsed.archive!.key, parsed.tenantId, parsed.execution!, env, deps)));
  if (parsed.action === 'vouch' || parsed.action === 'moveOut') {
    // Checked by vouchForArchive (the tenant is the other cell's) and moveOut, before and after they read.
  } else if (approved) await approved();
  else await expectActiveHere(parsed.tenantId, env, deps);
  // What a run cut off by the function's timeout left behind goes first (one run at a time per environment).
  fs.rmSync(deps.workDir, { recursive: true, force: true });
  fs.mkdirSync(deps.workDir, { recursive: true, mode: 0o700 });
  const file = path.join(deps.workDir, `${parsed.tenantId}-${randomBytes(6).toString('hex')}.tfa`);
  try {
    if (parsed.action === 'moveOut') {
      return await moveOut(
        { tenantId: parsed.tenantId, execution: parsed.execution!, taskToken: parsed.taskToken! },
        file,
        env,
        deps,
      );
    }
    if (parsed.action === 'vouch') {
      return await vouchForArchive(
        {
          tenantId: parsed.tenantId,
          archive: parsed.archive!,
          execution: parsed.execution!,
          taskToken: parsed.taskToken!,
        },
        file,
        env,
        deps,
      );
    }
    if (parsed.action === 'export') {
      const schemaVersion = await schemaVersionOf(parsed.tenantId, env, deps);
      const database = await deps.runtimeDatabase();
      const manifest = await exportTenant(
        database.forTenant(parsed.tenantId),
        file,
        await deps.archiveKey(),
        { schemaVersion },
      );
      const bytes = fs.statSync(file).size;
      if (bytes > deps.maxArchiveBytes) {
        throw new Error(
          `the archive of tenant "${parsed.tenantId}" is ${bytes} bytes, more than this runner's ${deps.maxArchiveBytes}: raise its ephemeral storage`,
        );
      }
      const { key, versionId } = await uploadArchive(deps.s3, deps.bucket, parsed.tenantId, file, bytes, {
        model: env.model,
        'schema-version': String(manifest.schemaVersion),
      });
      // Still active? An offboarding with destroy that ran meanwhile deleted the tenant's archives before this one
      // landed: this one goes too, so no copy outlives the destroy.
      const now = await deps.registryEntry(parsed.tenantId);
      if (now?.status !== 'active' || now.model !== env.model) {
        await withdrawArchive(deps.s3, deps.bucket, key, versionId);
        throw new Error(
          `tenant "${parsed.tenantId}" is ${now ? `${now.status} (${now.model})` : 'no longer in the registry'} since this export began: its archive was deleted again`,
        );
      }
      deps.log('exported', { tenantId: parsed.tenantId, archive: key, bytes, rows: manifest.rows });
      return report('export', parsed.tenantId, key, bytes, manifest, manifest.schemaVersion);
    }
    const archive = parsed.archive!;
    const fetched = handedOver
      ? await fetchHandedOver(
          handedOver,
          file,
          deps.maxArchiveBytes,
          handover!.vouched().sha256,
          archive.key,
          handover!.vouched().from,
        )
      : {
          bytes: await downloadArchive(deps.s3, deps.bucket, archive.key, file, deps.maxArchiveBytes),
          key: await deps.archiveKey(),
        };
    const { bytes, key } = fetched;
    const manifest = await verifyArchive(file, key);
    if (manifest.tenantId !== archive.tenantId) {
      throw new Error(
        `${archive.key} holds tenant "${manifest.tenantId}"'s data, not "${archive.tenantId}"'s as its key says: refused, nothing was written`,
      );
    }
    const client = await deps.connect();
    const lockClient = await deps.connect();
    try {
      // A backstop for the checks that run inside the transaction (AWS calls with their own deadlines): the server
      // ends a transaction left idle this long, whatever the function does.
      await client.query("SET idle_in_transaction_session_timeout = '60s'");
      const release = await holdTenantLock(lockClient, parsed.tenantId);
      try {
        const restored = await restoreArchive(client, file, key, {
          tenantId: parsed.tenantId,
          archiveTenantId: manifest.tenantId,
          model: env.model,
          options: {},
          verified: manifest,
          // The workflow may invoke again after a lost answer: finding its own rows there is success.
          rerunIsDone: approved !== undefined,
          beforeCommit: async () => {
            await approved?.();
            // A workflow step: it must still be waiting for this work (runner-task.ts).
            await deps.stepStillWaiting?.();
          },
        }).catch((e: Error) => {
          throw /already has rows in/.test(e.message)
            ? new Error(
                `${e.message.replace(/: restore over existing data only with --force$/, '')}: in AWS an archive is restored only into its tenant while it has no rows (over its data, restore on the local platform with --force); nothing was written`,
                { cause: e },
              )
            : e;
        });
        deps.log('restored', {
          tenantId: parsed.tenantId,
          archive: archive.key,
          rows: restored.rows,
          ...(restored.alreadyThere ? { alreadyThere: true } : {}),
        });
        return {
          ...report('restore', parsed.tenantId, archive.key, bytes, manifest, restored.schemaVersion),
          ...(restored.alreadyThere ? { alreadyThere: true } : {}),
        };
      } finally {
        await release();
      }
    } finally {
      await client.end().catch(() => undefined);
      await lockClient.end().catch(() => undefined);
    }
  } finally {
    fs.rmSync(file, { force: true });
  }

  function report(
    action: MobilityEvent['action'],
    tenantId: string,
    archive: string,
    bytes: number,
    manifest: ArchiveManifest,
    schemaVersion: number,
  ): MobilityReport {
    return {
      action,
      tenantId,
      model: env.model,
      bucket: deps.bucket,
      archive,
      bytes,
      archiveTenantId: manifest.tenantId,
      schemaVersion,
      rows: manifest.rows,
      checksums: manifest.checksums,
      ms: Date.now() - started,
    };
  }
}

export async function schemaVersionOf(tenantId: string, env: Env, deps: MobilityDeps): Promise<number> {
  const client = await deps.connect();
  try {
    const state = await inTransaction(client, async () => {
      await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
      return targetState(client, dataModel(env.model).migrationTarget(tenantId, {}).target);
    });
    if (!state || state.status !== 'active') {
      throw new Error(`tenant "${tenantId}" has no active place in the ${env.model} database`);
    }
    return state.version;
  } finally {
    await client.end().catch(() => undefined);
  }
}
