import { Construct } from 'constructs';
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { OnboardingWorkflow } from './onboarding-workflow';
import { SILO_MOBILITY_RUNNER_PATTERN, vouchStateName } from '../../../contracts';
import { execution, isRunnerDataStep, runnerTimeouts, tenantId, THROTTLING, title } from './workflow-paths';

const archive = sfn.JsonPath.stringAt('$.tenant.restoreArchive');

/**
 * The onboarding's branch for a tenant started from an archive: from its own cell's (the cell's runner restores it),
 * from the other shared cell's (vouched for there and handed over: handoverStates), or none (on to `invite`).
 */
export function startsFromArchive(
  wf: OnboardingWorkflow,
  onError: Catching,
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
      handoverStates(wf, model === 'pool' ? 'bridge' : 'pool', model, onError, invite),
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
 * A silo's branch, once its stack is sealed: from a pool or bridge cell's archive (handed over into the silo's own
 * runner), or none (on to `invite`).
 */
export function siloStartsFromArchive(
  wf: OnboardingWorkflow,
  onError: Catching,
  invite: sfn.IChainable,
): sfn.Choice {
  const choice = new sfn.Choice(wf, 'SiloStartsFromArchive', {
    comment: "A silo onboarded with restoreFrom: a shared cell's archive, handed over into the silo's runner",
  });
  for (const from of ['pool', 'bridge'] as const) {
    choice.when(
      sfn.Condition.and(
        sfn.Condition.isPresent('$.tenant.restoreArchive'),
        sfn.Condition.isPresent('$.tenant.restoreArchiveModel'),
        sfn.Condition.stringEquals('$.tenant.restoreArchiveModel', from),
      ),
      handoverStates(wf, from, 'silo', onError, invite),
    );
  }
  return choice.otherwise(invite);
}

/**
 * The silos' mobility runners, by their names' pattern (one per silo, named from its tenant id): the workflow hands
 * a silo it onboards another cell's archive through its own runner, which acts only for this workflow's execution
 * that holds that tenant.
 */
export function siloRunnersInvoke(scope: Construct): iam.PolicyStatement {
  const arn = (resourceName: string) =>
    Stack.of(scope).formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  return new iam.PolicyStatement({
    actions: ['lambda:InvokeFunction'],
    resources: [arn(SILO_MOBILITY_RUNNER_PATTERN), arn(`${SILO_MOBILITY_RUNNER_PATTERN}:*`)],
  });
}

/**
 * The failure path of a restore into a new tenant: its reason is the runner's, read without the tenant stack's
 * events (a restore deploys nothing; a retried onboarding's stack still lists its older failed deploy), then on
 * to the onboarding's `markFailed` (or `generic` if even that read fails).
 */
export function archiveFailureCatch(
  wf: OnboardingWorkflow,
  generic: sfn.IChainable,
  markFailed: sfn.IChainable,
): Catching {
  const reason = wf.step(
    'ReadArchiveFailureReason',
    { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error'), fromStack: false },
    '$.failure',
  );
  reason.addCatch(generic, { resultPath: '$.failureOfFailure' });
  reason.next(markFailed);
  return <T extends sfn.TaskStateBase | sfn.CustomState>(state: T): T => {
    state.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });
    return state;
  };
}

/** The onboarding's failure path for a task state (its catch-all). */
export type Catching = <T extends sfn.TaskStateBase | sfn.CustomState>(state: T) => T;

/**
 * The shared cell's mobility runner restores the accepted request's archive into the new tenant (lambda/
 * tenant-provisioner/mobility-approval.ts): only for this execution, which the registry must say holds the
 * tenant with that archive recorded and Step Functions must say is running, started for them. Throttling and Lambda's service errors are retried: a restore run again after its answer was lost finds exactly the
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
 * built, the archive's cell's runner vouches for it: it verifies it with that cell's signing key and completes this
 * task, by its token, with the archive's SHA-256 and a link valid for minutes (whoever invokes that runner gets no
 * link). The tenant's own runner then reads them from this execution's history, fetches that link only, and
 * restores the bytes only if they give that digest. Neither runner gains the other's key or bucket, and neither
 * writes the registry. The link is dropped from the execution's state once used. Only errors that say the runner
 * did not run are retried; any other failure takes the onboarding's failure path (`onError`), like a restore from
 * the tenant's own cell. Returns the first state, for the onboarding of a tenant of `model`.
 */
function handoverStates(
  wf: OnboardingWorkflow,
  from: 'pool' | 'bridge',
  to: 'pool' | 'bridge' | 'silo',
  onError: Catching,
  next: sfn.IChainable,
): sfn.IChainable {
  const vouch = wf.runner(
    vouchStateName(from, to),
    from,
    { action: 'vouch', tenantId, archive, execution },
    '$.vouched',
    {
      callback: true,
      resultSelector: {
        sha256: sfn.JsonPath.stringAt('$.sha256'),
        handover: sfn.JsonPath.stringAt('$.handover'),
        execution: sfn.JsonPath.stringAt('$.execution'),
        tenantId: sfn.JsonPath.stringAt('$.tenantId'),
        archive: sfn.JsonPath.stringAt('$.archive'),
      },
    },
  );
  vouch.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  const payload = {
    action: 'restore',
    tenantId,
    archive,
    execution,
    handover: sfn.JsonPath.stringAt('$.vouched.handover'),
  };
  const id = `RestoreHandedOver${title(from)}ArchiveInto${title(to)}`;
  const restore = to === 'silo' ? siloRunner(wf, id, payload) : wf.runner(id, to, payload);
  restore.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  const forget = new sfn.Pass(wf, `ForgetHandoverLinkFrom${title(from)}Into${title(to)}`, {
    comment:
      'The link is a credential for the archive until it expires: not carried into the execution output',
    result: sfn.Result.fromObject({ used: true }),
    resultPath: '$.vouched',
  });
  onError(vouch).next(onError(restore)).next(forget).next(next);
  return vouch;
}

/**
 * The silo's own runner, by the name accept returned for it ($.tenant.mobilityRunner: siloMobilityRunnerName),
 * invoked as the shared cells' runners are (its answer discarded unless a result path is given; 16 minutes at
 * most, a data step waiting for its token up to 4 hours, with heartbeats).
 */
export function siloRunner(
  wf: OnboardingWorkflow,
  id: string,
  payload: Record<string, unknown>,
  options: {
    resultPath?: string;
    /** Paths into the runner's answer (`$.safetyArchive`), whether it answers by its token or its response. */
    resultSelector?: Record<string, string>;
    /** The runner answers through the task's token (payload `taskToken`), never in its own response. */
    callback?: boolean;
  } = {},
): sfn.CustomState {
  const parameters: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(payload)) {
    const path = typeof v === 'string' && /^\$/.test(v) ? v : undefined;
    parameters[path ? `${k}.$` : k] = path ?? v;
  }
  const dataStep = isRunnerDataStep(payload);
  const callback = options.callback || dataStep;
  if (callback) parameters['taskToken.$'] = '$$.Task.Token';
  const timeouts = runnerTimeouts(dataStep);
  return new sfn.CustomState(wf, id, {
    stateJson: {
      Type: 'Task',
      Resource: `arn:${Stack.of(wf).partition}:states:::lambda:invoke${callback ? '.waitForTaskToken' : ''}`,
      Parameters: { 'FunctionName.$': '$.tenant.mobilityRunner', Payload: parameters },
      // A token's answer is the runner's report itself; an invoke's response holds it under Payload.
      ...(options.resultSelector
        ? {
            ResultSelector: Object.fromEntries(
              Object.entries(options.resultSelector).map(([k, v]) => [
                k,
                callback ? v : v.replace(/^\$\./, '$.Payload.'),
              ]),
            ),
          }
        : {}),
      ResultPath: options.resultPath ?? null,
      TimeoutSeconds: timeouts.timeout,
      ...(timeouts.heartbeat ? { HeartbeatSeconds: timeouts.heartbeat } : {}),
    },
  });
}
