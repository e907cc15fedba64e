/**
 * A tenant moved between the pool and bridge cells in AWS, for the onboarding workflow's execution of an approver's
 * `move` request (the entry set the tenant `moving` to the other cell, so the API answers it 503; the workflow's
 * states are in lib/constructs/onboarding/move.ts):
 *
 *   moveOut   (the source cell's runner, a callback task) checks the request, takes the tenant's operation lock,
 *             freezes its writes and waits for its runtime role's older transactions (every write acknowledged
 *             before the freeze is committed), exports it as its runtime principal to this cell's bucket, and
 *             completes the workflow's task with the archive's SHA-256 and a presigned link to it, as a vouch does
 *             (mobility-handover.ts): its invoker gets the digest only. The freeze stays: the workflow's failure
 *             path thaws the tenant (thaw), and after the switch this place is what the move keeps.
 *   restore   with `handover` (the destination cell's runner, into the same tenant, whose empty place the move's
 *             deploy built): the handed-over bytes, only if they give that digest (expectApprovedMoveIn).
 *
 * Both check, before anything and again at the end, that the registry says the execution holds the tenant, moving
 * from this cell (moveOut) or to it (restore), and that Step Functions says the execution is the workflow's,
 * running, started by the entry to move this tenant between exactly these cells. Neither writes the registry.
 */
import * as fs from 'fs';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { moveOutStateName, type RegistryItem } from '../../contracts';
import { dataModel, emptySilo } from '../../db/models';
import { exportTenant, holdTenantLock, waitForOlderTransactions } from '../../db/mobility';
import { uploadArchive } from './archives';
import type { ApprovalDeps } from './mobility-approval';
import { handedOverIn, startedAs } from './workflow-checks';
import { fileSha256, handoverLinkSeconds } from './mobility-handover';
import { reportWithoutData, THAW_WAIT_MS, waitForTenantLock, withClient } from './mobility-replace';
import { type MobilityDeps, type MobilityReport, schemaVersionOf } from './mobility';
import type { Env } from './request';
import { ProvisioningInputError } from './request';

/** Whether the registry says `entry` is moving between two cells (not restored within its own). */
export function movingBetweenCells(
  entry: Pick<RegistryItem, 'status' | 'model' | 'movingTo'> | undefined,
): boolean {
  return entry?.status === 'moving' && entry.movingTo !== undefined && entry.movingTo !== entry.model;
}

/**
 * The registry says the workflow's `execution` holds the tenant, moving from this cell (`source`) or to it
 * (`destination`), and Step Functions says the execution was started by the entry to move it between exactly those
 * cells. Returns the registry entry.
 */
export async function expectMoveHeld(
  side: 'source' | 'destination',
  tenantId: string,
  execution: string,
  env: Env,
  deps: ApprovalDeps,
  /** `drop`: the destination's place removed on the move's rollback (the registry must say it is aborted). */
  purpose: 'move' | 'drop' = 'move',
): Promise<RegistryItem> {
  const entry = await deps.registryEntry(tenantId);
  const refuse = (why: string) =>
    new ProvisioningInputError(
      `tenant "${tenantId}" is not being moved ${side === 'source' ? 'out of' : 'into'} this ${env.model} cell by ${execution}: ${why}; nothing was written`,
    );
  if (!entry) throw refuse(`the tenant registry (${env.registryTable}) has no such tenant`);
  if (!movingBetweenCells(entry)) {
    throw refuse(`it is ${entry.status}${entry.status === 'moving' ? ' within its cell' : ''}, not moving`);
  }
  const here = side === 'source' ? entry.model : entry.movingTo;
  if (here !== env.model) {
    throw refuse(`it is moving from ${entry.model} to ${entry.movingTo ?? '?'}`);
  }
  if (entry.lock !== execution)
    throw refuse(entry.lock ? `it is held by ${entry.lock}` : 'no execution holds it');
  // Rolled back (the workflow marked it aborted): nothing more is restored into the destination, only removed.
  if (side === 'destination' && (entry.moveAborted === true) !== (purpose === 'drop')) {
    throw refuse(entry.moveAborted ? 'the move is being rolled back' : 'the move is not being rolled back');
  }
  const started = await startedAs(execution, env, deps, refuse);
  const t = started?.tenant;
  if (
    started?.action !== 'move' ||
    t?.tenantId !== tenantId ||
    t?.model !== entry.model ||
    t?.movingTo !== entry.movingTo
  ) {
    throw refuse(
      `the execution was not started to move this tenant from ${entry.model} to ${entry.movingTo}`,
    );
  }
  return entry;
}

/**
 * The destination's restore of a moving tenant may go ahead (mobility.ts calls it before it reads anything and as
 * the restore transaction's last step): the execution holds the tenant moving here, the archive is the tenant's
 * own, and its digest and link are what the source cell's runner handed the execution's moveOut task. Returns the
 * digest and who vouched for it.
 */
export async function expectApprovedMoveIn(
  archive: string,
  tenantId: string,
  execution: string,
  handover: string,
  env: Env,
  deps: ApprovalDeps,
): Promise<{ sha256: string; from: string }> {
  const entry = await expectMoveHeld('destination', tenantId, execution, env, deps);
  const from = entry.model as 'pool' | 'bridge' | 'silo';
  const refuse = (why: string) =>
    new ProvisioningInputError(
      `tenant "${tenantId}" is moving into this ${env.model} cell from ${from}, but ${why}: nothing was written`,
    );
  if (!archive.startsWith(`tenants/${tenantId}/`)) throw refuse(`${archive} is not its own archive`);
  const state = moveOutStateName(from, env.model);
  const sha256 = await handedOverIn(
    state,
    'movedOut',
    { archive, tenantId, execution, handover },
    from,
    deps,
    refuse,
  );
  return { sha256, from: `the ${from} cell's runner` };
}

/** What moveOut names: the tenant, the workflow's execution and its task token. */
export interface MoveOutRequest {
  readonly tenantId: string;
  readonly execution: string;
  readonly taskToken: string;
}

/**
 * `moveOut`: the tenant frozen and exported here, its digest and a link to its archive handed to the workflow's task
 * (SendTaskSuccess); any failure fails the task with the reason (SendTaskFailure), so the workflow does not wait
 * for its timeout. A run again (the workflow's retry) freezes nothing new and exports again.
 */
export async function moveOut(
  request: MoveOutRequest,
  file: string,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  try {
    return await freezeAndHandOver(request, file, env, deps);
  } catch (e) {
    await deps
      .sendTaskFailure?.(
        request.taskToken,
        (e as Error).name || 'Error',
        (e as Error).message.slice(0, 32_000),
      )
      .catch(() => undefined);
    throw e;
  }
}

async function freezeAndHandOver(
  request: MoveOutRequest,
  file: string,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  const { tenantId, execution } = request;
  const started = Date.now();
  await expectMoveHeld('source', tenantId, execution, env, deps);
  if (!deps.sendTaskSuccess) {
    throw new ProvisioningInputError(
      `the runner of ${env.ownStack} cannot answer the onboarding workflow's tasks`,
    );
  }
  const lockClient = await deps.connect();
  try {
    const release = await holdTenantLock(lockClient, tenantId);
    try {
      // Again under the lock: a thaw of this request that got the lock first has ended it (the registry no longer
      // says the execution holds the tenant), and nothing is frozen again.
      await expectMoveHeld('source', tenantId, execution, env, deps);
      const model = dataModel(env.model);
      await withClient(deps, async (c) => {
        await model.freeze(c, tenantId, {});
        await waitForOlderTransactions(c, model.runtimeRole({}));
      });
      const schemaVersion = await schemaVersionOf(tenantId, env, deps);
      const database = await deps.runtimeDatabase();
      const manifest = await exportTenant(database.forTenant(tenantId), file, await deps.archiveKey(), {
        schemaVersion,
      });
      const bytes = fs.statSync(file).size;
      if (bytes > deps.maxArchiveBytes) {
        throw new Error(
          `the archive of tenant "${tenantId}" is ${bytes} bytes, more than this runner's ${deps.maxArchiveBytes}: raise its ephemeral storage`,
        );
      }
      const { key } = await uploadArchive(deps.s3, deps.bucket, tenantId, file, bytes, {
        model: env.model,
        'schema-version': String(manifest.schemaVersion),
        'move-execution': execution,
      });
      const sha256 = await fileSha256(file);
      await expectMoveHeld('source', tenantId, execution, env, deps);
      const handover = await getSignedUrl(
        deps.presigner ?? deps.s3,
        new GetObjectCommand({ Bucket: deps.bucket, Key: key }),
        { expiresIn: handoverLinkSeconds(bytes) },
      );
      try {
        await deps.sendTaskSuccess(
          request.taskToken,
          JSON.stringify({ sha256, handover, execution, tenantId, archive: key, schemaVersion }),
        );
      } catch (e) {
        throw new ProvisioningInputError(
          `Step Functions did not take the answer for this task token (${(e as Error).name}: it is not a waiting task of the onboarding workflow, or the call failed): a link to ${key} was not handed out, or, if the call failed after Step Functions took it, it expires in ${handoverLinkSeconds(bytes) / 60} minutes`,
        );
      }
      deps.log('moved out', { tenantId, execution, archive: key, sha256, bytes, rows: manifest.rows });
      return {
        action: 'moveOut',
        tenantId,
        model: env.model,
        bucket: deps.bucket,
        archive: key,
        bytes,
        archiveTenantId: tenantId,
        schemaVersion: manifest.schemaVersion,
        rows: manifest.rows,
        checksums: manifest.checksums,
        ms: Date.now() - started,
        sha256,
      };
    } finally {
      await release();
    }
  } finally {
    await lockClient.end().catch(() => undefined);
  }
}

/**
 * `dropMovedIn` (the destination cell's runner, on the move's failure path once the workflow marked it aborted):
 * waits for a restore of the move still running, then removes the tenant's place in this cell, whatever it holds
 * (a copy of the frozen source, which still has the tenant's data), after the workflow's rollback deploy dropped the
 * resource from the stack: the copy is gone even if CloudFormation's cleanup Delete of it failed. A silo's runner
 * runs before the silo's removal and empties its application schema instead (emptySilo). Idempotent.
 */
export async function dropMovedIn(
  tenantId: string,
  execution: string,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  const started = Date.now();
  await expectMoveHeld('destination', tenantId, execution, env, deps, 'drop');
  const lockClient = await deps.connect();
  try {
    const release = await waitForTenantLock(lockClient, tenantId, THAW_WAIT_MS);
    try {
      await expectMoveHeld('destination', tenantId, execution, env, deps, 'drop');
      // A silo keeps its (emptied) place: the silo goes with the rollback's deploys, and if they fail, the same
      // move sent again restores into it (its unchanged Custom::SiloTenant does not provision it again).
      await withClient(deps, (c) =>
        env.model === 'silo' ? emptySilo(c) : dataModel(env.model).offboard(c, tenantId, 'destroy', {}),
      );
    } finally {
      await release();
    }
  } finally {
    await lockClient.end().catch(() => undefined);
  }
  deps.log('dropped the place of a move rolled back', { tenantId, execution });
  return reportWithoutData('dropMovedIn', tenantId, env, deps, started);
}
