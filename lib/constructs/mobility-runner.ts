import * as path from 'path';
import { Construct } from 'constructs';
import { Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { RUNTIME_ROLES, runtimeLogins } from '../../db/roles';
import { ack, AWS_SOLUTIONS, HIPAA_AND_NIST, l1, logicalIdOf, partitionOf } from '../nag';
import type { ApiImageRef } from './api-image';
import { EncryptedLogGroup } from './encrypted-log-group';
import { runnerTaskDefinition, runnerTaskLauncher } from './runner-task';
import {
  acknowledgeOnboardingReads,
  onboardingStateMachineArn,
  onboardingStatements,
} from './onboarding-access';
import { APP_SUBNETS } from './network';
import { registryStatements } from './registry-access';
import {
  EVENT_PREFIX,
  HANDED_PREFIX,
  OUTCOME_PREFIX,
  RUNNER_TASK_ABOVE_BYTES,
} from '../../lambda/tenant-provisioner/runner-task';
import {
  HEX_KEY_SECRET,
  LAMBDA_BUNDLING,
  LAMBDA_RUNTIME,
  provisionerEnvironment,
  TenantProvisioner,
  TenantProvisionerProps,
  vpcFunctionStatements,
} from './tenant-provisioner';

/** The provisioner's props (the same cell, database, key, registry and tenant), and where its bucket logs. */
export interface MobilityRunnerProps extends TenantProvisionerProps {
  /** Where the archive bucket's server access logs go (the cell's access-log bucket). */
  readonly accessLogs: s3.IBucket;
  /**
   * The function's name, which the onboarding workflow's role is allowed to invoke (and nothing else of the cell):
   * the shared cells' runners' (MOBILITY_RUNNER_NAMES) and each silo's (siloMobilityRunnerName).
   */
  readonly functionName: string;
  /**
   * What the runner does for the onboarding workflow: `vouchAndRestore` (a shared cell's: vouches for its archives,
   * answering the workflow's task, and restores archives into new tenants), or `restore` (a silo's: restores
   * another cell's archive into its new tenant only).
   */
  readonly workflow: 'vouchAndRestore' | 'restore';
  /** The release's images: the runner task runs its runner image. */
  readonly image: ApiImageRef;
  /** The cell's ECS cluster (its API's), where the runner task runs. */
  readonly cluster: ecs.Cluster;
  /** A shared cell's slot roles (db/slots.ts): the runner's connections sign in as them, as the API's do. */
  readonly runtimeSlots?: number;
}

/** The most a runner's archive may weigh: what one S3 PutObject takes (5 GiB; the temporary storage is 10 GiB). */
const MAX_ARCHIVE_BYTES = 5 * 1024 ** 3;
/** A restore inserts each table in one statement: a large tenant's may run for minutes (the function runs 15). */
const STATEMENT_TIMEOUT_MS = 14 * 60 * 1000;

/**
 * One tenant's data out of the cell's database to the cell's archive bucket, and back (lambda/tenant-provisioner/
 * mobility.ts; `npm run tenant -- export|restore --aws`). Beside each cell: its own bucket, encrypted with the
 * cell's key (a silo's with its tenant's own), its own archive signing key, a function in the cell's VPC with a
 * role of its own, so neither the API nor the custom-resource handler gains the bucket. Archives and the key are
 * kept when the stack is deleted (unless disposable), like the tenant data they copy.
 */
export class MobilityRunner extends Construct {
  readonly bucket: s3.Bucket;
  readonly archiveKey: secretsmanager.Secret;
  readonly runner: nodejs.NodejsFunction;
  private readonly props: MobilityRunnerProps;

  constructor(scope: Construct, id: string, props: MobilityRunnerProps) {
    super(scope, id);
    this.props = props;
    // Kept when the stack is deleted (like the data they copy), but not when the stack's own creation rolls back
    // (nothing was exported into them yet).
    const keep = props.disposable ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE;
    this.bucket = new s3.Bucket(this, 'Archives', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.key,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: keep,
      autoDeleteObjects: props.disposable ?? false,
      // Archives are never overwritten (each export writes a new key); a deleted one can be recovered for 30 days.
      lifecycleRules: [
        {
          noncurrentVersionExpiration: Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        // A step's event its runner task never read (the task did not start) holds a task token: gone in a day.
        {
          prefix: EVENT_PREFIX,
          expiration: Duration.days(1),
          noncurrentVersionExpiration: Duration.days(1),
        },
      ],
    });
    // Server access logs to the cell's access-log bucket, which admits them by its bucket policy (written out
    // here rather than by serverAccessLogsBucket, whose form depends on a feature flag: an ACL there would
    // conflict with the log bucket's enforced object ownership).
    const logPrefix = 's3/tenant-archives/';
    (this.bucket.node.defaultChild as s3.CfnBucket).loggingConfiguration = {
      destinationBucketName: props.accessLogs.bucketName,
      logFilePrefix: logPrefix,
    };
    props.accessLogs.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('logging.s3.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [props.accessLogs.arnForObjects(`${logPrefix}*`)],
        conditions: {
          ArnLike: { 'aws:SourceArn': this.bucket.bucketArn },
          StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
        },
      }),
    );
    ack(
      l1(this.bucket),
      HIPAA_AND_NIST('S3BucketReplicationEnabled'),
      "Tenant archives are copies of data the cell's database already holds and backs up; replicating them to another Region is a data-residency decision each operator makes for its customers, not a default.",
    );

    // Signs every archive (HMAC-SHA256): a restore refuses one this cell did not write, or one altered since.
    this.archiveKey = new secretsmanager.Secret(this, 'ArchiveKey', {
      description: `${Stack.of(this).stackName}: the key tenant archives are signed with`,
      encryptionKey: props.key,
      generateSecretString: HEX_KEY_SECRET,
      removalPolicy: keep,
    });
    for (const rule of [...HIPAA_AND_NIST('SecretsManagerRotationEnabled'), AWS_SOLUTIONS('SMG4')]) {
      ack(
        l1(this.archiveKey),
        rule,
        'Rotating the archive signing key would make every archive signed before it unverifiable, so every earlier restore point unusable; the key is read only by this runner, encrypted with the cell key.',
      );
    }

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Tenant mobility runner: PostgreSQL (admitted by the database), HTTPS to AWS APIs',
      allowAllOutbound: true,
      allowAllIpv6Outbound: props.ipv6Egress ?? false,
    });
    props.database.allowFrom(securityGroup, 'tenant mobility runner');
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Tenant mobility runner (${props.model}): the cell's archives, its database, its registry items`,
    });
    // The runner task's: the same work as the function, so the same data policy, but it can start nothing.
    const taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
          ArnLike: { 'aws:SourceArn': Stack.of(this).formatArn({ service: 'ecs', resource: '*' }) },
        },
      }),
      description: `Tenant mobility runner task (${props.model}): the runner's work, for steps too large for its function`,
    });
    const logs = new EncryptedLogGroup(this, 'Logs', { key: props.key, disposable: props.disposable });
    const environment = {
      ...provisionerEnvironment(this, props),
      ARCHIVE_BUCKET: this.bucket.bucketName,
      ARCHIVE_KEY_SECRET_ARN: this.archiveKey.secretArn,
      RUNTIME_DB_USER: RUNTIME_ROLES[props.model],
      ...(props.runtimeSlots ? { RUNTIME_DB_SLOTS: String(props.runtimeSlots) } : {}),
      RUNTIME_DB_AUTH: 'iam',
      S3_DUALSTACK: props.ipv6Egress ? 'true' : 'false',
      ONBOARDING_STATE_MACHINE_ARN: onboardingStateMachineArn(this),
    };
    const task = runnerTaskDefinition(this, props, taskRole, environment);
    const launcher = runnerTaskLauncher(this, props, task, securityGroup, taskRole);
    this.runner = new nodejs.NodejsFunction(this, 'Runner', {
      entry: path.join(__dirname, '..', '..', 'lambda', 'tenant-provisioner', 'mobility-entry.ts'),
      handler: 'handler',
      functionName: props.functionName,
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 1024,
      timeout: Duration.minutes(15),
      ephemeralStorageSize: Size.gibibytes(10),
      role,
      vpc: props.vpc,
      vpcSubnets: APP_SUBNETS,
      ...(props.ipv6Egress ? { ipv6AllowedForDualStack: true } : {}),
      securityGroups: [securityGroup],
      logGroup: logs,
      environmentEncryption: props.key,
      environment: {
        ...environment,
        MAX_ARCHIVE_BYTES: String(MAX_ARCHIVE_BYTES),
        DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        RUNNER_TASK_LAUNCHER: launcher.functionName,
        RUNNER_TASK_CLUSTER: props.cluster.clusterArn,
        RUNNER_TASK_ABOVE_BYTES: String(RUNNER_TASK_ABOVE_BYTES),
      },
      bundling: LAMBDA_BUNDLING,
    });
    // Nobody but the runner reads, writes or replicates an archive, whatever their IAM policies allow (a role
    // granted s3:* on every bucket); deleting them (a destroyed tenant's, a disposable stack's) stays possible. An
    // administrator who may rewrite this policy or pass the runner's role to other code is trusted, not stopped.
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyTheRunnerReadsOrWritesArchives',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectVersionForReplication', 's3:PutObject'],
        resources: [this.bucket.arnForObjects('*')],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': [role.roleArn, taskRole.roleArn] } },
      }),
    );
    // The policy stays with the bucket it guards (and its SSL-only rule with it).
    this.bucket.policy!.applyRemovalPolicy(keep);
    // Exports read as the runtime role (what the API reads as), never as the master user.
    props.database.grantConnect(role, runtimeLogins(props.model));
    props.database.grantConnect(taskRole, runtimeLogins(props.model));
    const archives = `${this.bucket.bucketArn}/tenants/${props.tenantId ?? '*'}/*`;
    // The runner's work, the function's and its task's alike.
    const policy = new iam.ManagedPolicy(this, 'Policy', {
      roles: [role, taskRole],
      statements: [
        new iam.PolicyStatement({
          sid: 'TenantArchives',
          actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
          resources: [archives],
        }),
        new iam.PolicyStatement({
          // An export that finds its tenant offboarded once it has written deletes what it wrote; a purge deletes
          // every version of a tenant's archives in the cell it moved out of.
          sid: 'WithdrawTenantArchive',
          actions: ['s3:DeleteObjectVersion'],
          resources: [archives],
        }),
        // A purge lists the versions it deletes, under the tenants' prefix only (a silo's: its tenant's).
        new iam.PolicyStatement({
          sid: 'ListTenantArchiveVersions',
          actions: ['s3:ListBucketVersions'],
          resources: [this.bucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': [`tenants/${props.tenantId ?? '*'}/`] } },
        }),
        new iam.PolicyStatement({
          sid: 'ReadSecrets',
          actions: ['secretsmanager:GetSecretValue'],
          resources: [props.database.secretArn, props.contextKey.secretArn, this.archiveKey.secretArn],
        }),
        new iam.PolicyStatement({
          sid: 'DecryptWithCellKey',
          actions: ['kms:Decrypt'],
          resources: [props.key.keyArn],
        }),
        new iam.PolicyStatement({
          sid: 'EncryptArchivesWithCellKey',
          actions: ['kms:GenerateDataKey'],
          resources: [props.key.keyArn],
          conditions: {
            StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` },
          },
        }),
        ...registryStatements(this, props.registry, {
          sid: 'ReadRegistryEntries',
          actions: ['dynamodb:GetItem'],
          writes: false,
          tenantId: props.tenantId,
        }),
        ...onboardingStatements(this, props),
      ],
    });
    // The function's own: its network interfaces and logs, the launcher, and a look at the tasks it started.
    const functionPolicy = new iam.ManagedPolicy(this, 'FunctionPolicy', {
      roles: [role],
      statements: [
        ...vpcFunctionStatements([logs]),
        new iam.PolicyStatement({
          // A large step's event (its token, maybe a link) for the runner task, written here only.
          sid: 'HandStepsToRunnerTask',
          actions: ['s3:PutObject', 's3:DeleteObjectVersion'],
          resources: [this.bucket.arnForObjects(`${HANDED_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          // What the task left for an operator's poll.
          sid: 'ReadRunnerTaskOutcomes',
          actions: ['s3:GetObject'],
          resources: [this.bucket.arnForObjects(`${OUTCOME_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          sid: 'StartRunnerTaskThroughItsLauncher',
          actions: ['lambda:InvokeFunction'],
          resources: [launcher.functionArn],
        }),
        new iam.PolicyStatement({
          // An operator's export or restore handed to the task: the command polls the function, which looks at
          // the task when it has left no result yet.
          sid: 'DescribeRunnerTasks',
          actions: ['ecs:DescribeTasks'],
          resources: [
            Stack.of(this).formatArn({
              service: 'ecs',
              resource: 'task',
              resourceName: `${props.cluster.clusterName}/*`,
            }),
          ],
          conditions: { ArnEquals: { 'ecs:cluster': props.cluster.clusterArn } },
        }),
      ],
    });
    // Created only once its role may create network interfaces (tenant-provisioner.ts says why).
    this.runner.node.addDependency(policy, functionPolicy);
    // The task's own: the step handed to it (read once, that version deleted) and its outcome for a poll.
    const taskPolicy = new iam.ManagedPolicy(this, 'TaskPolicy', {
      roles: [taskRole],
      statements: [
        new iam.PolicyStatement({
          sid: 'TakeHandedSteps',
          actions: ['s3:GetObject', 's3:DeleteObjectVersion'],
          resources: [this.bucket.arnForObjects(`${HANDED_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          sid: 'LeaveOutcomes',
          actions: ['s3:PutObject'],
          resources: [this.bucket.arnForObjects(`${OUTCOME_PREFIX}*`)],
        }),
      ],
    });
    for (const [p, prefix] of [
      [functionPolicy, HANDED_PREFIX],
      [functionPolicy, OUTCOME_PREFIX],
      [taskPolicy, HANDED_PREFIX],
      [taskPolicy, OUTCOME_PREFIX],
    ] as const) {
      ack(
        l1(p),
        AWS_SOLUTIONS(`IAM5[Resource::<${logicalIdOf(l1(this.bucket))}.Arn>/${prefix}*]`),
        "The runner's hand-overs to its task and the task's outcomes (a new random key each), under one prefix of this cell's own archive bucket, which expires them after a day; each side writes only its own prefix.",
      );
    }
    acknowledgeOnboardingReads(l1(policy), props);
    ack(
      l1(functionPolicy),
      AWS_SOLUTIONS(
        `IAM5[Resource::arn:${partitionOf(Stack.of(this))}:ecs:${Stack.of(this).region}:<AWS::AccountId>:task/<${logicalIdOf(l1(props.cluster))}>/*]`,
      ),
      "Describes the tasks of this cell's own cluster only (task ids are ECS's, known only once started): an operator's command polls the runner for the task it started for its export or restore.",
    );
    ack(
      l1(functionPolicy),
      AWS_SOLUTIONS('IAM5[Resource::*]'),
      'A VPC Lambda must create and delete its network interfaces; these EC2 actions have no resource-level permissions. Every other statement is scoped to one log group, function or cluster.',
    );
    ack(
      l1(policy),
      AWS_SOLUTIONS(
        `IAM5[Resource::<${logicalIdOf(l1(this.bucket))}.Arn>/tenants/${props.tenantId ?? '*'}/*]`,
      ),
      props.tenantId
        ? `Objects under this silo tenant's own prefix of its own archive bucket: the archives it exports (each a new key) and restores.`
        : "Objects under any tenant's prefix of this cell's own archive bucket: the cell serves every tenant of its model, and each export writes a new key.",
    );
    ack(
      l1(this.runner),
      HIPAA_AND_NIST('LambdaDLQ'),
      'Invoked synchronously by an operator (npm run tenant -- export|restore --aws), who receives the report or the error; there is no asynchronous event to dead-letter.',
    );
    ack(
      l1(this.runner),
      HIPAA_AND_NIST('LambdaConcurrency'),
      'Runs when an operator exports or restores one tenant; reserving concurrency would take it from the account pool without bounding anything that matters.',
    );
  }

  /**
   * The provisioner's custom-resource handler deletes a tenant's archives when it offboards it with its data
   * destroyed (lambda/tenant-provisioner/archives.ts): every version under the tenant's prefix, nothing else.
   */
  letDestroyArchives(provisioner: TenantProvisioner): iam.ManagedPolicy {
    const prefix = `tenants/${this.props.tenantId ?? '*'}/`;
    provisioner.handler.addEnvironment('ARCHIVE_BUCKET', this.bucket.bucketName);
    provisioner.handler.addEnvironment('S3_DUALSTACK', this.props.ipv6Egress ? 'true' : 'false');
    const policy = new iam.ManagedPolicy(this, 'DestroyPolicy', {
      roles: [provisioner.handler.role!],
      statements: [
        new iam.PolicyStatement({
          sid: 'ListDestroyedTenantArchives',
          actions: ['s3:ListBucketVersions'],
          resources: [this.bucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': [prefix] } },
        }),
        new iam.PolicyStatement({
          sid: 'DeleteDestroyedTenantArchives',
          actions: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
          resources: [this.bucket.arnForObjects(`${prefix}*`)],
        }),
      ],
    });
    ack(
      l1(policy),
      AWS_SOLUTIONS(`IAM5[Resource::<${logicalIdOf(l1(this.bucket))}.Arn>/${prefix}*]`),
      "Deletes the archives of a tenant the provisioner offboards with its data destroyed: objects under the tenants' prefix of this cell's own archive bucket, listed under that prefix only; it can neither read nor write them.",
    );
    return policy;
  }
}
