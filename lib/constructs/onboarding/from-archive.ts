import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { execution, tenantId, THROTTLING, title } from './workflow-paths';

const archive = sfn.JsonPath.stringAt('$.tenant.restoreArchive');

/**
 * The onboarding's branch for a tenant started from an archive: from its own cell's (the cell's runner restores it),
 * from the other shared cell's (vouched for there and handed over: handoverStates), or none (on to `invite`).
 */
export function startsFromArchive(
  wf: OnboardingWorkflow,
  onError: <T extends sfn.TaskStateBase>(state: T) => T,
  invite: sfn.IChainable,
): sfn.Choice {
  const choice = new sfn.Choice(wf, 'StartsFromArchive', {
    comment: 'A tenant onboarded with restoreFrom: a mobility runner restores the archive into it',
  });
  for (const model of ['pool', 'bridge'] as const) {
    choice.when(
      sfn.Condition.and(
        sfn.Condition.isPresent('$.tenant.restoreArchive'),
        sfn.Condition.isPresent('$.tenant.restoreArchiveModel'),
        sfn.Condition.stringEquals('$.tenant.model', model),
      ),
      handoverStates(wf, model, onError, invite),
    );
  }
  for (const model of ['pool', 'bridge'] as const) {
    choice.when(
      sfn.Condition.and(
        sfn.Condition.isPresent('$.tenant.restoreArchive'),
        sfn.Condition.isNotPresent('$.tenant.restoreArchiveModel'),
        sfn.Condition.stringEquals('$.tenant.model', model),
      ),
      onError(restoreFromOwnCell(wf, model)).next(invite),
    );
  }
  return choice.otherwise(invite);
}

/**
 * The shared cell's mobility runner restores the accepted request's archive into the new tenant (lambda/
 * tenant-provisioner/mobility-approval.ts): only for this execution, which the registry must say holds the
 * tenant with that archive recorded and Step Functions must say is running, started for them. The role may invoke the two shared runners by their fixed names, nothing else of the cells. Throttling and
 * Lambda's service errors are retried: a restore run again after its answer was lost finds exactly the
 * archive's rows there and reports done (rerunIsDone); one that runs while the first still holds the tenant's
 * operation lock fails, and so does the onboarding, which can then be asked for again.
 */
function restoreFromOwnCell(wf: OnboardingWorkflow, model: 'pool' | 'bridge'): sfn.TaskStateBase {
  const id = model === 'pool' ? 'RestorePoolArchive' : 'RestoreBridgeArchive';
  const task = wf.runner(id, model, {
    action: 'restore',
    tenantId,
    archive,
    execution,
  });
  task.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  return task;
}

/**
 * A new pool or bridge tenant started from an archive of the other shared cell (an approver's onboard request with
 * `restoreFrom` and `restoreFromModel`; lambda/tenant-provisioner/mobility-handover.ts). Once the tenant's place is
 * built: the archive's cell's runner vouches for it (verifies it with that cell's signing key, answers its SHA-256
 * and a link valid for minutes); the digest is recorded in the registry with the lock; the tenant's own runner
 * fetches the link and restores the bytes only if they give that digest. Neither runner gains the other's key or
 * bucket, and neither writes the registry. Only errors that say the runner did not run are retried; any other
 * failure takes the onboarding's failure path (`onError`), like a restore from the tenant's own cell.
 * Returns the first state, for the onboarding of a tenant of `model`.
 */
function handoverStates(
  wf: OnboardingWorkflow,
  model: 'pool' | 'bridge',
  onError: <T extends sfn.TaskStateBase>(state: T) => T,
  next: sfn.IChainable,
): sfn.IChainable {
  const from = model === 'pool' ? 'bridge' : 'pool';
  const vouch = wf.runner(
    `Vouch${title(from)}ArchiveFor${title(model)}`,
    from,
    { action: 'vouch', tenantId, archive, execution },
    '$.vouched',
    { sha256: sfn.JsonPath.stringAt('$.sha256'), handover: sfn.JsonPath.stringAt('$.handover') },
  );
  vouch.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  const record = wf.step(`Record${title(from)}ArchiveDigestFor${title(model)}`, {
    step: 'recordArchiveDigest',
    tenantId,
    execution,
    archive,
    sha256: sfn.JsonPath.stringAt('$.vouched.sha256'),
  });
  const restore = wf.runner(`RestoreHandedOver${title(from)}ArchiveInto${title(model)}`, model, {
    action: 'restore',
    tenantId,
    archive,
    execution,
    handover: sfn.JsonPath.stringAt('$.vouched.handover'),
  });
  restore.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  onError(vouch).next(onError(record)).next(onError(restore)).next(next);
  return vouch;
}
