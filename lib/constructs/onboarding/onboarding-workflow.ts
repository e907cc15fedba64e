import { Construct } from 'constructs';
import { Duration, Stack } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import {
  EVENT_SOURCE,
  MOBILITY_RUNNER_NAMES,
  ONBOARDING_STATE_MACHINE_NAME,
  SILO_MOBILITY_RUNNER_PATTERN,
  OFFBOARDING_FAILED_DETAIL_TYPE,
  RESULT_DETAIL_TYPES,
  TenantPhase,
} from '../../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, l1, logicalIdOf, partitionOf } from '../../nag';
import {
  archiveFailureCatch,
  Catching,
  siloRunnersInvoke,
  siloStartsFromArchive,
  startsFromArchive,
} from './from-archive';
import { restoreOverStates } from './restore-over';
import { moveStates } from './move';
import { purgeStates } from './purge';
import {
  ACTION,
  execution,
  isRunnerDataStep,
  runnerTimeouts,
  tenantId,
  THROTTLING,
  title,
} from './workflow-paths';

export interface OnboardingWorkflowProps {
  /** The workflow's Lambda steps (lambda/onboarding). */
  readonly steps: lambda.IFunction;
  /** The CodeBuild project that deploys or destroys one tenant stack. */
  readonly project: codebuild.IProject;
  /** Where the execution history goes (without execution data). */
  readonly logGroup: logs.ILogGroup;
  /**
   * The tenants' DNS zone, when the fleet has one: readiness is then checked at `https://<id>.<zone>/ready`.
   * @default - readiness from the ECS service and its load balancer targets
   */
  readonly domainName?: string;
}

/**
 * The onboarding, offboarding and restore workflow (Step Functions).
 *
 * Every execution starts with accept: the onboarding entry (lambda/onboarding-entry) checked who asked,
 * validated the request and locked the tenant for this execution; accept admits the execution only if the
 * registry says it holds that lock, and takes what it does from the registry.
 * Onboarding: deploy the tenant's stack in its `create` phase, wait until its service is ready, deploy it
 * again in `steady` (silo: deletion protection on), (pool or bridge, an approved `restoreFrom`) restore the
 * archive into it through the cell's mobility runner, invite the tenant's first administrator, mark it active
 * and release the lock, emit TenantOnboarded.
 * Restoring over a tenant's data (an approver's `restore` request): its cell's runner replaces its rows with
 * one of its own archives (restoreOver below), then it is active again and TenantRestored is emitted.
 * Moving a tenant between the pool and bridge cells (an approver's `move` request): move.ts.
 * Offboarding: disable the tenant's users, (silo) take and record a final snapshot, deploy the stack in
 * `retire` (protection lifted by the stack itself), destroy it, mark it offboarded and release, emit
 * TenantOffboarded.
 * Every task retries throttling with backoff, has a timeout, and catches into a failure path that records the
 * reason, releases the lock and emits the failure event; a failure inside that path still ends the execution,
 * and an execution that ends without recording it is reconciled from its status-change event.
 */
export class OnboardingWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: OnboardingWorkflowProps,
  ) {
    super(scope, id);
    this.stateMachine = new sfn.StateMachine(this, 'Default', {
      // A fixed name: the shared cells' mobility runners compare an execution's state machine with it exactly.
      stateMachineName: ONBOARDING_STATE_MACHINE_NAME,
      definitionBody: sfn.DefinitionBody.fromChainable(this.definition()),
      // The longest path, a move into a silo rolled back after its seal: four deploys (create, seal, retire, the
      // deploy without the move) of up to 95 minutes each, the readiness wait (about an hour) and the runners'
      // invocations of up to 16 minutes with their retries, and its two data steps of up to 4 hours each in a
      // runner task (test/infra/onboarding.test.ts adds them up). An execution that times out is reconciled (the
      // tenant left `moving` with the reason, the registry's record of its silo kept for the move sent again).
      timeout: Duration.hours(24),
      tracingEnabled: true,
      logs: { destination: props.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    this.stateMachine.addToRolePolicy(siloRunnersInvoke(this));
    this.acknowledge();
  }

  /** One of the workflow's Lambda steps (lambda/onboarding). */
  step(id: string, payload: Record<string, unknown>, resultPath?: string): tasks.LambdaInvoke {
    const task = new tasks.LambdaInvoke(this, id, {
      lambdaFunction: this.props.steps,
      payload: sfn.TaskInput.fromObject(payload),
      payloadResponseOnly: true,
      resultPath: resultPath ?? sfn.JsonPath.DISCARD,
      taskTimeout: sfn.Timeout.duration(Duration.seconds(60)),
      retryOnServiceExceptions: false,
    });
    task.addRetry({ errors: THROTTLING, interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 6 });
    return task;
  }

  emit(id: string, detailType: string, detail: Record<string, unknown>): tasks.EventBridgePutEvents {
    const task = new tasks.EventBridgePutEvents(this, id, {
      entries: [{ source: EVENT_SOURCE, detailType, detail: sfn.TaskInput.fromObject(detail) }],
      resultPath: sfn.JsonPath.DISCARD,
    });
    task.addRetry({ errors: THROTTLING, interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 6 });
    return task;
  }

  /**
   * The deploy job for the tenant's stack, built from the request at `request` (by default the tenant's, as accept
   * returned it).
   */
  build(
    id: string,
    action: 'deploy' | 'destroy',
    phase: TenantPhase,
    request = '$.tenant.tenantRequest',
  ): tasks.CodeBuildStartBuild {
    const env = (value: string) => ({ type: codebuild.BuildEnvironmentVariableType.PLAINTEXT, value });
    const task = new tasks.CodeBuildStartBuild(this, id, {
      project: this.props.project,
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      environmentVariablesOverride: {
        ACTION: env(action),
        TENANT_PHASE: env(phase),
        TENANT_ID: env(tenantId),
        TENANT_REQUEST: env(sfn.JsonPath.stringAt(request)),
      },
      resultPath: sfn.JsonPath.DISCARD,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(95)),
    });
    task.addRetry({ errors: THROTTLING, interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 5 });
    return task;
  }

  /**
   * The tenant's service answers: at its DNS name when the fleet has a zone (unless `byName` is false), else its ECS
   * service and load balancer targets. Retried while not ready, about an hour in all; then the caller's failure path.
   */
  checkReady(id: string, model: string, byName = true): tasks.LambdaInvoke {
    const task = this.step(id, {
      step: 'checkReady',
      tenantId,
      model,
      ...(this.props.domainName && byName
        ? {
            host: sfn.JsonPath.format(
              `{}.${this.props.domainName}`,
              sfn.JsonPath.stringAt('$.tenant.hostname'),
            ),
          }
        : {}),
    });
    task.addRetry({
      errors: ['NotReady'],
      interval: Duration.seconds(20),
      backoffRate: 1.2,
      maxAttempts: 20,
    });
    return task;
  }

  /**
   * A shared cell's mobility runner, by its fixed name (the role may invoke those two and, by their names' pattern,
   * the silos' runners: nothing else of the cells). A step whose work grows with the tenant's data (restore,
   * replace, vouch, moveOut: RUNNER_DATA_STEP) always waits for its token: the runner may hand it to the cell's
   * runner task, which answers for it (lambda/tenant-provisioner/runner-task.ts).
   */
  runner(
    id: string,
    model: 'pool' | 'bridge',
    payload: Record<string, unknown>,
    resultPath?: string,
    options: {
      resultSelector?: Record<string, unknown>;
      /** The runner answers through the task's token (payload `taskToken`), never in its own response. */
      callback?: boolean;
    } = {},
  ): tasks.LambdaInvoke {
    const dataStep = isRunnerDataStep(payload);
    options = { ...options, callback: options.callback || dataStep };
    this.runners[model] ??= lambda.Function.fromFunctionName(
      this,
      `${title(model)}MobilityRunner`,
      MOBILITY_RUNNER_NAMES[model],
    );
    return new tasks.LambdaInvoke(this, id, {
      lambdaFunction: this.runners[model],
      payload: sfn.TaskInput.fromObject(
        options.callback ? { ...payload, taskToken: sfn.JsonPath.taskToken } : payload,
      ),
      ...(options.callback
        ? { integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN }
        : { payloadResponseOnly: true }),
      resultPath: resultPath ?? sfn.JsonPath.DISCARD,
      ...(options.resultSelector ? { resultSelector: options.resultSelector } : {}),
      taskTimeout: sfn.Timeout.duration(Duration.seconds(runnerTimeouts(dataStep).timeout)),
      ...(dataStep
        ? { heartbeatTimeout: sfn.Timeout.duration(Duration.seconds(runnerTimeouts(dataStep).heartbeat!)) }
        : {}),
      retryOnServiceExceptions: false,
    });
  }

  private readonly runners: Partial<Record<'pool' | 'bridge', lambda.IFunction>> = {};

  private definition(): sfn.IChainable {
    // The failure path, shared by every step after the request was accepted. Each of its own steps catches
    // into the next, so a failure inside it still ends the execution with a reason.
    const failed = new sfn.Fail(this, 'Failed', {
      error: 'TenantRequestFailed',
      causePath: '$.failure.reason',
    });
    const failedUnrecorded = new sfn.Fail(this, 'FailedUnrecorded', {
      error: 'TenantRequestFailed',
      cause:
        'the request failed and its failure could not be recorded in the registry; the reconciler marks the tenant failed',
    });
    const genericReason = new sfn.Pass(this, 'GenericFailureReason', {
      parameters: { reason: sfn.JsonPath.format('{}: {}', tenantId, sfn.JsonPath.stringAt('$.error.Error')) },
      resultPath: '$.failure',
    });
    const reason = this.step(
      'ReadFailureReason',
      { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error') },
      '$.failure',
    );
    reason.addCatch(genericReason, { resultPath: '$.failureOfFailure' });
    const markFailed = this.step('MarkFailed', {
      step: 'setStatus',
      tenantId,
      execution,
      status: 'failed',
      release: true,
      reason: sfn.JsonPath.stringAt('$.failure.reason'),
    });
    markFailed.addCatch(failedUnrecorded, { resultPath: '$.failureOfFailure' });
    const failureDetail = { tenantId, reason: sfn.JsonPath.stringAt('$.failure.reason') };
    const emitOnboardingFailed = this.emit(
      'EmitOnboardingFailed',
      RESULT_DETAIL_TYPES.onboardingFailed,
      failureDetail,
    );
    const emitOffboardingFailed = this.emit(
      'EmitOffboardingFailed',
      OFFBOARDING_FAILED_DETAIL_TYPE,
      failureDetail,
    );
    for (const e of [emitOnboardingFailed, emitOffboardingFailed]) {
      e.addCatch(failed, { resultPath: '$.failureOfFailure' });
      e.next(failed);
    }
    reason.next(markFailed);
    genericReason.next(markFailed);
    markFailed.next(
      new sfn.Choice(this, 'WhichFailureEvent')
        .when(sfn.Condition.stringEquals(ACTION, 'offboard'), emitOffboardingFailed)
        .otherwise(emitOnboardingFailed),
    );
    const onError: Catching = <T extends sfn.TaskStateBase | sfn.CustomState>(state: T): T => {
      state.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });
      return state;
    };
    const onArchiveError = archiveFailureCatch(this, genericReason, markFailed);

    // Onboarding.
    const checkReady = this.checkReady('CheckReady', sfn.JsonPath.stringAt('$.tenant.model'));
    const markActive = onError(
      this.step('MarkActive', { step: 'setStatus', tenantId, execution, status: 'active', release: true }),
    );
    // The tenant's first administrator is invited once its service answers (a restore: its users come back).
    const invite = onError(this.step('InviteAdmin', { step: 'inviteAdmin', tenantId, execution }));
    invite.next(markActive);
    // An approved request may start the tenant from an archive (the registry's restoreArchive, which accept
    // returns): a mobility runner restores it into the new, empty tenant before anyone is invited.
    const fromArchive = startsFromArchive(this, onArchiveError, invite);
    const seal = onError(this.build('DeploySteadyPhase', 'deploy', 'steady'));
    const onboard = onError(this.build('DeployCreatePhase', 'deploy', 'create'))
      .next(onError(checkReady))
      .next(
        new sfn.Choice(this, 'ProtectedResources', {
          comment: 'A silo stack holds the deletion-protected resources: deploy it again in its steady phase',
        })
          .when(
            sfn.Condition.stringEquals('$.tenant.model', 'silo'),
            seal.next(siloStartsFromArchive(this, onArchiveError, invite)),
          )
          .otherwise(fromArchive),
      );
    markActive
      .next(onError(this.emit('EmitOnboarded', RESULT_DETAIL_TYPES.onboarded, { tenantId })))
      .next(new sfn.Succeed(this, 'Onboarded'));

    // Offboarding: a silo's database gets a final snapshot (its id recorded) before the stack goes.
    const destroy = onError(this.build('DestroyTenantStack', 'destroy', 'retire'));
    destroy
      .next(
        onError(
          this.step('MarkOffboarded', {
            step: 'setStatus',
            tenantId,
            execution,
            status: 'offboarded',
            release: true,
            dataRetained: sfn.JsonPath.objectAt('$.tenant.dataRetained'),
          }),
        ),
      )
      .next(onError(this.emit('EmitOffboarded', RESULT_DETAIL_TYPES.offboarded, { tenantId })))
      .next(new sfn.Succeed(this, 'Offboarded'));
    const snapshot = onError(
      this.step('FinalSnapshot', { step: 'finalSnapshot', tenantId, execution }, '$.snapshot'),
    );
    const waitSnapshot = new sfn.Wait(this, 'WaitForSnapshot', {
      time: sfn.WaitTime.duration(Duration.seconds(60)),
    });
    const snapshotStatus = onError(
      this.step(
        'SnapshotStatus',
        {
          step: 'snapshotStatus',
          snapshotId: sfn.JsonPath.stringAt('$.snapshot.snapshotId'),
          kind: sfn.JsonPath.stringAt('$.snapshot.kind'),
        },
        '$.snapshotState',
      ),
    );
    const recordSnapshot = onError(
      this.step('RecordSnapshot', {
        step: 'setStatus',
        tenantId,
        execution,
        status: 'offboarding',
        snapshotId: sfn.JsonPath.stringAt('$.snapshot.snapshotId'),
      }),
    );
    const retire = onError(this.build('DeployRetirePhase', 'deploy', 'retire'));
    snapshot
      .next(waitSnapshot)
      .next(snapshotStatus)
      .next(
        new sfn.Choice(this, 'SnapshotAvailable')
          .when(sfn.Condition.booleanEquals('$.snapshotState.available', true), recordSnapshot.next(retire))
          .otherwise(waitSnapshot),
      );
    retire.next(destroy);
    // The tenant's users lose access first: disabled and signed out before anything of theirs goes.
    const offboard = onError(this.step('DisableUsers', { step: 'disableUsers', tenantId, execution })).next(
      new sfn.Choice(this, 'IsSilo')
        .when(sfn.Condition.stringEquals('$.tenant.model', 'silo'), snapshot)
        .otherwise(destroy),
    );

    // The request was accepted by the onboarding entry, which locked the tenant for this execution. The first
    // step admits the execution only if it holds that lock: a StartExecution from anyone else changes nothing.
    const rejected = new sfn.Fail(this, 'RequestRejected', {
      error: 'RequestRejected',
      causePath: '$.error.Cause',
    });
    const restore = restoreOverStates(this);
    const accept = this.step('Accept', { step: 'accept', execution, 'input.$': '$' }, '$.tenant');
    accept.addCatch(rejected, { errors: ['States.ALL'], resultPath: '$.error' });
    return accept.next(
      new sfn.Choice(this, 'OnboardOrOffboard')
        .when(sfn.Condition.stringEquals(ACTION, 'onboard'), onboard)
        .when(sfn.Condition.stringEquals(ACTION, 'restore'), restore.restore)
        .when(sfn.Condition.stringEquals(ACTION, 'abandonRestore'), restore.abandon)
        .when(sfn.Condition.stringEquals(ACTION, 'move'), moveStates(this))
        .when(sfn.Condition.stringEquals(ACTION, 'purge'), purgeStates(this))
        .otherwise(offboard),
    );
  }

  private acknowledge(): void {
    const policy = l1(childOfType(this.stateMachine.role, iam.Policy));
    ack(
      policy,
      AWS_SOLUTIONS('IAM5[Resource::*]'),
      'X-Ray tracing and CloudWatch Logs delivery for Step Functions have no resource-level permissions and must be granted on "*".',
    );
    ack(
      policy,
      AWS_SOLUTIONS(`IAM5[Resource::<${logicalIdOf(l1(this.props.steps))}.Arn>:*]`),
      'Invokes any version of the one step function, and no other function.',
    );
    const stack = Stack.of(this);
    for (const name of Object.values(MOBILITY_RUNNER_NAMES)) {
      ack(
        policy,
        AWS_SOLUTIONS(
          `IAM5[Resource::arn:${partitionOf(stack)}:lambda:${stack.region}:<AWS::AccountId>:function:${name}:*]`,
        ),
        "Invokes any version of one shared cell's mobility runner, named exactly; the runner restores an archive into a new tenant only for the execution the registry says holds it and Step Functions says is this workflow's, running, started for it.",
      );
    }
    for (const resource of [SILO_MOBILITY_RUNNER_PATTERN, `${SILO_MOBILITY_RUNNER_PATTERN}:*`]) {
      ack(
        policy,
        AWS_SOLUTIONS(
          `IAM5[Resource::arn:${partitionOf(stack)}:lambda:${stack.region}:<AWS::AccountId>:function:${resource}]`,
        ),
        "Invokes the silos' mobility runners (one per silo, named from its tenant id, so the names are not known when this stack is deployed); a silo's runner acts only for its own tenant, and restores another cell's archive into it only for the execution the registry says holds it, started for it, with the digest and link that cell's runner handed to that execution.",
      );
    }
  }
}
