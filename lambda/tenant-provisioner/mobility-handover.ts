/**
 * A new tenant started from an archive of another cell: a pool or bridge tenant from the other shared cell's, a
 * silo from either's (an approver's onboard request with `restoreFrom` and `restoreFromModel`; the local platform's
 * `restore --model --as`). Each cell signs its archives with a key of its own and keeps them in its own bucket under
 * its own KMS key, and neither runner gains the other's key, bucket or registry writes:
 *
 * 1. `vouch` (the archive's cell): for the onboarding workflow's execution that holds the new tenant with this
 *    archive of this cell recorded, the runner verifies the archive whole with its signing key and completes the
 *    workflow's vouch task (by its token) with the archive's SHA-256, a presigned GET link to it valid for minutes
 *    (HANDOVER_LINK_SECONDS), and the execution, tenant and archive it vouched for. Its invoker gets no link.
 * 2. `restore` with `handover` (the tenant's cell): the runner reads that task's answer from the execution's
 *    history; it must be for this execution, tenant and archive, and name exactly this link. It fetches the link
 *    and restores the bytes only if they give that digest (ArchiveKey.vouchedFor: the reader checks the digest
 *    where it would check the signature), with every other check of a restore for the workflow (mobility.ts).
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ArchiveKey, verifyArchive } from '../../db/mobility';
import { downloadArchive } from './archives';
import { expectApprovedHandover, expectApprovedVouch } from './mobility-approval';
import type { MobilityDeps, MobilityReport } from './mobility';
import type { Env } from './request';
import { ProvisioningInputError } from './request';
import { RUNNER_TASK_ABOVE_BYTES } from './runner-task';

/** How long a vouched archive's link works: the workflow invokes the other runner with it at once. */
export const HANDOVER_LINK_SECONDS = 5 * 60;
/**
 * ... unless the archive is large enough that the other runner hands its restore to its runner task, whose start
 * (sizing, RunTask, Fargate's provisioning and image pull) can take minutes before the download begins.
 */
export const LARGE_HANDOVER_LINK_SECONDS = 30 * 60;

/** How long the link to an archive of `bytes` works. */
export function handoverLinkSeconds(bytes: number): number {
  return bytes > RUNNER_TASK_ABOVE_BYTES ? LARGE_HANDOVER_LINK_SECONDS : HANDOVER_LINK_SECONDS;
}

/** The whole file's SHA-256, in hex. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * `vouch`: the archive verified with this cell's key; its digest and a link to it go to the onboarding workflow's
 * task (SendTaskSuccess with its token), never back to whoever invoked this runner, who gets the digest only. Any
 * failure fails the task with the reason (SendTaskFailure), so the workflow does not wait for its timeout.
 */
/** What a vouch names: the new tenant, the archive, the workflow's execution and its task token. */
type VouchRequest = {
  tenantId: string;
  archive: { key: string; tenantId: string };
  execution: string;
  taskToken: string;
};

export async function vouchForArchive(
  parsed: VouchRequest,
  file: string,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  try {
    return await vouch(parsed, file, env, deps);
  } catch (e) {
    await deps
      .sendTaskFailure?.(
        parsed.taskToken,
        (e as Error).name || 'Error',
        (e as Error).message.slice(0, 32_000),
      )
      .catch(() => undefined);
    throw e;
  }
}

async function vouch(
  parsed: VouchRequest,
  file: string,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  const started = Date.now();
  await expectApprovedVouch(parsed.archive.key, parsed.tenantId, parsed.execution, env, deps);
  if (!deps.sendTaskSuccess) {
    throw new ProvisioningInputError(
      `the runner of ${env.ownStack} cannot answer the onboarding workflow's tasks`,
    );
  }
  const bytes = await downloadArchive(deps.s3, deps.bucket, parsed.archive.key, file, deps.maxArchiveBytes);
  const manifest = await verifyArchive(file, await deps.archiveKey());
  if (manifest.tenantId !== parsed.archive.tenantId) {
    throw new Error(
      `${parsed.archive.key} holds tenant "${manifest.tenantId}"'s data, not "${parsed.archive.tenantId}"'s as its key says: refused, nothing was handed over`,
    );
  }
  if (manifest.encrypted) {
    throw new ProvisioningInputError(
      `${parsed.archive.key} is encrypted with this cell's archive key, which the other cell does not get: export the tenant again (npm run tenant -- export --aws writes unencrypted archives, under the bucket's KMS key); nothing was handed over`,
    );
  }
  const sha256 = await fileSha256(file);
  // Checked again with the bytes in hand: the execution still holds the tenant for this archive, and the archive's
  // tenant is not leaving with its data destroyed.
  await expectApprovedVouch(parsed.archive.key, parsed.tenantId, parsed.execution, env, deps);
  await expectNotDestroyed(parsed.archive, parsed.tenantId, deps);
  const handover = await getSignedUrl(
    deps.presigner ?? deps.s3,
    new GetObjectCommand({ Bucket: deps.bucket, Key: parsed.archive.key }),
    { expiresIn: handoverLinkSeconds(bytes) },
  );
  try {
    // What it vouched for goes with the link: the tenant's runner takes them only for its own execution, tenant
    // and archive (a token of another execution's task, answered here, hands that one nothing it can use).
    await deps.sendTaskSuccess(
      parsed.taskToken,
      JSON.stringify({
        sha256,
        handover,
        execution: parsed.execution,
        tenantId: parsed.tenantId,
        archive: parsed.archive.key,
      }),
    );
  } catch (e) {
    throw new ProvisioningInputError(
      `Step Functions did not take the answer for this task token (${(e as Error).name}: it is not a waiting task of the onboarding workflow, or the call failed): a link to ${parsed.archive.key} was not handed out, or, if the call failed after Step Functions took it, it expires in ${handoverLinkSeconds(bytes) / 60} minutes`,
    );
  }
  deps.log('vouched', {
    tenantId: parsed.tenantId,
    archive: parsed.archive.key,
    execution: parsed.execution,
    sha256,
    bytes,
    expiresInSeconds: handoverLinkSeconds(bytes),
  });
  return {
    action: 'vouch',
    tenantId: parsed.tenantId,
    model: env.model,
    bucket: deps.bucket,
    archive: parsed.archive.key,
    bytes,
    archiveTenantId: manifest.tenantId,
    schemaVersion: manifest.schemaVersion,
    rows: manifest.rows,
    checksums: manifest.checksums,
    ms: Date.now() - started,
    sha256,
  };
}

/**
 * A restore of a handed-over archive for the workflow's `execution` may go ahead (mobility.ts calls `approved`
 * before it reads anything and as the restore transaction's last step): the digest and link come from the
 * execution's history (expectApprovedHandover), the digest may not change between the two, and a shared cell's
 * runner checks the archive's tenant is not leaving with its data destroyed (a silo's reads its own registry item
 * only: the vouch checked it). `vouched()`: what the first check found.
 */
export function handoverApproval(
  archive: { key: string; tenantId: string },
  tenantId: string,
  execution: string,
  link: string,
  env: Env,
  deps: MobilityDeps,
  /** A move's (mobility-move.ts expectApprovedMoveIn) instead of a new tenant's. */
  expect: typeof expectApprovedHandover = expectApprovedHandover,
): { approved: () => Promise<void>; vouched: () => { sha256: string; from: string } } {
  let found: { sha256: string; from: string } | undefined;
  const moving = expect !== expectApprovedHandover;
  return {
    approved: async () => {
      const now = await expect(archive.key, tenantId, execution, link, env, deps);
      if (found !== undefined && now.sha256 !== found.sha256) {
        throw new ProvisioningInputError(
          `the digest vouched for ${archive.key} changed while it was restored into tenant "${tenantId}": nothing was written`,
        );
      }
      found = now;
      // (A moving tenant's own archive: the move holds the tenant, so it is not being offboarded.)
      if (env.model !== 'silo' && !moving) await expectNotDestroyed(archive, tenantId, deps);
    },
    vouched: () => found!,
  };
}

/**
 * The handed-over archive from its link to `file`, refusing more than `maxBytes` and any bytes whose SHA-256 is not
 * `sha256`. Returns the key that reads exactly those bytes (ArchiveKey.vouchedFor) and their size.
 */
export async function fetchHandedOver(
  link: URL,
  file: string,
  maxBytes: number,
  sha256: string,
  archive: string,
  from: string,
): Promise<{ bytes: number; key: ArchiveKey }> {
  const fail = (why: string) =>
    new Error(`the handed-over copy of ${archive} (from ${from}) ${why}; nothing was written`);
  if (!decodeURIComponent(link.pathname).endsWith(`/${archive}`)) {
    throw fail('is named by a link to another object');
  }
  let response: Response;
  try {
    response = await fetch(link, { redirect: 'error', signal: AbortSignal.timeout(10 * 60_000) });
  } catch (e) {
    throw fail(`could not be fetched (${(e as Error).message})`);
  }
  if (!response.ok || !response.body) {
    throw fail(
      `could not be fetched: S3 answered ${response.status}${response.status === 403 ? ' (the link expired, or the archive was deleted: onboard again)' : ''}`,
    );
  }
  const length = Number(response.headers.get('content-length') ?? NaN);
  if (length > maxBytes) {
    throw fail(`is ${length} bytes, more than this runner's ${maxBytes}: raise its ephemeral storage`);
  }
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(
    Readable.fromWeb(response.body as import('stream/web').ReadableStream),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        bytes += chunk.length;
        if (bytes > maxBytes) throw fail(`is more than this runner's ${maxBytes} bytes`);
        hash.update(chunk);
        yield chunk;
      }
    },
    fs.createWriteStream(file, { flags: 'wx', mode: 0o600 }),
  );
  const actual = hash.digest('hex');
  if (actual !== sha256) {
    throw fail(`has SHA-256 ${actual}, not ${sha256} as ${from} vouched for: it was altered or replaced`);
  }
  return { bytes, key: ArchiveKey.vouchedFor(sha256, from) };
}

/**
 * The tenant whose archive another cell handed over was not offboarded with its data destroyed meanwhile (its
 * cell deletes its archives then; this runner cannot see that bucket, so it asks the registry): no copy outlives
 * a destroy.
 */
export async function expectNotDestroyed(
  archive: { key: string; tenantId: string },
  tenantId: string,
  deps: MobilityDeps,
): Promise<void> {
  const owner = await deps.registryEntry(archive.tenantId);
  const leaving =
    owner?.status === 'offboarding' ||
    owner?.status === 'offboarded' ||
    (owner?.status === 'failed' && owner.failedDuring === 'offboarding');
  if (owner && owner.deletionPolicy === 'destroy' && leaving) {
    throw new ProvisioningInputError(
      `tenant "${archive.tenantId}", whose archive ${archive.key} this is, is ${owner.status} with its data destroyed: its archive is not restored into tenant "${tenantId}"; nothing was written`,
    );
  }
}
