import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { RESTORE_DETAIL_TYPES } from '../../../contracts';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { siloRunner } from './from-archive';
import { ACTION, execution, tenantId, THROTTLING, title, retryIdempotent } from './workflow-paths';

/**
 * Restoring one of a tenant's own archives over its data (an approver's `restore` request), and abandoning one
 * that left the tenant frozen. The entry set the tenant `moving` within its model (the API answers it 503) and
 * recorded the archive with the lock. Its cell's runner freezes it, exports what it holds to a safety archive,
 * and replaces its rows and lifts the freeze in one transaction (lambda/tenant-provisioner/mobility-replace.ts);
 * then the tenant is active again and TenantRestored names both archives. Only errors that say the runner did
 * not run are retried: a replace is never started twice. On any failure the runner is asked to thaw: it waits
 * for a replace still running, ends the request (a replace of it not started yet does nothing), lifts the freeze
 * and says from the request's receipt whether its replace committed after all (its answer lost), in which case the
 * restore ends as done; otherwise the tenant serves again with what it had and the
 * reason. If even the thaw fails, it stays `moving` (503) with the reason, and a new restore request finishes it,
 * or an abandon request thaws it.
 * Returns the two entry points: the restore, and the abandon request's thaw.
 */
export function restoreOverStates(wf: OnboardingWorkflow): {
  restore: sfn.IChainable;
  abandon: sfn.IChainable;
} {
  const failed = new sfn.Fail(wf, 'RestoreFailed', {
    error: 'TenantRestoreFailed',
    causePath: '$.failure.reason',
  });
  const unrecorded = new sfn.Fail(wf, 'RestoreFailedUnrecorded', {
    error: 'TenantRestoreFailed',
    cause:
      'the restore failed and its failure could not be recorded in the registry; the reconciler leaves the tenant moving (503) with the reason',
  });
  const emitFailed = wf.emit('EmitRestoreFailed', RESTORE_DETAIL_TYPES.restoreFailed, {
    tenantId,
    archive: sfn.JsonPath.stringAt('$.tenant.restoreArchive'),
    reason: sfn.JsonPath.stringAt('$.failure.reason'),
  });
  emitFailed.addCatch(failed, { resultPath: '$.failureOfFailure' });
  emitFailed.next(failed);
  const abandoned = new sfn.Succeed(wf, 'RestoreAbandoned');
  const serveAgain = wf.step('ServeAgainAfterRestoreFailed', {
    step: 'setStatus',
    tenantId,
    execution,
    status: 'active',
    release: true,
    reason: sfn.JsonPath.stringAt('$.failure.reason'),
  });
  serveAgain.addCatch(unrecorded, { resultPath: '$.failureOfFailure' });
  serveAgain.next(
    new sfn.Choice(wf, 'AbandonedOrFailed')
      .when(sfn.Condition.stringEquals(ACTION, 'abandonRestore'), abandoned)
      .otherwise(emitFailed),
  );
  const keepFrozen = wf.step('KeepFrozenAfterThawFailed', {
    step: 'setStatus',
    tenantId,
    execution,
    status: 'moving',
    release: true,
    reason: sfn.JsonPath.format(
      '{}; lifting the freeze failed too: request the restore again to finish it, or abandon it',
      sfn.JsonPath.stringAt('$.failure.reason'),
    ),
  });
  keepFrozen.addCatch(unrecorded, { resultPath: '$.failureOfFailure' });
  keepFrozen.next(emitFailed);

  // Done: the tenant holds the archive's rows and serves. The status write is retried on any error (it holds
  // the lock, so a second attempt after a lost answer fails harmlessly); if it never lands the execution fails
  // and the reconciler leaves the tenant `moving` with the reason.
  const restoredDone = new sfn.Succeed(wf, 'Restored');
  const restoredUnrecorded = new sfn.Fail(wf, 'RestoredUnrecorded', {
    error: 'TenantRestoredUnrecorded',
    cause:
      'the tenant was restored but that could not be recorded in the registry; the reconciler leaves it moving (503): request the restore again, or abandon it',
  });
  const notAnnounced = new sfn.Fail(wf, 'RestoredNotAnnounced', {
    error: 'EventNotSent',
    cause: 'the tenant was restored and serves again; its TenantRestored event could not be sent',
  });
  const done = (suffix: string, safetyArchive: string): sfn.IChainable => {
    const mark = wf.step(`MarkRestored${suffix}`, {
      step: 'setStatus',
      tenantId,
      execution,
      status: 'active',
      release: true,
    });
    mark.addRetry({
      errors: ['States.ALL'],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: 3,
    });
    mark.addCatch(restoredUnrecorded, { resultPath: '$.failureOfFailure' });
    const emit = wf.emit(`EmitRestored${suffix}`, RESTORE_DETAIL_TYPES.restored, {
      tenantId,
      archive: sfn.JsonPath.stringAt('$.tenant.restoreArchive'),
      safetyArchive: sfn.JsonPath.stringAt(safetyArchive),
    });
    emit.addCatch(notAnnounced, { resultPath: '$.failureOfFailure' });
    return mark.next(emit).next(restoredDone);
  };

  const thawed = new sfn.Choice(wf, 'RestoredAfterAll', {
    comment: 'The replace committed though its invocation failed (its answer was lost): it is done',
  })
    .when(
      // (A runner of an earlier release says nothing of it: not restored.)
      sfn.Condition.and(
        sfn.Condition.isPresent('$.thawed.restored'),
        sfn.Condition.booleanEquals('$.thawed.restored', true),
        sfn.Condition.isPresent('$.thawed.safetyArchive'),
      ),
      done('AfterAll', '$.thawed.safetyArchive'),
    )
    .otherwise(serveAgain);
  const thaw = new sfn.Choice(wf, 'ThawInItsCell');
  for (const model of ['pool', 'bridge'] as const) {
    const task = wf.runner(
      `Thaw${title(model)}Tenant`,
      model,
      { action: 'thaw', tenantId, execution },
      '$.thawed',
    );
    // A thaw is idempotent: retried on any error (the database may be failing over).
    retryIdempotent(task);
    task.addCatch(keepFrozen, { resultPath: '$.thawError' });
    task.next(thawed);
    thaw.when(sfn.Condition.stringEquals('$.tenant.model', model), task);
  }
  // A silo's own runner (its answer under Payload, then put where the shared cells' runners' answers go).
  const siloThaw = siloRunner(
    wf,
    'ThawSiloTenant',
    { action: 'thaw', tenantId, execution },
    {
      // Where a shared cell's runner's answer goes (the silo's thaw always says both; a missing one is a
      // runtime error, which the reconciler leaves `moving` with the reason).
      resultPath: '$.thawed',
      resultSelector: { 'restored.$': '$.restored', 'safetyArchive.$': '$.safetyArchive' },
    },
  );
  retryIdempotent(siloThaw);
  // A silo whose runner does not exist (a stack of a release without one) froze nothing: it serves again, with
  // the way out in the reason.
  const noRunner = new sfn.Pass(wf, 'SiloRunnerNotThere', {
    parameters: {
      reason: sfn.JsonPath.format(
        '{}: the mobility runner of this silo does not exist (its stack predates it): nothing was frozen or restored; deploy the stack of the tenant from this release, then request the restore again',
        tenantId,
      ),
    },
    resultPath: '$.failure',
  }).next(serveAgain);
  siloThaw.addCatch(noRunner, { errors: ['Lambda.ResourceNotFoundException'], resultPath: '$.thawError' });
  siloThaw.addCatch(keepFrozen, { resultPath: '$.thawError' });
  siloThaw.next(thawed);
  thaw.when(sfn.Condition.stringEquals('$.tenant.model', 'silo'), siloThaw);
  thaw.otherwise(keepFrozen);
  const genericReason = new sfn.Pass(wf, 'GenericRestoreFailureReason', {
    parameters: {
      reason: sfn.JsonPath.format('{}: {}', tenantId, sfn.JsonPath.stringAt('$.error.Error')),
    },
    resultPath: '$.failure',
  });
  genericReason.next(thaw);
  const reason = wf.step(
    'ReadRestoreFailureReason',
    { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error'), fromStack: false },
    '$.failure',
  );
  reason.addCatch(genericReason, { resultPath: '$.failureOfFailure' });
  reason.next(thaw);

  const replace = new sfn.Choice(wf, 'RestoreInItsCell');
  for (const model of ['pool', 'bridge'] as const) {
    const task = wf.runner(
      `Restore${title(model)}TenantOver`,
      model,
      {
        action: 'replace',
        tenantId,
        archive: sfn.JsonPath.stringAt('$.tenant.restoreArchive'),
        execution,
      },
      '$.restored',
    );
    // Only what says the function was not invoked at all.
    task.addRetry({
      errors: ['ThrottlingException', 'Lambda.TooManyRequestsException', 'Lambda.ResourceConflictException'],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: 4,
    });
    task.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });
    replace.when(sfn.Condition.stringEquals('$.tenant.model', model), task);
    task.next(done(title(model), '$.restored.safetyArchive'));
  }
  const siloReplace = siloRunner(
    wf,
    'RestoreSiloTenantOver',
    {
      action: 'replace',
      tenantId,
      archive: sfn.JsonPath.stringAt('$.tenant.restoreArchive'),
      execution,
    },
    { resultPath: '$.restored', resultSelector: { 'safetyArchive.$': '$.safetyArchive' } },
  );
  siloReplace.addRetry({
    errors: ['ThrottlingException', 'Lambda.TooManyRequestsException', 'Lambda.ResourceConflictException'],
    interval: Duration.seconds(5),
    backoffRate: 2,
    maxAttempts: 4,
  });
  siloReplace.addCatch(noRunner, { errors: ['Lambda.ResourceNotFoundException'], resultPath: '$.error' });
  siloReplace.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });
  siloReplace.next(done('Silo', '$.restored.safetyArchive'));
  // First, with nothing frozen yet, the silo's runner says it can carry the request out and would be allowed to
  // thaw it (a runner of an earlier release, or without the IAM, refuses both: its refusal then leaves the tenant
  // serving as it was, instead of frozen at 503 with a thaw that cannot run).
  const checkReason = wf.step(
    'ReadRestoreCheckFailureReason',
    { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error'), fromStack: false },
    '$.failure',
  );
  checkReason.addCatch(
    new sfn.Pass(wf, 'GenericRestoreCheckFailureReason', {
      parameters: {
        reason: sfn.JsonPath.format(
          '{}: the runner of this silo cannot carry out the restore ({}): nothing was frozen or restored',
          tenantId,
          sfn.JsonPath.stringAt('$.error.Error'),
        ),
      },
      resultPath: '$.failure',
    }).next(serveAgain),
    { resultPath: '$.failureOfFailure' },
  );
  checkReason.next(serveAgain);
  const siloCheck = siloRunner(wf, 'CheckSiloRestore', {
    action: 'checkReplace',
    tenantId,
    archive: sfn.JsonPath.stringAt('$.tenant.restoreArchive'),
    execution,
  });
  siloCheck.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  siloCheck.addCatch(noRunner, { errors: ['Lambda.ResourceNotFoundException'], resultPath: '$.error' });
  siloCheck.addCatch(checkReason, { errors: ['States.ALL'], resultPath: '$.error' });
  siloCheck.next(siloReplace);
  replace.when(sfn.Condition.stringEquals('$.tenant.model', 'silo'), siloCheck);
  // Accept admits pool, bridge and silo tenants; anything else fails with the reason, changing nothing.
  replace.otherwise(
    new sfn.Pass(wf, 'NotASharedCellTenant', {
      parameters: {
        Error: 'NotASharedCellTenant',
        Cause: 'only a pool, bridge or silo tenant is restored over through the workflow',
      },
      resultPath: '$.error',
    }).next(reason),
  );
  const abandon = new sfn.Pass(wf, 'AbandonReason', {
    parameters: {
      reason: sfn.JsonPath.format(
        '{}: the restore was abandoned at the request of an approver; the tenant keeps the data it has',
        tenantId,
      ),
    },
    resultPath: '$.failure',
  }).next(thaw);
  return { restore: replace, abandon };
}
