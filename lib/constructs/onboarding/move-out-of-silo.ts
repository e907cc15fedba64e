import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { moveOutStateName } from '../../../contracts';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { siloRunner } from './from-archive';
import type { MoveParts } from './move-into-silo';
import { execution, tenantId, THROTTLING, title, retryIdempotent } from './workflow-paths';

/**
 * A move out of the tenant's silo into the `to` cell: the same steps as between the shared cells (move.ts), with
 * the silo's own runner as the source:
 *
 * 1. `DeployMovePhaseSiloTo<To>`: the tenant's stack with its place in the `to` cell added beside the untouched
 *    silo (`moveRequest`); that cell's provisioner builds the empty place and writes no registry field.
 * 2. `MoveOutSiloTo<To>`: the silo's runner freezes the tenant's writes, exports it to the silo's bucket (under the
 *    tenant's own key) and completes this callback task with the archive's SHA-256 and a link to it.
 * 3. `RestoreMovedSiloInto<To>`: the `to` cell's runner restores those bytes, only if they give that digest.
 * 4. The switch, and the deploy as moved (`movedRequest`): the tenant's request now keeps the silo (`keptSilo`),
 *    so that deploy changes nothing in it: the silo stays, frozen, its API answering 503, until an approver's
 *    purge empties and removes it (purge.ts).
 *
 * A failure before the switch rolls back as any move does (move.ts); the silo's runner thaws the tenant.
 */
export function outOfSilo(
  wf: OnboardingWorkflow,
  to: 'pool' | 'bridge',
  parts: Omit<MoveParts, 'moveOutTask'> & {
    /** The destination cell's runner's restore of the handed-over bytes (move.ts). */
    readonly restoreInto: (from: 'silo', to: 'pool' | 'bridge') => sfn.TaskStateBase;
  },
): sfn.IChainable {
  const { onRunnerError, onDeployError } = parts;
  const deploy = onDeployError(
    wf.build(`DeployMovePhaseSiloTo${title(to)}`, 'deploy', 'steady', '$.tenant.moveRequest'),
  );
  const out = siloRunner(
    wf,
    moveOutStateName('silo', to),
    { action: 'moveOut', tenantId, execution },
    {
      callback: true,
      resultPath: '$.movedOut',
      resultSelector: {
        'sha256.$': '$.sha256',
        'handover.$': '$.handover',
        'execution.$': '$.execution',
        'tenantId.$': '$.tenantId',
        'archive.$': '$.archive',
        'schemaVersion.$': '$.schemaVersion',
      },
    },
  );
  out.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  const restore = parts.restoreInto('silo', to);
  deploy
    .next(onRunnerError(out))
    .next(onRunnerError(restore))
    .next(parts.forgetLink('silo', to))
    .next(parts.switchModel);
  return deploy;
}

/** The move's rollback thaws a tenant moving out of its silo through the silo's own runner. */
export function thawInSilo(
  wf: OnboardingWorkflow,
  keepFrozen: sfn.IChainable,
  serveAgain: sfn.IChainable,
): sfn.IChainable {
  const task = siloRunner(wf, 'ThawMovingSiloTenant', { action: 'thaw', tenantId, execution });
  // A thaw is idempotent: retried on any error (the database may be failing over).
  retryIdempotent(task);
  task.addCatch(keepFrozen, { resultPath: '$.thawError' });
  return task.next(serveAgain);
}
