import * as path from 'path';
import { Construct } from 'constructs';
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { ONBOARDING_STATE_MACHINE_NAME, ssmNames, TENANT_STACK_PREFIX } from '../../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, HIPAA_AND_NIST, l1, partitionOf } from '../../nag';
import { grantRegistry, RegistryRef } from '../registry-access';
import { LAMBDA_RUNTIME } from '../tenant-provisioner';

const REPO_ROOT = path.join(__dirname, '..', '..', '..');

export interface WorkflowStepsProps {
  /** Encrypts the function's environment. */
  readonly key: kms.IKey;
  readonly logGroup: logs.ILogGroup;
  /** The tenant registry the steps read and write. */
  readonly registry: RegistryRef;
  /** The platform's Cognito user pool, where the steps invite and disable tenants' users. */
  readonly userPoolId: string;
}

/**
 * The onboarding workflow's Lambda steps (lambda/onboarding): validation, registry status, readiness, failure
 * reasons and silo final snapshots. Every permission is written out here, scoped to what one step needs.
 */
export class WorkflowSteps extends Construct {
  readonly function: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: WorkflowStepsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.function = new nodejs.NodejsFunction(this, 'Default', {
      entry: path.join(REPO_ROOT, 'lambda', 'onboarding', 'index.ts'),
      handler: 'handler',
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: Duration.seconds(30),
      logGroup: props.logGroup,
      environmentEncryption: props.key,
      environment: { REGISTRY_TABLE: props.registry.tableName, USER_POOL_ID: props.userPoolId },
      bundling: { target: 'node24', minify: true, sourceMap: true, externalModules: ['@aws-sdk/*'] },
    });
    const grant = (statement: iam.PolicyStatement) => this.function.addToRolePolicy(statement);
    grantRegistry(this.function, props.registry, {
      sid: 'TenantRegistry',
      actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'],
      writes: true,
    });
    grant(
      new iam.PolicyStatement({
        sid: 'ReadApiServices',
        actions: ['ssm:GetParameter'],
        resources: ssmNames.readinessPatterns.map((resourceName) =>
          stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName }),
        ),
      }),
    );
    grant(
      new iam.PolicyStatement({
        sid: 'ReadTenantStacks',
        actions: ['cloudformation:DescribeStackEvents', 'cloudformation:ListStackResources'],
        resources: [
          stack.formatArn({
            service: 'cloudformation',
            resource: 'stack',
            resourceName: `${TENANT_STACK_PREFIX}*/*`,
          }),
        ],
      }),
    );
    // Tenants' users: invited with the tenant claim set (AdminCreateUser), grouped per tenant, disabled and signed
    // out at offboarding; in the platform's user pool only.
    grant(
      new iam.PolicyStatement({
        sid: 'ManageTenantUsers',
        actions: [
          'cognito-idp:AdminAddUserToGroup',
          'cognito-idp:AdminCreateUser',
          'cognito-idp:AdminDisableUser',
          'cognito-idp:AdminEnableUser',
          'cognito-idp:AdminGetUser',
          'cognito-idp:AdminUserGlobalSignOut',
          'cognito-idp:CreateGroup',
          'cognito-idp:ListUsersInGroup',
        ],
        resources: [
          stack.formatArn({ service: 'cognito-idp', resource: 'userpool', resourceName: props.userPoolId }),
        ],
      }),
    );
    const anySnapshot = stack.formatArn({
      service: 'rds',
      resource: 'snapshot',
      resourceName: '*',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    // Readiness: AWS's own view of the service that serves the tenant. DescribeTargetHealth has no resource-level
    // permissions.
    grant(
      new iam.PolicyStatement({
        sid: 'ReadApiServiceState',
        actions: ['ecs:DescribeServices'],
        resources: [stack.formatArn({ service: 'ecs', resource: 'service', resourceName: '*' })],
      }),
    );
    grant(
      new iam.PolicyStatement({
        sid: 'ReadTargetHealth',
        actions: ['elasticloadbalancing:DescribeTargetHealth'],
        resources: ['*'],
      }),
    );
    // Final snapshots: only of silo tenant databases (tagged by the tenant stack), only as offboarding snapshots.
    // Nothing here may modify a database: deletion protection is lifted by the tenant's own stack. An Aurora
    // database (the idle-friendly silo profile) is snapshotted as a cluster.
    const rdsArn = (resource: string) =>
      stack.formatArn({
        service: 'rds',
        resource,
        resourceName: '*',
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    const anyClusterSnapshot = rdsArn('cluster-snapshot');
    grant(
      new iam.PolicyStatement({
        sid: 'SnapshotSiloDatabases',
        actions: ['rds:CreateDBSnapshot', 'rds:CreateDBClusterSnapshot'],
        resources: [rdsArn('db'), rdsArn('cluster')],
        conditions: { StringEquals: { 'aws:ResourceTag/isolation-model': 'silo' } },
      }),
    );
    grant(
      new iam.PolicyStatement({
        sid: 'CreateTaggedFinalSnapshots',
        actions: ['rds:CreateDBSnapshot', 'rds:CreateDBClusterSnapshot', 'rds:AddTagsToResource'],
        resources: [anySnapshot, anyClusterSnapshot],
        conditions: { StringEquals: { 'aws:RequestTag/purpose': 'offboarding-final-snapshot' } },
      }),
    );
    grant(
      new iam.PolicyStatement({
        sid: 'WatchFinalSnapshots',
        actions: ['rds:DescribeDBSnapshots', 'rds:DescribeDBClusterSnapshots'],
        resources: [anySnapshot, anyClusterSnapshot],
      }),
    );
    this.acknowledge();
  }

  /**
   * Reconciliation asks Step Functions whether an execution really ended (the event alone could be forged by
   * anyone allowed to invoke this function): executions of the onboarding workflow only, by its fixed name.
   */
  readExecutionsOf(stateMachine: sfn.StateMachine): void {
    const stack = Stack.of(this);
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadWorkflowExecutions',
        actions: ['states:DescribeExecution'],
        resources: [
          stack.formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${ONBOARDING_STATE_MACHINE_NAME}:*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    // The workflow the statement names must be the one this function serves.
    stateMachine.node.addValidation({
      validate: () =>
        (l1(stateMachine) as sfn.CfnStateMachine).stateMachineName === ONBOARDING_STATE_MACHINE_NAME
          ? []
          : [
              `the onboarding workflow must be named ${ONBOARDING_STATE_MACHINE_NAME} (its steps read its executions by that name)`,
            ],
    });
    ack(
      l1(childOfType(this.function.role!, iam.Policy)),
      AWS_SOLUTIONS(
        `IAM5[Resource::arn:${partitionOf(stack)}:states:${stack.region}:<AWS::AccountId>:execution:${ONBOARDING_STATE_MACHINE_NAME}:*]`,
      ),
      'Reads (DescribeExecution only) executions of the onboarding workflow, named exactly, so that only executions that really ended are reconciled.',
    );
  }

  private acknowledge(): void {
    const region = Stack.of(this).region;
    const partition = partitionOf(Stack.of(this));
    const arn = (rest: string) => `arn:${partition}:${rest.replace('{region}', region)}`;
    const fn = l1(this.function);
    ack(
      fn,
      HIPAA_AND_NIST('LambdaDLQ'),
      'Invoked synchronously by Step Functions, which retries and catches every failure and records it in the registry; there is no asynchronous event to dead-letter.',
    );
    ack(
      fn,
      HIPAA_AND_NIST('LambdaConcurrency'),
      'Runs a few times per onboarding; reserving concurrency would take it from the account pool without bounding anything that matters.',
    );
    ack(
      fn,
      HIPAA_AND_NIST('LambdaInsideVPC'),
      "Calls only AWS APIs (DynamoDB, CloudFormation, RDS, SSM, ECS, Elastic Load Balancing) and a tenant's public HTTPS name; it never connects to a database.",
    );
    ack(
      l1(this.function.role!),
      AWS_SOLUTIONS(
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      ),
      'The AWS-maintained basic execution policy: write its own logs, nothing else.',
    );
    const policy = l1(childOfType(this.function.role!, iam.Policy));
    const grants: [string, string][] = [
      [
        arn(`cloudformation:{region}:<AWS::AccountId>:stack/${TENANT_STACK_PREFIX}*/*`),
        'Reads events and resources of tenant stacks only (one stack per tenant, by name), to report why one failed and to find a silo database.',
      ],
      [
        arn('rds:{region}:<AWS::AccountId>:db:*'),
        'Snapshots only instances tagged isolation-model=silo (condition), at offboarding; it can modify no instance.',
      ],
      [
        arn('rds:{region}:<AWS::AccountId>:cluster:*'),
        'Snapshots only Aurora clusters tagged isolation-model=silo (condition), at offboarding; it can modify no cluster.',
      ],
      [
        arn('ecs:{region}:<AWS::AccountId>:service/*'),
        "Reads the state of API services (DescribeServices only) to decide when a new tenant's service is ready.",
      ],
      [
        '*',
        'elasticloadbalancing:DescribeTargetHealth has no resource-level permissions; it only reads target health.',
      ],
      [
        arn('rds:{region}:<AWS::AccountId>:snapshot:*'),
        'Create only snapshots tagged purpose=offboarding-final-snapshot (condition), and watch their status.',
      ],
      [
        arn('rds:{region}:<AWS::AccountId>:cluster-snapshot:*'),
        'Create only cluster snapshots tagged purpose=offboarding-final-snapshot (condition), and watch their status.',
      ],
      ...ssmNames.readinessPatterns.map((pattern): [string, string] => [
        arn(`ssm:{region}:<AWS::AccountId>:parameter/${pattern}`),
        'Reads only the API endpoint and service parameters the cell stacks publish, to check a new tenant is served before marking it active.',
      ]),
    ];
    for (const [res, reason] of grants) ack(policy, AWS_SOLUTIONS(`IAM5[Resource::${res}]`), reason);
  }
}
