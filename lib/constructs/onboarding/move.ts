import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { MOVE_DETAIL_TYPES, moveOutStateName } from '../../../contracts';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { execution, tenantId, THROTTLING, title, retryIdempotent } from './workflow-paths';
import { builtSiloRemoval, forgetRemovedSilo, intoSilo } from './move-into-silo';
import { outOfSilo, thawInSilo } from './move-out-of-silo';

const SHARED = ['pool', 'bridge'] as const;
const other = (model: 'pool' | 'bridge') => (model === 'pool' ? 'bridge' : 'pool');

/**
 * Moving a tenant between the pool and bridge cells (an approver's `move` request; the entry set it `moving` to the
 * other cell, so the API answers it 503), into a silo of its own (the same steps, its silo built and sealed in
 * step 1 and restored by its own runner in step 3: move-into-silo.ts), or out of its silo (its own runner the source
 * in step 2, the silo kept in the stack until a purge: move-out-of-silo.ts):
 *
 * 1. `DeployMovePhase`: the tenant's stack with its place in the other cell added beside the untouched source
 *    (`moveRequest`: `movingTo`); that cell's provisioner builds the empty place and writes no registry field.
 * 2. `MoveOut<From>To<To>`: the source cell's runner freezes the tenant's writes, exports it to its bucket and
 *    completes this callback task with the archive's SHA-256 and a link to it, valid for minutes (lambda/
 *    tenant-provisioner/mobility-move.ts): only after the deploy, so nothing slow stands between the link and its
 *    use. The link is dropped from the execution's state once used.
 * 3. `RestoreMoved<From>Into<To>`: the destination cell's runner restores those bytes into the place, only if they
 *    give that digest; a run again that finds exactly the archive's rows there is done.
 * 4. `SwitchModel`: one conditional write holding the lock: the tenant is served by the other cell, its old place
 *    recorded as kept (`keptCopy`), the lock released. From here on the move only rolls forward.
 * 5. `EmitMoved`, then `DeployMovedTenant`: the stack as moved (`movedRequest`), which drops the source's resource;
 *    its provisioner keeps the data, frozen and unreachable.
 *
 * A failure before the switch rolls back: the move marked aborted in the registry (`AbortMove`), the stack deployed
 * without `movingTo` (the destination's provisioner removes the copy it held, for an aborted move only: a deploy from
 * a stale catalog meanwhile leaves it), the destination's runner makes sure that copy is gone (`DropMovedInto<To>`:
 * it waits for a restore of the move still running), the source's runner thaws the tenant, which serves again where it was, with the reason,
 * and TenantMoveFailed is emitted. If the rollback deploy or the thaw fails, the tenant stays `moving` (503) with
 * the reason, and a new move request to the same cell finishes the move. A switch whose outcome is unknown is never
 * rolled back (that would remove the place the tenant may already be served from): the execution fails and the
 * reconciler leaves the tenant `moving` with the reason if the switch did not land.
 */
export function moveStates(wf: OnboardingWorkflow): sfn.IChainable {
  const failed = new sfn.Fail(wf, 'MoveFailed', { error: 'TenantMoveFailed', causePath: '$.failure.reason' });
  const unrecorded = new sfn.Fail(wf, 'MoveFailedUnrecorded', {
    error: 'TenantMoveFailed',
    cause:
      'the move failed and its failure could not be recorded in the registry; the reconciler leaves the tenant moving (503) with the reason',
  });
  const emitFailed = wf.emit('EmitMoveFailed', MOVE_DETAIL_TYPES.moveFailed, {
    tenantId,
    to: sfn.JsonPath.stringAt('$.tenant.movingTo'),
    reason: sfn.JsonPath.stringAt('$.failure.reason'),
  });
  emitFailed.addCatch(failed, { resultPath: '$.failureOfFailure' });
  emitFailed.next(failed);
  const serveAgain = wf.step('ServeAgainAfterMoveFailed', {
    step: 'setStatus',
    tenantId,
    execution,
    status: 'active',
    release: true,
    reason: sfn.JsonPath.stringAt('$.failure.reason'),
  });
  serveAgain.addCatch(unrecorded, { resultPath: '$.failureOfFailure' });
  serveAgain.next(emitFailed);
  const keepMoving = (id: string, why: string) => {
    const keep = wf.step(id, {
      step: 'setStatus',
      tenantId,
      execution,
      status: 'moving',
      release: true,
      reason: sfn.JsonPath.format(
        `{}; ${why}: request the move again to finish it`,
        sfn.JsonPath.stringAt('$.failure.reason'),
      ),
    });
    keep.addCatch(unrecorded, { resultPath: '$.failureOfFailure' });
    keep.next(emitFailed);
    return keep;
  };

  // The rollback: the stack as it was (the destination's place removed), then the tenant thawed where it was.
  const thaw = new sfn.Choice(wf, 'ThawWhereItWas');
  const keepFrozen = keepMoving('KeepMovingAfterThawFailed', 'lifting the freeze failed too');
  for (const model of SHARED) {
    const task = wf.runner(
      `ThawMoving${title(model)}Tenant`,
      model,
      { action: 'thaw', tenantId, execution },
      '$.thawed',
    );
    // A thaw is idempotent: retried on any error (the database may be failing over).
    retryIdempotent(task);
    task.addCatch(keepFrozen, { resultPath: '$.thawError' });
    task.next(serveAgain);
    thaw.when(sfn.Condition.stringEquals('$.tenant.model', model), task);
  }
  thaw.when(sfn.Condition.stringEquals('$.tenant.model', 'silo'), thawInSilo(wf, keepFrozen, serveAgain));
  thaw.otherwise(keepFrozen);
  const rollbackFailed = keepMoving(
    'KeepMovingAfterRollbackFailed',
    "removing its place in the other cell (its stack's move deploy) failed too",
  );
  // Marked first: only a move the workflow rolls back has its destination's place removed by the deploy.
  const abort = wf.step('AbortMove', { step: 'abortMove', tenantId, execution }, '$.aborted');
  abort.addCatch(rollbackFailed, { resultPath: '$.rollbackError' });
  const rollback = wf.build('DeployWithoutMove', 'deploy', 'steady', '$.tenant.tenantRequest');
  rollback.addCatch(rollbackFailed, { resultPath: '$.rollbackError' });
  // Then the destination's runner makes sure its copy is gone (CloudFormation does not fail an update whose
  // cleanup Delete fails, so the deploy alone could leave it). Only after the deploy: if the deploy fails, the
  // place stays in the stack with its copy, and the same move request sent again finds it there and finishes.
  const drop = new sfn.Choice(wf, 'DropMovedInCopy');
  for (const model of SHARED) {
    const task = wf.runner(`DropMovedInto${title(model)}`, model, {
      action: 'dropMovedIn',
      tenantId,
      execution,
    });
    // Idempotent: retried on any error (the database may be failing over).
    retryIdempotent(task);
    task.addCatch(rollbackFailed, { resultPath: '$.rollbackError' });
    task.next(thaw);
    drop.when(sfn.Condition.stringEquals('$.tenant.movingTo', model), task);
  }
  // A silo (emptied before the deploy removed it, builtSiloRemoval): the registry forgets how far it got.
  drop.when(sfn.Condition.stringEquals('$.tenant.movingTo', 'silo'), forgetRemovedSilo(wf, thaw));
  drop.otherwise(thaw);
  abort.next(builtSiloRemoval(wf, rollbackFailed, rollback));
  rollback.next(drop);
  const genericReason = new sfn.Pass(wf, 'GenericMoveFailureReason', {
    parameters: { reason: sfn.JsonPath.format('{}: {}', tenantId, sfn.JsonPath.stringAt('$.error.Error')) },
    resultPath: '$.failure',
  });
  genericReason.next(abort);
  // A runner's reason is its own; a deploy's is read from the tenant stack's events.
  const reasonOf = (id: string, fromStack: boolean) => {
    const reason = wf.step(
      id,
      { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error'), fromStack },
      '$.failure',
    );
    reason.addCatch(genericReason, { resultPath: '$.failureOfFailure' });
    reason.next(abort);
    return <T extends sfn.TaskStateBase | sfn.CustomState>(state: T): T => {
      state.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });
      return state;
    };
  };
  const onRunnerError = reasonOf('ReadMoveFailureReason', false);
  const onDeployError = reasonOf('ReadMoveDeployFailureReason', true);

  // Done: announced, then the source's resource dropped from the stack (its data kept, frozen).
  const moved = new sfn.Succeed(wf, 'Moved');
  const notRetired = new sfn.Fail(wf, 'MovedSourceNotRetired', {
    error: 'TenantMovedSourceNotRetired',
    cause:
      "the tenant was moved and is served by the other cell, but its stack's deploy as moved failed: its old resource is still in the stack (its place there stays frozen); deploy the tenant's stack from its request as the registry keeps it (npm run fleet -- pull: update its catalog entry if the catalog lists it)",
  });
  const deployMoved = wf.build('DeployMovedTenant', 'deploy', 'steady', '$.tenant.movedRequest');
  deployMoved.addRetry({
    errors: THROTTLING,
    interval: Duration.seconds(10),
    backoffRate: 2,
    maxAttempts: 5,
  });
  deployMoved.addCatch(notRetired, { resultPath: '$.error' });
  deployMoved.next(moved);
  const emitMoved = wf.emit('EmitMoved', MOVE_DETAIL_TYPES.moved, {
    tenantId,
    from: sfn.JsonPath.stringAt('$.tenant.model'),
    to: sfn.JsonPath.stringAt('$.tenant.movingTo'),
  });
  emitMoved.addCatch(deployMoved, { resultPath: '$.emitError' });
  emitMoved.next(deployMoved);
  const switchModel = wf.step('SwitchModel', {
    step: 'switchModel',
    tenantId,
    execution,
    schemaVersion: sfn.JsonPath.numberAt('$.movedIn.schemaVersion'),
  });
  // Holding the lock, so a second attempt after a lost answer finds its own switch done.
  switchModel.addRetry({
    errors: ['States.ALL'],
    interval: Duration.seconds(5),
    backoffRate: 2,
    maxAttempts: 3,
  });
  switchModel.addCatch(
    new sfn.Fail(wf, 'MoveSwitchUnrecorded', {
      error: 'TenantMoveSwitchUnrecorded',
      cause:
        'the tenant was restored in the other cell but the switch could not be recorded: nothing is rolled back; the reconciler leaves it moving (503) with the reason unless the switch landed: request the move again to finish it',
    }),
    { resultPath: '$.failureOfFailure' },
  );
  switchModel.next(emitMoved);

  // The source cell's runner freezes and exports the tenant, and answers with its digest and link (a callback).
  const moveOutTask = (from: 'pool' | 'bridge', to: 'pool' | 'bridge' | 'silo') => {
    const out = wf.runner(
      moveOutStateName(from, to),
      from,
      { action: 'moveOut', tenantId, execution },
      '$.movedOut',
      {
        callback: true,
        resultSelector: {
          sha256: sfn.JsonPath.stringAt('$.sha256'),
          handover: sfn.JsonPath.stringAt('$.handover'),
          execution: sfn.JsonPath.stringAt('$.execution'),
          tenantId: sfn.JsonPath.stringAt('$.tenantId'),
          archive: sfn.JsonPath.stringAt('$.archive'),
          schemaVersion: sfn.JsonPath.numberAt('$.schemaVersion'),
        },
      },
    );
    out.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
    return out;
  };
  const forgetLink = (from: 'pool' | 'bridge' | 'silo', to: 'pool' | 'bridge' | 'silo') =>
    new sfn.Pass(wf, `ForgetMoveLink${title(from)}To${title(to)}`, {
      comment:
        'The link is a credential for the archive until it expires: not carried into the execution output',
      parameters: { 'schemaVersion.$': '$.movedOut.schemaVersion', 'archive.$': '$.movedOut.archive' },
      resultPath: '$.movedOut',
    });

  // The destination cell's runner restores the handed-over bytes. Its answer's schema version is the tenant's now
  // (an older archive is migrated forward as it is restored).
  const restoreInto = (from: 'pool' | 'bridge' | 'silo', to: 'pool' | 'bridge') => {
    const restore = wf.runner(
      `RestoreMoved${title(from)}Into${title(to)}`,
      to,
      {
        action: 'restore',
        tenantId,
        archive: sfn.JsonPath.stringAt('$.movedOut.archive'),
        execution,
        handover: sfn.JsonPath.stringAt('$.movedOut.handover'),
      },
      '$.movedIn',
      { resultSelector: { schemaVersion: sfn.JsonPath.numberAt('$.schemaVersion') } },
    );
    // A restore run again finds exactly the archive's rows there and is done (rerunIsDone).
    restore.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
    return restore;
  };

  const moveOut = new sfn.Choice(wf, 'MoveOutOfItsCell');
  for (const from of SHARED) {
    const to = other(from);
    const out = moveOutTask(from, to);
    const deploy = onDeployError(
      wf.build(`DeployMovePhase${title(from)}To${title(to)}`, 'deploy', 'steady', '$.tenant.moveRequest'),
    );
    const restore = restoreInto(from, to);
    // The destination's place first, the freeze and export only then: the link the source's runner hands over is
    // valid for minutes, so nothing slow stands between it and the restore (and the freeze is shorter).
    deploy.next(onRunnerError(out)).next(onRunnerError(restore)).next(forgetLink(from, to)).next(switchModel);
    moveOut.when(
      sfn.Condition.and(
        sfn.Condition.stringEquals('$.tenant.model', from),
        sfn.Condition.stringEquals('$.tenant.movingTo', to),
      ),
      deploy,
    );
  }
  // Into a silo of its own (move-into-silo.ts).
  for (const from of SHARED) {
    moveOut.when(
      sfn.Condition.and(
        sfn.Condition.stringEquals('$.tenant.model', from),
        sfn.Condition.stringEquals('$.tenant.movingTo', 'silo'),
      ),
      intoSilo(wf, from, { moveOutTask, forgetLink, onRunnerError, onDeployError, switchModel }),
    );
  }
  // Out of its silo into a shared cell (move-out-of-silo.ts).
  for (const to of SHARED) {
    moveOut.when(
      sfn.Condition.and(
        sfn.Condition.stringEquals('$.tenant.model', 'silo'),
        sfn.Condition.stringEquals('$.tenant.movingTo', to),
      ),
      outOfSilo(wf, to, { forgetLink, onRunnerError, onDeployError, switchModel, restoreInto }),
    );
  }
  // Accept admits a move to another model only; anything else fails with the reason, changing nothing.
  return moveOut.otherwise(
    new sfn.Pass(wf, 'NotAMoveBetweenSharedCells', {
      parameters: {
        Error: 'NotAMoveBetweenSharedCells',
        Cause: 'only a move to another model runs through the workflow',
      },
      resultPath: '$.error',
    }).next(genericReason),
  );
}
