/**
 * Compliance: the cdk-nag packs that run on every stack, and every acknowledgement, each with its reason.
 *
 * Each acknowledgement names one rule on the narrowest construct that carries it, and only where the
 * configuration calls for it (a disposable tenant's missing deletion protection is acknowledged for that
 * tenant alone). Anything not listed here fails synth.
 */
import { App, CfnElement, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { IConstruct } from 'constructs';
import { AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks } from 'cdk-nag';
import { ApiService } from './constructs/api-service';
import { Backup } from './constructs/backup-plan';
import { Cell } from './constructs/cell';
import { Database } from './constructs/database';
import { Network } from './constructs/network';
import { TenantProvisioner } from './constructs/tenant-provisioner';
import { OnboardingStack } from './stacks/onboarding-stack';

export function applyCompliance(app: App): void {
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app),
    new HIPAASecurityChecks(app),
    new NIST80053R5Checks(app),
  );
  for (const c of app.node.findAll()) {
    if (c instanceof Network) acknowledgeNetwork(c);
    else if (c instanceof Database) acknowledgeDatabase(c);
    else if (c instanceof ApiService) acknowledgeApiService(c);
    else if (c instanceof TenantProvisioner) acknowledgeProvisioner(c);
    else if (c instanceof Backup) acknowledgeBackup(c);
    else if (c instanceof Cell) acknowledgeCell(c);
    else if (c instanceof OnboardingStack) acknowledgeOnboarding(c);
    else if (c instanceof iam.Policy && c.node.id === 'DefaultPolicy') acknowledgeDefaultPolicy(c);
  }
}

const AWS_SOLUTIONS = (rule: string) => `AwsSolutions::AwsSolutions-${rule}`;
/** HIPAA Security and NIST 800-53 R5 share many rule names; a reason given for one holds for both. */
const HIPAA_AND_NIST = (rule: string) => [
  `HIPAA.Security::HIPAA.Security-${rule}`,
  `NIST.800.53.R5::NIST.800.53.R5-${rule}`,
];

function ack(scope: IConstruct, rules: string | string[], reason: string): void {
  for (const id of Array.isArray(rules) ? rules : [rules]) {
    Validations.of(scope).acknowledge({ id, reason });
  }
}

/** The L1 resource under an L2 construct: acknowledgements go on exactly the resource that is flagged. */
function resource(scope: IConstruct, ...path: string[]): IConstruct {
  let c: IConstruct = scope;
  for (const id of path) c = c.node.findChild(id);
  return c;
}

function acknowledgeNetwork(network: Network): void {
  for (const subnet of network.vpc.publicSubnets) {
    ack(
      resource(subnet, 'DefaultRoute'),
      HIPAA_AND_NIST('VPCNoUnrestrictedRouteToIGW'),
      'The public tier holds only the internet-facing load balancer and the NAT gateway; the API tasks and the database sit in private and isolated subnets with no route to the internet gateway.',
    );
  }
}

function acknowledgeDatabase(db: Database): void {
  const instance = resource(db.instance, 'Resource');
  ack(
    instance,
    AWS_SOLUTIONS('RDS11'),
    'The default port is kept so standard PostgreSQL tooling works; the security group admits only the API tasks and the provisioner, and the instance is in isolated subnets, so a changed port would add no control.',
  );
  ack(
    resource(db.instance, 'MonitoringRole'),
    AWS_SOLUTIONS(
      'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]',
    ),
    'Enhanced Monitoring requires this AWS-maintained service-role policy; it only lets RDS write OS metrics to CloudWatch Logs.',
  );
}

/** Only for cells whose catalog entry declares them disposable or single-AZ. */
function acknowledgeCell(cell: Cell): void {
  const instance = resource(cell.database.instance, 'Resource');
  const props = cell.props;
  if (props.disposable) {
    const why = `The tenant catalog declares this tenant disposable (settings.deletionPolicy "destroy"): a test tenant whose data is meant to be deleted with its stack.`;
    ack(instance, [AWS_SOLUTIONS('RDS10'), ...HIPAA_AND_NIST('RDSInstanceDeletionProtectionEnabled')], why);
    ack(instance, HIPAA_AND_NIST('RDSInBackupPlan'), why + ' Automated RDS backups still run.');
    ack(resource(cell.api.loadBalancer, 'Resource'), HIPAA_AND_NIST('ELBDeletionProtectionEnabled'), why);
  }
  if (props.multiAz === false) {
    ack(
      instance,
      [AWS_SOLUTIONS('RDS3'), ...HIPAA_AND_NIST('RDSMultiAZSupport')],
      'The tenant catalog sets settings.multiAz false for this tenant, accepting single-AZ availability; every other control (encryption, backups, TLS) is unchanged.',
    );
  }
}

function acknowledgeApiService(api: ApiService): void {
  const bucket = resource(api.accessLogs, 'Resource');
  ack(
    bucket,
    HIPAA_AND_NIST('S3DefaultEncryptionKMS'),
    'Elastic Load Balancing delivers access logs only to buckets encrypted with SSE-S3 (AES-256); SSE-KMS is not supported for this destination.',
  );
  ack(
    bucket,
    [AWS_SOLUTIONS('S1'), ...HIPAA_AND_NIST('S3BucketLoggingEnabled')],
    'This bucket is itself the access-log destination; it holds no tenant data, blocks public access, enforces TLS and is versioned.',
  );
  ack(
    bucket,
    HIPAA_AND_NIST('S3BucketReplicationEnabled'),
    'Load balancer access logs are operational records, not tenant data; they are versioned and kept 400 days in this region.',
  );
  ack(
    resource(api.loadBalancer, 'Redirect80To443', 'Resource'),
    HIPAA_AND_NIST('ELBv2ACMCertificateRequired'),
    'The port 80 listener carries no data: its only action is a permanent redirect to the HTTPS listener, which serves an ACM certificate.',
  );
  ack(
    resource(api.loadBalancer.connections.securityGroups[0], 'Resource'),
    AWS_SOLUTIONS('EC23'),
    'The API is public by design: the load balancer admits 443 (and 80, which only redirects) from anywhere, behind AWS WAF; API tasks admit only the load balancer.',
  );
  ack(
    resource(api.taskDefinition, 'Resource'),
    AWS_SOLUTIONS('ECS2'),
    'The environment carries only non-secret configuration (endpoints, table and pool ids, the model); the API signs in to PostgreSQL with short-lived IAM tokens, so no secret is in the task definition.',
  );
  const executionPolicy = api.taskDefinition.executionRole!.node.findChild('DefaultPolicy');
  ack(
    resource(executionPolicy, 'Resource'),
    AWS_SOLUTIONS('IAM5[Resource::*]'),
    'ecr:GetAuthorizationToken has no resource-level permissions and must be granted on "*"; the image pull itself is scoped to the asset repository.',
  );
}

function acknowledgeProvisioner(p: TenantProvisioner): void {
  const handler = resource(p.handler, 'Resource');
  const framework = p.provider.node.findChild('framework-onEvent');
  const frameworkFn = resource(framework, 'Resource');
  for (const fn of [handler, frameworkFn]) {
    ack(
      fn,
      HIPAA_AND_NIST('LambdaDLQ'),
      'Invoked synchronously by CloudFormation (through the custom-resource provider); a failure is returned to CloudFormation, which fails the stack with the reason, so there is no asynchronous event to dead-letter.',
    );
    ack(
      fn,
      HIPAA_AND_NIST('LambdaConcurrency'),
      'Runs only during deployments, one invocation per custom resource; reserving concurrency would take it from the account pool (and fails on accounts with the default quota) without bounding anything that matters.',
    );
  }
  ack(
    frameworkFn,
    HIPAA_AND_NIST('LambdaInsideVPC'),
    'The provider framework function only relays the CloudFormation request to the handler and the response back; it never touches tenant data. The handler, which does, runs in the VPC.',
  );
  ack(
    resource(framework, 'ServiceRole', 'Resource'),
    AWS_SOLUTIONS(
      'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    ),
    'The CDK custom-resource framework role uses the AWS-maintained basic execution policy: write its own logs, nothing else.',
  );
  ack(
    resource(framework, 'ServiceRole', 'DefaultPolicy', 'Resource'),
    AWS_SOLUTIONS(`IAM5[Resource::<${logicalIdOf(p.handler.node.findChild('Resource'))}.Arn>:*]`),
    'Lets the framework invoke any version or alias of this one handler function, and no other function.',
  );
  ack(
    resource(p.node.findChild('HandlerPolicy'), 'Resource'),
    AWS_SOLUTIONS('IAM5[Resource::*]'),
    'A VPC Lambda must create and delete its network interfaces; these EC2 actions have no resource-level permissions. Every other statement is scoped to one secret, key, table or log group.',
  );
}

function acknowledgeBackup(b: Backup): void {
  const role = b.plan.node.findChild('Selection').node.findChild('Role');
  for (const policy of ['AWSBackupServiceRolePolicyForBackup', 'AWSBackupServiceRolePolicyForRestores']) {
    ack(
      resource(role, 'Resource'),
      AWS_SOLUTIONS(`IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/${policy}]`),
      'AWS Backup requires its AWS-maintained service-role policies to snapshot and restore the selected resources.',
    );
  }
}

function acknowledgeOnboarding(stack: OnboardingStack): void {
  const region = stack.region;
  const partition = region.startsWith('cn-') ? 'aws-cn' : region.startsWith('us-gov-') ? 'aws-us-gov' : 'aws';
  const arn = (rest: string) => `arn:${partition}:${rest.replace('{region}', region)}`;
  const project = stack.deployProject;
  const projectId = logicalIdOf(project.node.defaultChild as IConstruct);
  ack(
    resource(project, 'Resource'),
    HIPAA_AND_NIST('CodeBuildProjectSourceRepoUrl').slice(0, 1),
    'The source is the app bundle uploaded as a CDK asset to the bootstrap bucket: no repository URL and no credentials in the project.',
  );
  const buildPolicy = resource(project.role!.node.findChild('DefaultPolicy'), 'Resource');
  const grants: [string, string][] = [
    [
      'Action::kms:GenerateDataKey*',
      'CDK grant for the project key: encrypt build artifacts and logs with this one key.',
    ],
    [
      'Action::kms:ReEncrypt*',
      'CDK grant for the project key: encrypt build artifacts and logs with this one key.',
    ],
    ['Action::s3:GetBucket*', 'CDK asset grant: read the app source bundle from the bootstrap asset bucket.'],
    ['Action::s3:GetObject*', 'CDK asset grant: read the app source bundle from the bootstrap asset bucket.'],
    ['Action::s3:List*', 'CDK asset grant: read the app source bundle from the bootstrap asset bucket.'],
    [
      `Resource::${arn('s3:::cdk-hnb659fds-assets-<AWS::AccountId>-{region}/*')}`,
      'CDK asset grant: objects of the bootstrap asset bucket, where the app source bundle is; read only.',
    ],
    [
      `Resource::${arn(`codebuild:{region}:<AWS::AccountId>:report-group/<${projectId}>-*`)}`,
      "CodeBuild's default grant: test report groups of this one project.",
    ],
    [
      `Resource::${arn(`logs:{region}:<AWS::AccountId>:log-group:/aws/codebuild/<${projectId}>:*`)}`,
      "CodeBuild's default grant: log streams of this one project's log group.",
    ],
  ];
  for (const [finding, reason] of grants) ack(buildPolicy, AWS_SOLUTIONS(`IAM5[${finding}]`), reason);

  const fn = resource(stack.steps, 'Resource');
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
    "Calls only AWS APIs (DynamoDB, CloudFormation, RDS, SSM) and the tenant API's public HTTPS endpoint; it never connects to a database.",
  );
  ack(
    resource(stack.steps.role!, 'Resource'),
    AWS_SOLUTIONS(
      'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    ),
    'The AWS-maintained basic execution policy: write its own logs, nothing else.',
  );
  const stepsPolicy = resource(stack.steps.role!.node.findChild('DefaultPolicy'), 'Resource');
  const stepGrants: [string, string][] = [
    [
      arn('cloudformation:{region}:<AWS::AccountId>:stack/Tenant-*/*'),
      'Reads events and resources of tenant stacks only (Tenant-<id>), to report why one failed and to find a silo database.',
    ],
    [
      arn('rds:{region}:<AWS::AccountId>:db:*'),
      'Snapshot and lift deletion protection only on instances tagged isolation-model=silo (condition), at offboarding.',
    ],
    [
      arn('rds:{region}:<AWS::AccountId>:snapshot:*'),
      'Create only snapshots tagged purpose=offboarding-final-snapshot (condition), and watch their status.',
    ],
    [
      arn('ssm:{region}:<AWS::AccountId>:parameter/tenantforge/*/api-endpoint'),
      'Reads only the API endpoint parameters the cell stacks publish, to check a new tenant is served before marking it active.',
    ],
    [
      arn('ssm:{region}:<AWS::AccountId>:parameter/tenantforge/tenants/*/api-endpoint'),
      "Reads only silo tenants' published API endpoint parameters, to check a new silo is served before marking it active.",
    ],
  ];
  for (const [res, reason] of stepGrants) ack(stepsPolicy, AWS_SOLUTIONS(`IAM5[Resource::${res}]`), reason);

  const workflowPolicy = resource(stack.stateMachine.role.node.findChild('DefaultPolicy'), 'Resource');
  ack(
    workflowPolicy,
    AWS_SOLUTIONS('IAM5[Resource::*]'),
    'X-Ray tracing and CloudWatch Logs delivery for Step Functions have no resource-level permissions and must be granted on "*".',
  );
  ack(
    workflowPolicy,
    AWS_SOLUTIONS(`IAM5[Resource::<${logicalIdOf(stack.steps.node.defaultChild as IConstruct)}.Arn>:*]`),
    'Invokes any version of the one step function, and no other function.',
  );
}

/** CDK's grant methods write inline policies; each is scoped by CDK to the one role and the resources it uses. */
function acknowledgeDefaultPolicy(policy: iam.Policy): void {
  ack(
    resource(policy, 'Resource'),
    HIPAA_AND_NIST('IAMNoInlinePolicy'),
    'Generated by CDK grants for exactly one role, scoped to the resources of this stack; it lives and dies with that role and cannot be attached to any other principal.',
  );
}

function logicalIdOf(c: IConstruct): string {
  return Stack.of(c).getLogicalId(c as CfnElement);
}
