import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { MOVE_DETAIL_TYPES } from '../../../contracts';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { siloRunner } from './from-archive';
import { execution, retryIdempotent, tenantId, title } from './workflow-paths';

const SHARED = ['pool', 'bridge'] as const;

/**
 * Purging the copy a move kept (an approver's `purge` request; the entry recorded `purgeCopy` with the lock, and the
 * tenant serves on from its cell): that cell's runner removes the kept place and the tenant's archives in its bucket
 * (`PurgeKept<Model>Copy`, idempotent, so retried), then `keptCopy` goes with the lock and TenantCopyPurged is
 * emitted. A silo a move out of it kept is in the tenant's own stack: its runner empties its schema and deletes the
 * tenant's archives in its bucket, a deploy lifts its protection (`retire`), and the deploy without it removes it
 * (`DeployWithoutKeptSilo`; a silo an earlier purge already removed gets that deploy only); the registry's request
 * then no longer names it. On failure the lock is released with the reason; a purge requested again finishes it.
 */
export function purgeStates(wf: OnboardingWorkflow): sfn.IChainable {
  const failed = new sfn.Fail(wf, 'PurgeFailed', {
    error: 'TenantPurgeFailed',
    causePath: '$.failure.reason',
  });
  const unrecorded = new sfn.Fail(wf, 'PurgeFailedUnrecorded', {
    error: 'TenantPurgeFailed',
    cause:
      'the purge failed and its failure could not be recorded in the registry; the reconciler releases the tenant with the reason',
  });
  // Released with the reason, its status as it was (active, or offboarded with its data kept).
  const release = wf.step('ReleaseAfterPurgeFailed', {
    step: 'purgeFailed',
    tenantId,
    execution,
    reason: sfn.JsonPath.stringAt('$.failure.reason'),
  });
  release.addCatch(unrecorded, { resultPath: '$.failureOfFailure' });
  release.next(failed);
  const genericReason = new sfn.Pass(wf, 'GenericPurgeFailureReason', {
    parameters: { reason: sfn.JsonPath.format('{}: {}', tenantId, sfn.JsonPath.stringAt('$.error.Error')) },
    resultPath: '$.failure',
  });
  genericReason.next(release);
  const reason = wf.step(
    'ReadPurgeFailureReason',
    { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error'), fromStack: false },
    '$.failure',
  );
  reason.addCatch(genericReason, { resultPath: '$.failureOfFailure' });
  reason.next(release);

  const done = wf.step('MarkPurged', { step: 'purged', tenantId, execution });
  done.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 3 });
  done.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });
  const emit = wf.emit('EmitCopyPurged', MOVE_DETAIL_TYPES.copyPurged, {
    tenantId,
    copy: sfn.JsonPath.stringAt('$.tenant.purgeCopy'),
  });
  const purged = new sfn.Succeed(wf, 'Purged');
  emit.addCatch(purged, { resultPath: '$.emitError' });
  done.next(emit).next(purged);

  const purge = new sfn.Choice(wf, 'PurgeInItsCell');
  for (const model of SHARED) {
    const task = wf.runner(`PurgeKept${title(model)}Copy`, model, { action: 'purge', tenantId, execution });
    retryIdempotent(task);
    task.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });
    task.next(done);
    purge.when(sfn.Condition.stringEquals('$.tenant.purgeCopy', model), task);
  }
  // A deploy's reason is read from the tenant stack's events.
  const deployReason = wf.step(
    'ReadPurgeDeployFailureReason',
    { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error'), fromStack: true },
    '$.failure',
  );
  deployReason.addCatch(genericReason, { resultPath: '$.failureOfFailure' });
  deployReason.next(release);
  purge.when(
    sfn.Condition.stringEquals('$.tenant.purgeCopy', 'silo'),
    keptSiloRemoval(wf, reason, deployReason, done),
  );
  return purge.otherwise(
    new sfn.Pass(wf, 'NotASharedCellCopy', {
      parameters: {
        Error: 'NotASharedCellCopy',
        Cause: 'only a copy a move kept (in the pool or bridge cell, or the silo it left) is purged',
      },
      resultPath: '$.error',
    }).next(genericReason),
  );
}

/**
 * A kept silo's purge (purgeStates): emptied by its runner, unprotected, removed. A failure goes to `runnerFailed`
 * or `deployFailed` (which read its reason).
 */
function keptSiloRemoval(
  wf: OnboardingWorkflow,
  runnerFailed: sfn.IChainable,
  deployFailed: sfn.IChainable,
  done: sfn.IChainable,
): sfn.IChainable {
  const onError =
    (failed: sfn.IChainable) =>
    <T extends sfn.TaskStateBase | sfn.CustomState>(state: T): T => {
      state.addCatch(failed, { errors: ['States.ALL'], resultPath: '$.error' });
      return state;
    };
  const remove = onError(deployFailed)(
    wf.build('DeployWithoutKeptSilo', 'deploy', 'steady', '$.tenant.purgedRequest'),
  );
  remove.next(done);
  const retire = onError(deployFailed)(
    wf.build('RetireKeptSilo', 'deploy', 'retire', '$.tenant.tenantRequest'),
  );
  retire.next(remove);
  const empty = siloRunner(wf, 'PurgeKeptSiloCopy', { action: 'purge', tenantId, execution });
  retryIdempotent(empty);
  onError(runnerFailed)(empty).next(retire);
  return new sfn.Choice(wf, 'KeptSiloStillThere')
    .when(sfn.Condition.booleanEquals('$.tenant.keptSiloGone', true), remove)
    .otherwise(empty);
}
