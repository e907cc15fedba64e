import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { siloRunner } from './from-archive';
import { execution, tenantId, THROTTLING, title } from './workflow-paths';

/** What a move's branch into a silo shares with the rest of the move (move.ts). */
export interface MoveParts {
  /** The source cell's runner's callback task: freeze, export, hand over digest and link. */
  readonly moveOutTask: (from: 'pool' | 'bridge', to: 'silo') => sfn.TaskStateBase;
  /** Drops the link from the execution's state once used. */
  readonly forgetLink: (from: 'pool' | 'bridge', to: 'silo') => sfn.Pass;
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
  // From here on a rollback has the silo's runner drop its copy and lifts the silo's protection before it removes
  // it (builtSiloRemoval), whatever this execution believes of the seal: a seal reported failed may have landed.
  const built = new sfn.Pass(wf, `MovedInSiloBuilt${title(from)}`, {
    result: sfn.Result.fromBoolean(true),
    resultPath: '$.siloBuilt',
  });
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
    { resultPath: '$.movedIn', resultSelector: { 'schemaVersion.$': '$.Payload.schemaVersion' } },
  );
  restore.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  // The silo first (tens of minutes), the freeze and export only then: the link the source's runner hands over is
  // valid for minutes, and the tenant's writes stay frozen only while its data moves.
  create
    .next(built)
    .next(onDeployError(ready))
    .next(seal)
    .next(onRunnerError(out))
    .next(onRunnerError(restore))
    .next(parts.forgetLink(from, 'silo'))
    .next(parts.switchModel);
  return create;
}

/**
 * The rollback of a move into a silo once its create-phase deploy succeeded (sealed or not: a seal reported failed
 * may have landed): the silo's runner removes the copy first (the runner goes with the silo), then a deploy lifts
 * the protection (the `retire` phase), so that `withoutMove` (the deploy without the move) can delete the silo. A
 * create-phase deploy that failed was rolled back by CloudFormation to the stack before it, with nothing protected.
 * A failure of either step goes to `failed`. Returns the first state.
 */
export function builtSiloRemoval(
  wf: OnboardingWorkflow,
  failed: sfn.IChainable,
  withoutMove: sfn.IChainable,
): sfn.IChainable {
  const dropSilo = siloRunner(wf, 'DropMovedIntoSilo', { action: 'dropMovedIn', tenantId, execution });
  dropSilo.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  dropSilo.addRetry({
    errors: ['States.ALL'],
    interval: Duration.seconds(10),
    backoffRate: 2,
    maxAttempts: 3,
  });
  dropSilo.addCatch(failed, { resultPath: '$.rollbackError' });
  const retireSilo = wf.build('RetireMovedInSilo', 'deploy', 'retire', '$.tenant.moveRequest');
  retireSilo.addCatch(failed, { resultPath: '$.rollbackError' });
  dropSilo.next(retireSilo).next(withoutMove);
  return dropSilo;
}
