import * as path from 'path';
import { Construct } from 'constructs';
import { ArnFormat, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { DataKey } from '../constructs/data-key';
import { EncryptedLogGroup } from '../constructs/encrypted-log-group';
import { LAMBDA_RUNTIME } from '../constructs/tenant-provisioner';
import { ssmNames } from '../ssm-names';

const REPO_ROOT = path.join(__dirname, '..', '..');

/** EventBridge: requests come in with this source, results go out with EVENT_SOURCE. */
export const REQUEST_SOURCE = 'tenantforge.requests';
export const EVENT_SOURCE = 'tenantforge.onboarding';

/** Errors the workflow retries as throttling. */
const THROTTLING = [
  'ThrottlingException',
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.SdkClientException',
  'CodeBuild.AccountLimitExceededException',
  'DynamoDB.ProvisionedThroughputExceededException',
];

export interface OnboardingStackProps extends StackProps {
  /**
   * The CDK bootstrap qualifier whose roles the deploy job may assume.
   * @default 'hnb659fds'
   */
  readonly bootstrapQualifier?: string;
}

/**
 * The onboarding pipeline: an EventBridge request (`OnboardTenant` / `OffboardTenant` from
 * `tenantforge.requests`, or a direct, IAM-authorized StartExecution) runs a Step Functions workflow that
 * validates it with the catalog's rules, records the tenant's status in the registry, and runs a CodeBuild job
 * that deploys or destroys exactly one tenant stack (`cdk deploy Tenant-<id> -c tenant=<id> --exclusively`).
 * A tenant becomes `active` only once its API answers /ready; any failure marks it `failed` with the reason
 * CloudFormation gave, and emits TenantOnboardingFailed. Silo offboarding takes a final snapshot first.
 */
export class OnboardingStack extends Stack {
  readonly stateMachine: sfn.StateMachine;
  readonly deployProject: codebuild.Project;
  readonly steps: nodejs.NodejsFunction;
  private readonly key: DataKey;

  constructor(scope: Construct, id: string, props: OnboardingStackProps = {}) {
    super(scope, id, props);
    const qualifier = props.bootstrapQualifier ?? 'hnb659fds';
    this.key = new DataKey(this, 'DataKey', { description: 'Onboarding pipeline: build artifacts and logs' });
    const key = this.key;
    const registryTableName = ssm.StringParameter.valueForStringParameter(this, ssmNames.registryTableName);
    const registryTableArn = ssm.StringParameter.valueForStringParameter(this, ssmNames.registryTableArn);

    // The app's source, as the deploy job runs it.
    const source = new s3assets.Asset(this, 'AppSource', {
      path: REPO_ROOT,
      exclude: ['node_modules', 'cdk.out', 'cdk.out.*', '.local', '.git', 'coverage', '.bench'],
    });

    const buildLogs = new EncryptedLogGroup(this, 'DeployLogs', { key: key.key });
    this.deployProject = new codebuild.Project(this, 'DeployTenant', {
      description: 'Deploys or destroys exactly one tenant stack with the CDK bootstrap roles',
      source: codebuild.Source.s3({ bucket: source.bucket, path: source.s3ObjectKey }),
      environment: {
        buildImage: codebuild.LinuxBuildImage.STANDARD_7_0,
        computeType: codebuild.ComputeType.MEDIUM,
        privileged: false,
      },
      encryptionKey: key.key,
      timeout: Duration.minutes(90),
      logging: { cloudWatch: { logGroup: buildLogs } },
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        env: { shell: 'bash' },
        phases: {
          install: { 'runtime-versions': { nodejs: '22' }, commands: ['npm ci --no-audit --no-fund'] },
          build: {
            commands: [
              // TENANT_ID and TENANT_REQUEST were validated by the workflow; quoted here all the same.
              'if [ "$ACTION" = deploy ]; then npx cdk deploy "Tenant-$TENANT_ID" -c "tenant=$TENANT_ID" -c "tenantRequest=$TENANT_REQUEST" --exclusively --require-approval never; ' +
                'elif [ "$ACTION" = destroy ]; then npx cdk destroy "Tenant-$TENANT_ID" -c "tenant=$TENANT_ID" -c "tenantRequest=$TENANT_REQUEST" --exclusively --force; ' +
                'else echo "unknown ACTION $ACTION"; exit 2; fi',
            ],
          },
        },
      }),
    });
    source.grantRead(this.deployProject);
    // Least privilege: the job itself can do nothing but assume the CDK bootstrap roles of this account and
    // region, which CloudFormation uses to deploy. No "*" action on "*".
    this.deployProject.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'AssumeCdkBootstrapRoles',
        actions: ['sts:AssumeRole', 'sts:TagSession'],
        resources: ['deploy', 'file-publishing', 'image-publishing', 'lookup'].map(
          (role) =>
            `arn:${this.partition}:iam::${this.account}:role/cdk-${qualifier}-${role}-role-${this.account}-${this.region}`,
        ),
      }),
    );

    const stepLogs = new EncryptedLogGroup(this, 'StepLogs', { key: key.key });
    this.steps = new nodejs.NodejsFunction(this, 'Steps', {
      entry: path.join(REPO_ROOT, 'lambda', 'onboarding', 'index.ts'),
      handler: 'handler',
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: Duration.seconds(30),
      logGroup: stepLogs,
      environmentEncryption: key.key,
      environment: { REGISTRY_TABLE: registryTableName },
      bundling: { target: 'node24', minify: true, sourceMap: true, externalModules: ['@aws-sdk/*'] },
    });
    this.steps.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'TenantRegistry',
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'],
        resources: [registryTableArn],
      }),
    );
    this.steps.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadApiEndpoints',
        actions: ['ssm:GetParameter'],
        resources: [
          this.formatArn({
            service: 'ssm',
            resource: 'parameter',
            resourceName: 'tenantforge/*/api-endpoint',
          }),
          this.formatArn({
            service: 'ssm',
            resource: 'parameter',
            resourceName: 'tenantforge/tenants/*/api-endpoint',
          }),
        ],
      }),
    );
    this.steps.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadTenantStacks',
        actions: ['cloudformation:DescribeStackEvents', 'cloudformation:DescribeStackResources'],
        resources: [
          this.formatArn({ service: 'cloudformation', resource: 'stack', resourceName: 'Tenant-*/*' }),
        ],
      }),
    );
    const anySnapshot = this.formatArn({
      service: 'rds',
      resource: 'snapshot',
      resourceName: '*',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    // Final snapshots: only of silo tenant databases (tagged by the tenant stack), only as offboarding snapshots.
    this.steps.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'SnapshotAndUnprotectSiloDatabases',
        actions: ['rds:CreateDBSnapshot', 'rds:ModifyDBInstance'],
        resources: [
          this.formatArn({
            service: 'rds',
            resource: 'db',
            resourceName: '*',
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
        conditions: { StringEquals: { 'aws:ResourceTag/isolation-model': 'silo' } },
      }),
    );
    this.steps.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'CreateTaggedFinalSnapshots',
        actions: ['rds:CreateDBSnapshot', 'rds:AddTagsToResource'],
        resources: [anySnapshot],
        conditions: { StringEquals: { 'aws:RequestTag/purpose': 'offboarding-final-snapshot' } },
      }),
    );
    this.steps.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'WatchFinalSnapshots',
        actions: ['rds:DescribeDBSnapshots'],
        resources: [anySnapshot],
      }),
    );

    this.stateMachine = this.buildWorkflow();
    new events.Rule(this, 'Requests', {
      description: 'Onboarding and offboarding requests',
      eventPattern: { source: [REQUEST_SOURCE], detailType: ['OnboardTenant', 'OffboardTenant'] },
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          input: events.RuleTargetInput.fromObject({
            action: events.EventField.fromPath('$.detail-type'),
            request: events.EventField.fromPath('$.detail'),
          }),
        }),
      ],
    });
  }

  private step(
    id: string,
    payload: Record<string, unknown>,
    resultPath: string | undefined,
  ): tasks.LambdaInvoke {
    const task = new tasks.LambdaInvoke(this, id, {
      lambdaFunction: this.steps,
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
      project: this.deployProject,
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
      error: 'TenantOnboardingFailed',
      causePath: '$.failure.reason',
    });
    reason.next(markFailed).next(this.emit('EmitOnboardingFailed', 'TenantOnboardingFailed')).next(failed);
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
    const onboarded = onError(this.emit('EmitOnboarded', 'TenantOnboarded'));
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
    const offboarded = this.emit('EmitOffboarded', 'TenantOffboarded');
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
      comment: 'OnboardTenant/OffboardTenant (EventBridge detail-type) or onboard/offboard (StartExecution)',
    })
      .when(
        sfn.Condition.or(
          sfn.Condition.stringEquals('$.action', 'OnboardTenant'),
          sfn.Condition.stringEquals('$.action', 'onboard'),
        ),
        new sfn.Pass(this, 'OnboardMode', { parameters: { mode: 'onboard', 'request.$': '$.request' } }).next(
          validate,
        ),
      )
      .when(
        sfn.Condition.or(
          sfn.Condition.stringEquals('$.action', 'OffboardTenant'),
          sfn.Condition.stringEquals('$.action', 'offboard'),
        ),
        new sfn.Pass(this, 'OffboardMode', {
          parameters: { mode: 'offboard', 'request.$': '$.request' },
        }).next(validate),
      )
      .otherwise(
        new sfn.Fail(this, 'UnknownAction', {
          error: 'RequestRejected',
          cause: 'action must be OnboardTenant or OffboardTenant',
        }),
      );
    validate.next(
      new sfn.Choice(this, 'OnboardOrOffboard')
        .when(sfn.Condition.stringEquals('$.mode', 'onboard'), onboard)
        .otherwise(offboard),
    );

    const workflowLogs = new EncryptedLogGroup(this, 'WorkflowLogs', { key: this.key.key });
    return new sfn.StateMachine(this, 'Workflow', {
      definitionBody: sfn.DefinitionBody.fromChainable(start),
      timeout: Duration.hours(3),
      tracingEnabled: true,
      logs: { destination: workflowLogs, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
  }
}
