/**
 * The cell's runner task and its launcher, beside the mobility runner (mobility-runner.ts): the runner's code in
 * an ECS Fargate task for steps too large for its function (lambda/tenant-provisioner/runner-task.ts), and the only
 * function of the cell that may start it.
 */
import * as path from 'path';
import { Construct } from 'constructs';
import { Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { RUNNER_CONTAINER } from '../../lambda/tenant-provisioner/runner-task';
import { ack, AWS_SOLUTIONS, childOfType, HIPAA_AND_NIST, l1 } from '../nag';
import { apiContainerImage, cpuArchitecture } from './api-image';
import { EncryptedLogGroup } from './encrypted-log-group';
import type { MobilityRunnerProps } from './mobility-runner';
import { APP_SUBNETS } from './network';
import { LAMBDA_BUNDLING, LAMBDA_RUNTIME } from './tenant-provisioner';

/** The runner task's storage (Fargate's most) and the archive it takes: a replace holds two archives at once. */
const TASK_STORAGE_GIB = 200;
/** The runner image's work directory (its VOLUME), where the task's ephemeral storage is mounted. */
export const RUNNER_WORK_DIR = '/work';
const TASK_MAX_ARCHIVE_BYTES = 90 * 1024 ** 3;
/** A data step runs 4 hours at most in a task (the workflow's timeout); one statement may take nearly all of it. */
const TASK_STATEMENT_TIMEOUT_MS = 225 * 60 * 1000;

/**
 * The runner task's launcher (lambda/tenant-provisioner/launcher-entry.ts): the only holder of ecs:RunTask and
 * iam:PassRole in the cell. It starts the runner task definition in the cell's cluster and network with an event
 * key, nothing else; the runner function may only invoke it. Outside the VPC: it calls ECS only.
 */
export function runnerTaskLauncher(
  scope: Construct,
  props: MobilityRunnerProps,
  task: ecs.FargateTaskDefinition,
  securityGroup: ec2.SecurityGroup,
  taskRole: iam.Role,
): nodejs.NodejsFunction {
  const logs = new EncryptedLogGroup(scope, 'LauncherLogs', {
    key: props.key,
    disposable: props.disposable,
  });
  const role = new iam.Role(scope, 'LauncherRole', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `Tenant mobility runner task launcher (${props.model}): starts the cell's runner task only`,
  });
  const policy = new iam.ManagedPolicy(scope, 'LauncherPolicy', {
    roles: [role],
    statements: [
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logs.logGroupArn],
      }),
      new iam.PolicyStatement({
        sid: 'StartRunnerTask',
        actions: ['ecs:RunTask'],
        // This deploy's revision exactly: not whatever revision someone registers under the family later.
        resources: [task.taskDefinitionArn],
        conditions: { ArnEquals: { 'ecs:cluster': props.cluster.clusterArn } },
      }),
      new iam.PolicyStatement({
        sid: 'PassRolesToRunnerTask',
        actions: ['iam:PassRole'],
        resources: [taskRole.roleArn, task.executionRole!.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
      }),
    ],
  });
  const launcher = new nodejs.NodejsFunction(scope, 'Launcher', {
    entry: path.join(__dirname, '..', '..', 'lambda', 'tenant-provisioner', 'launcher-entry.ts'),
    handler: 'handler',
    runtime: LAMBDA_RUNTIME,
    architecture: lambda.Architecture.ARM_64,
    memorySize: 256,
    timeout: Duration.seconds(30),
    role,
    logGroup: logs,
    environmentEncryption: props.key,
    environment: {
      RUNNER_TASK_CLUSTER: props.cluster.clusterArn,
      RUNNER_TASK_DEFINITION: task.taskDefinitionArn,
      RUNNER_TASK_SUBNETS: props.vpc
        .selectSubnets(props.ipv6Egress ? { subnetType: ec2.SubnetType.PUBLIC } : APP_SUBNETS)
        .subnetIds.join(','),
      RUNNER_TASK_SECURITY_GROUPS: securityGroup.securityGroupId,
      RUNNER_TASK_PUBLIC_IP: props.ipv6Egress ? 'true' : 'false',
    },
    bundling: LAMBDA_BUNDLING,
  });
  launcher.node.addDependency(policy);
  ack(
    l1(launcher),
    HIPAA_AND_NIST('LambdaInsideVPC'),
    "It calls the ECS API only (RunTask), touching no data and no network of the cell's; the task it starts runs in the cell's VPC.",
  );
  ack(
    l1(launcher),
    HIPAA_AND_NIST('LambdaDLQ'),
    "Invoked synchronously by the cell's mobility runner, which gets the task or the error; there is no asynchronous event to dead-letter.",
  );
  ack(
    l1(launcher),
    HIPAA_AND_NIST('LambdaConcurrency'),
    "Runs once per hand-over of a large tenant's step; reserving concurrency would take it from the account pool without bounding anything that matters.",
  );
  return launcher;
}

/**
 * The runner task (lambda/tenant-provisioner/task-main.ts): the function's code in the release's runner image, in
 * the cell's cluster, with the function's network and security group and a role holding the same data policy
 * (but nothing to start tasks with), hours and 200 GiB instead of 15 minutes and 10 GiB. The function has its
 * launcher start it for a step too large for itself (runner-task.ts).
 */
export function runnerTaskDefinition(
  scope: Construct,
  props: MobilityRunnerProps,
  taskRole: iam.Role,
  environment: Record<string, string>,
): ecs.FargateTaskDefinition {
  const task = new ecs.FargateTaskDefinition(scope, 'Task', {
    cpu: 1024,
    memoryLimitMiB: 4096,
    ephemeralStorageGiB: TASK_STORAGE_GIB,
    taskRole,
    runtimePlatform: { cpuArchitecture: cpuArchitecture(props.image) },
  });
  const logs = new EncryptedLogGroup(scope, 'TaskLogs', { key: props.key, disposable: props.disposable });
  // The image sets its own CA bundle for TLS to the database (NODE_EXTRA_CA_CERTS); the function's names
  // Lambda's.
  const taskEnvironment = Object.fromEntries(
    Object.entries(environment).filter(([name]) => name !== 'NODE_EXTRA_CA_CERTS'),
  );
  const container = task.addContainer(RUNNER_CONTAINER, {
    image: apiContainerImage(scope, props.image, 'runner'),
    readonlyRootFilesystem: true,
    user: '1000',
    logging: ecs.LogDrivers.awsLogs({ logGroup: logs, streamPrefix: 'runner' }),
    environment: {
      ...taskEnvironment,
      AWS_REGION: Stack.of(scope).region,
      RUNNER_IN_TASK: 'true',
      // The image's VOLUME, owned by its user (lambda/tenant-provisioner/Dockerfile).
      MOBILITY_WORK_DIR: `${RUNNER_WORK_DIR}/tenant-archives`,
      MAX_ARCHIVE_BYTES: String(TASK_MAX_ARCHIVE_BYTES),
      DB_STATEMENT_TIMEOUT_MS: String(TASK_STATEMENT_TIMEOUT_MS),
    },
  });
  // Its archives are written and read on the task's ephemeral storage; the root filesystem stays read-only.
  task.addVolume({ name: 'work' });
  container.addMountPoints({ sourceVolume: 'work', containerPath: RUNNER_WORK_DIR, readOnly: false });
  ack(
    l1(task),
    AWS_SOLUTIONS('ECS2'),
    'The environment carries only non-secret configuration (endpoints, bucket, table and secret names, the model); the task reads its secrets from Secrets Manager with its role and signs in to PostgreSQL with short-lived IAM tokens.',
  );
  ack(
    l1(childOfType(task.executionRole!, iam.Policy)),
    AWS_SOLUTIONS('IAM5[Resource::*]'),
    'ecr:GetAuthorizationToken has no resource-level permissions and must be granted on "*"; the image pull itself is scoped to the asset repository.',
  );
  return task;
}
