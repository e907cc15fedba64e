import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { siloRunner } from './from-archive';
import { execution, tenantId, THROTTLING, title, retryIdempotent } from './workflow-paths';

/** What a move's branch into a silo shares with the rest of the move (move.ts). */
export interface MoveParts {
  /** The source cell's runner's callback task: freeze, export, hand over digest and link. */
  readonly moveOutTask: (from: 'pool' | 'bridge', to: 'silo') => sfn.TaskStateBase;
  /** Drops the link from the execution's state once used. */
  readonly forgetLink: (from: 'pool' | 'bridge' | 'silo', to: 'pool' | 'bridge' | 'silo') => sfn.Pass;
  /** Catches a runner's failure into the rollback, with the runner's reason. */
  readonly onRunnerError: <T extends sfn.TaskStateBase | sfn.CustomState>(state: T) => T;
  /** Catches a deploy's failure into the rollback, with the reason from the tenant stack's events. */
  readonly onDeployError: <T extends sfn.TaskStateBase | sfn.CustomState>(state: T) => T;
  /** The switch, and what follows it (never rolled back). */
  readonly switchModel: sfn.IChainable;
}

/**
 * A move from `from` into a silo of the tenant's own: the silo built in the tenant's stack as a silo is onboarded
 * (unprotected first, so a failed deploy rolls back without a protected resource; then, once its service is ready,
 * sealed), then the tenant frozen and exported by the source's runner and the handed-over bytes restored by the
 * silo's own runner, and on to the switch. Returns the first state.
 */
export function intoSilo(wf: OnboardingWorkflow, from: 'pool' | 'bridge', parts: MoveParts): sfn.IChainable {
  const { onRunnerError, onDeployError } = parts;
  const out = parts.moveOutTask(from, 'silo');
  const create = onDeployError(
    wf.build(`DeployMovePhase${title(from)}ToSilo`, 'deploy', 'create', '$.tenant.moveRequest'),
  );
  // The silo's own service, never by the tenant's name: until resolvers catch up, that may still reach the cell
  // the tenant leaves, whose service answers too.
  const ready = wf.checkReady(`CheckMovedSiloReady${title(from)}`, 'silo', false);
  const seal = onDeployError(
    wf.build(`SealMovePhase${title(from)}ToSilo`, 'deploy', 'steady', '$.tenant.moveRequest'),
  );
  // The registry records how far the silo got before each step that takes it further (a rollback reads it there,
  // whichever execution of the move built the silo: builtSiloRemoval): `sealed` before the deploy that protects
  // it (one reported failed may have landed), `filled` before its runner may hold the tenant's data.
  const mark = (stage: 'sealed' | 'filled') => {
    const task = wf.step(`MarkMoveSilo${title(stage)}${title(from)}`, {
      step: 'markMoveSilo',
      tenantId,
      execution,
      stage,
    });
    // An idempotent write: retried on any error but a lost lock, so one Lambda fault does not undo a silo's build.
    task.addRetry({ errors: ['LockLost'], maxAttempts: 0 });
    task.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 3 });
    return onRunnerError(task);
  };
  const restore = siloRunner(
    wf,
    `RestoreMoved${title(from)}IntoSilo`,
    {
      action: 'restore',
      tenantId,
      archive: sfn.JsonPath.stringAt('$.movedOut.archive'),
      execution,
      handover: sfn.JsonPath.stringAt('$.movedOut.handover'),
    },
    { resultPath: '$.movedIn', resultSelector: { 'schemaVersion.$': '$.schemaVersion' } },
  );
  restore.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  // The silo first (tens of minutes), the freeze and export only then: the link the source's runner hands over is
  // valid for minutes, and the tenant's writes stay frozen only while its data moves.
  create
    .next(onDeployError(ready))
    .next(mark('sealed'))
    .next(seal)
    .next(onRunnerError(out))
    .next(mark('filled'))
    .next(onRunnerError(restore))
    .next(parts.forgetLink(from, 'silo'))
    .next(parts.switchModel);
  return create;
}

/**
 * The rollback of a move into a silo, from how far the registry says the silo got (`moveSilo`, read by AbortMove
 * into `$.aborted`; a move sent again after a failed rollback meets the silo its previous execution left):
 * - `filled`: the silo's runner empties its copy first (the runner goes with the silo; the removed silo's final
 *   snapshot then holds no tenant rows), then a deploy lifts the protection (the `retire` phase), so that
 *   `withoutMove` (the deploy without the move) can delete the silo;
 * - `sealed`: the protection lifted, then `withoutMove`;
 * - otherwise the silo was never protected (a create-phase deploy that failed was rolled back by CloudFormation
 *   to the stack before it), or it is `gone` (recorded, but the tenant's stack holds no database any more: the
 *   removal an earlier execution asked for landed after that execution died): `withoutMove` alone, never a
 *   deploy that would build the silo again only to remove it.
 * A runner not found while the stack holds the silo's database: the protection is lifted anyway, since the
 * registry's stage says a seal may have landed. A failure of either step goes to `failed`.
 */
export function builtSiloRemoval(
  wf: OnboardingWorkflow,
  failed: sfn.IChainable,
  withoutMove: sfn.IChainable,
): sfn.Choice {
  const retireSilo = wf.build('RetireMovedInSilo', 'deploy', 'retire', '$.tenant.moveRequest');
  retireSilo.addCatch(failed, { resultPath: '$.rollbackError' });
  retireSilo.next(withoutMove);
  const emptySilo = siloRunner(wf, 'EmptyMovedInSilo', { action: 'dropMovedIn', tenantId, execution });
  retryIdempotent(emptySilo);
  emptySilo.addCatch(retireSilo, {
    errors: ['Lambda.ResourceNotFoundException'],
    resultPath: '$.emptyError',
  });
  emptySilo.addCatch(failed, { resultPath: '$.rollbackError' });
  emptySilo.next(retireSilo);
  const toSilo = sfn.Condition.stringEquals('$.tenant.movingTo', 'silo');
  return new sfn.Choice(wf, 'BuiltSiloToRemove')
    .when(sfn.Condition.and(toSilo, sfn.Condition.stringEquals('$.aborted.moveSilo', 'filled')), emptySilo)
    .when(sfn.Condition.and(toSilo, sfn.Condition.stringEquals('$.aborted.moveSilo', 'sealed')), retireSilo)
    .otherwise(withoutMove);
}

/**
 * After the rollback's deploy removed the silo: the registry forgets its stage, so a move sent later builds from
 * nothing. If that write fails the thaw goes on (a later rollback then lifts a protection that is not there).
 */
export function forgetRemovedSilo(wf: OnboardingWorkflow, next: sfn.IChainable): sfn.IChainable {
  const forget = wf.step('ForgetRemovedSilo', {
    step: 'markMoveSilo',
    tenantId,
    execution,
    stage: 'removed',
  });
  forget.addCatch(next, { resultPath: '$.forgetError' });
  return forget.next(next);
}
