import { Construct } from 'constructs';
import { Duration } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { EVENT_SOURCE, REQUEST_DETAIL_TYPES, RESULT_DETAIL_TYPES } from '../../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, l1, logicalIdOf } from '../../nag';

/** Errors the workflow retries as throttling. */
const THROTTLING = [
  'ThrottlingException',
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.SdkClientException',
  'CodeBuild.AccountLimitExceededException',
  'DynamoDB.ProvisionedThroughputExceededException',
];

export interface OnboardingWorkflowProps {
  /** The workflow's Lambda steps (lambda/onboarding). */
  readonly steps: lambda.IFunction;
  /** The CodeBuild project that deploys or destroys one tenant stack. */
  readonly project: codebuild.IProject;
  /** Where the execution history goes (without execution data). */
  readonly logGroup: logs.ILogGroup;
}

/**
 * The onboarding and offboarding workflow (Step Functions): validate the request with the catalog's rules,
 * record the tenant's status, deploy or destroy its stack, wait for its API, emit the result. Every task retries
 * throttling with backoff, has a timeout, and catches into a failure path that records the reason.
 */
export class OnboardingWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: OnboardingWorkflowProps,
  ) {
    super(scope, id);
    this.stateMachine = this.buildWorkflow();
    this.acknowledge();
  }

  private step(
    id: string,
    payload: Record<string, unknown>,
    resultPath: string | undefined,
  ): tasks.LambdaInvoke {
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

  private emit(id: string, detailType: string): tasks.EventBridgePutEvents {
    const task = new tasks.EventBridgePutEvents(this, id, {
      entries: [
        {
          source: EVENT_SOURCE,
          detailType,
          detail: sfn.TaskInput.fromObject({
            tenantId: sfn.JsonPath.stringAt('$.tenant.tenantId'),
            reason: sfn.JsonPath.stringAt('$.failure.reason'),
          }),
        },
      ],
      resultPath: sfn.JsonPath.DISCARD,
    });
    task.addRetry({ errors: THROTTLING, interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 6 });
    return task;
  }

  private build(id: string, action: 'deploy' | 'destroy'): tasks.CodeBuildStartBuild {
    const task = new tasks.CodeBuildStartBuild(this, id, {
      project: this.props.project,
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      environmentVariablesOverride: {
        ACTION: { type: codebuild.BuildEnvironmentVariableType.PLAINTEXT, value: action },
        TENANT_ID: {
          type: codebuild.BuildEnvironmentVariableType.PLAINTEXT,
          value: sfn.JsonPath.stringAt('$.tenant.tenantId'),
        },
        TENANT_REQUEST: {
          type: codebuild.BuildEnvironmentVariableType.PLAINTEXT,
          value: sfn.JsonPath.stringAt('$.tenant.tenantRequest'),
        },
      },
      resultPath: sfn.JsonPath.DISCARD,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(95)),
    });
    task.addRetry({ errors: THROTTLING, interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 5 });
    return task;
  }

  private buildWorkflow(): sfn.StateMachine {
    const tenantId = sfn.JsonPath.stringAt('$.tenant.tenantId');

    // Failure path shared by every step after validation: the reason, the registry, the event, the end.
    const reason = this.step(
      'ReadFailureReason',
      { step: 'failureReason', tenantId, error: sfn.JsonPath.objectAt('$.error') },
      '$.failure',
    );
    const markFailed = this.step(
      'MarkFailed',
      { step: 'setStatus', tenantId, status: 'failed', reason: sfn.JsonPath.stringAt('$.failure.reason') },
      undefined,
    );
    const failed = new sfn.Fail(this, 'OnboardingFailed', {
      error: RESULT_DETAIL_TYPES.onboardingFailed,
      causePath: '$.failure.reason',
    });
    reason
      .next(markFailed)
      .next(this.emit('EmitOnboardingFailed', RESULT_DETAIL_TYPES.onboardingFailed))
      .next(failed);
    const onError = (state: sfn.TaskStateBase) =>
      state.addCatch(reason, { errors: ['States.ALL'], resultPath: '$.error' });

    const rejected = new sfn.Fail(this, 'RequestRejected', {
      error: 'RequestRejected',
      causePath: '$.error.Cause',
    });
    const validate = this.step(
      'Validate',
      {
        step: 'validate',
        action: sfn.JsonPath.stringAt('$.mode'),
        request: sfn.JsonPath.objectAt('$.request'),
      },
      '$.tenant',
    );
    // An invalid request changes nothing: it never reaches the registry.
    validate.addCatch(rejected, { errors: ['States.ALL'], resultPath: '$.error' });

    // Onboarding.
    const markProvisioning = onError(
      this.step(
        'MarkProvisioning',
        {
          step: 'setStatus',
          tenantId,
          status: 'provisioning',
          model: sfn.JsonPath.stringAt('$.tenant.model'),
          name: sfn.JsonPath.stringAt('$.tenant.name'),
          request: sfn.JsonPath.stringAt('$.tenant.tenantRequest'),
        },
        undefined,
      ),
    );
    const deploy = onError(this.build('DeployTenantStack', 'deploy'));
    // Active only once the tenant's API answers /ready (its own for a silo, its cell's for pool and bridge).
    const checkReady = this.step(
      'CheckReady',
      { step: 'checkReady', tenantId, model: sfn.JsonPath.stringAt('$.tenant.model') },
      undefined,
    );
    checkReady.addRetry({
      errors: ['NotReady'],
      interval: Duration.seconds(15),
      backoffRate: 1.5,
      maxAttempts: 12,
    });
    onError(checkReady);
    const markActive = onError(
      this.step('MarkActive', { step: 'setStatus', tenantId, status: 'active' }, undefined),
    );
    const onboarded = onError(this.emit('EmitOnboarded', RESULT_DETAIL_TYPES.onboarded));
    const onboard = markProvisioning
      .next(deploy)
      .next(checkReady)
      .next(markActive)
      .next(onboarded)
      .next(new sfn.Succeed(this, 'Onboarded'));

    // Offboarding: a silo's database gets a final snapshot (its id recorded) before the stack is destroyed.
    const markOffboarding = onError(
      this.step('MarkOffboarding', { step: 'setStatus', tenantId, status: 'offboarding' }, undefined),
    );
    const snapshot = onError(this.step('FinalSnapshot', { step: 'finalSnapshot', tenantId }, '$.snapshot'));
    const waitSnapshot = new sfn.Wait(this, 'WaitForSnapshot', {
      time: sfn.WaitTime.duration(Duration.seconds(60)),
    });
    const snapshotStatus = onError(
      this.step(
        'SnapshotStatus',
        { step: 'snapshotStatus', snapshotId: sfn.JsonPath.stringAt('$.snapshot.snapshotId') },
        '$.snapshotState',
      ),
    );
    const recordSnapshot = onError(
      this.step(
        'RecordSnapshot',
        {
          step: 'setStatus',
          tenantId,
          status: 'offboarding',
          snapshotId: sfn.JsonPath.stringAt('$.snapshot.snapshotId'),
        },
        undefined,
      ),
    );
    const destroy = onError(this.build('DestroyTenantStack', 'destroy'));
    const markOffboarded = onError(
      this.step('MarkOffboarded', { step: 'setStatus', tenantId, status: 'offboarded' }, undefined),
    );
    const offboarded = this.emit('EmitOffboarded', RESULT_DETAIL_TYPES.offboarded);
    onError(offboarded);
    destroy.next(markOffboarded).next(offboarded).next(new sfn.Succeed(this, 'Offboarded'));
    snapshot
      .next(waitSnapshot)
      .next(snapshotStatus)
      .next(
        new sfn.Choice(this, 'SnapshotAvailable')
          .when(sfn.Condition.booleanEquals('$.snapshotState.available', true), recordSnapshot.next(destroy))
          .otherwise(waitSnapshot),
      );
    const offboard = markOffboarding.next(
      new sfn.Choice(this, 'IsSilo')
        .when(sfn.Condition.stringEquals('$.tenant.model', 'silo'), snapshot)
        .otherwise(destroy),
    );

    const start = new sfn.Choice(this, 'Action', {
      comment: `${REQUEST_DETAIL_TYPES.onboard}/${REQUEST_DETAIL_TYPES.offboard} (EventBridge detail-type) or onboard/offboard (StartExecution)`,
    })
      .when(
        sfn.Condition.or(
          sfn.Condition.stringEquals('$.action', REQUEST_DETAIL_TYPES.onboard),
          sfn.Condition.stringEquals('$.action', 'onboard'),
        ),
        new sfn.Pass(this, 'OnboardMode', { parameters: { mode: 'onboard', 'request.$': '$.request' } }).next(
          validate,
        ),
      )
      .when(
        sfn.Condition.or(
          sfn.Condition.stringEquals('$.action', REQUEST_DETAIL_TYPES.offboard),
          sfn.Condition.stringEquals('$.action', 'offboard'),
        ),
        new sfn.Pass(this, 'OffboardMode', {
          parameters: { mode: 'offboard', 'request.$': '$.request' },
        }).next(validate),
      )
      .otherwise(
        new sfn.Fail(this, 'UnknownAction', {
          error: 'RequestRejected',
          cause: `action must be ${REQUEST_DETAIL_TYPES.onboard} or ${REQUEST_DETAIL_TYPES.offboard}`,
        }),
      );
    validate.next(
      new sfn.Choice(this, 'OnboardOrOffboard')
        .when(sfn.Condition.stringEquals('$.mode', 'onboard'), onboard)
        .otherwise(offboard),
    );

    return new sfn.StateMachine(this, 'Default', {
      definitionBody: sfn.DefinitionBody.fromChainable(start),
      timeout: Duration.hours(3),
      tracingEnabled: true,
      logs: { destination: this.props.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
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
  }
}
