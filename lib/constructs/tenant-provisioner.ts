import * as path from 'path';
import { Construct } from 'constructs';
import { Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { IsolationModel, TENANT_STACK_PREFIX, tenantStackName } from '../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, HIPAA_AND_NIST, l1, logicalIdOf, partitionOf } from '../nag';
import { CellDatabase } from './database';
import { APP_SUBNETS } from './network';
import { EncryptedLogGroup } from './encrypted-log-group';
import { RegistryRef, registryStatements } from './registry-access';

/** The Lambda runtime for every function of ours. */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_24_X;

/** How our functions are bundled: local esbuild, the runtime's own AWS SDK. */
export const LAMBDA_BUNDLING: nodejs.BundlingOptions = {
  target: 'node24',
  minify: true,
  sourceMap: true,
  externalModules: ['@aws-sdk/*', 'pg-native'],
};

/** What the provisioner's functions (and the mobility runner, its code's other entry) read from their environment. */
export function provisionerEnvironment(
  scope: Construct,
  props: Pick<TenantProvisionerProps, 'model' | 'database' | 'contextKey' | 'registry'>,
): Record<string, string> {
  return {
    MODEL: props.model,
    // Its own stack: the only one whose bootstrap resource it serves (a silo's: its tenant).
    OWN_STACK: Stack.of(scope).stackName,
    DB_HOST: props.database.endpointAddress,
    DB_PORT: String(props.database.port),
    DB_NAME: props.database.databaseName,
    DB_SECRET_ARN: props.database.secretArn,
    CONTEXT_KEY_SECRET_ARN: props.contextKey.secretArn,
    REGISTRY_TABLE: props.registry.tableName,
    // Node.js 20+ Lambda runtimes trust the RDS CA bundle only when told to.
    NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
  };
}

/**
 * What a function of ours in a VPC needs besides its own work: to write its own logs, and to manage its network
 * interfaces (EC2 actions with no resource-level permissions: callers acknowledge IAM5 on `*` for them).
 */
export function vpcFunctionStatements(logGroups: readonly EncryptedLogGroup[]): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'WriteOwnLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: logGroups.map((g) => g.logGroupArn),
    }),
    new iam.PolicyStatement({
      sid: 'VpcNetworkInterfaces',
      // As AWSLambdaVPCAccessExecutionRole grants them (DescribeSubnets since its version 3).
      actions: [
        'ec2:CreateNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeSubnets',
        'ec2:DeleteNetworkInterface',
        'ec2:AssignPrivateIpAddresses',
        'ec2:UnassignPrivateIpAddresses',
      ],
      resources: ['*'],
    }),
  ];
}

/** A secret of 64 random hex characters (32 bytes): the cells' context keys and archive signing keys. */
export const HEX_KEY_SECRET: secretsmanager.SecretStringGenerator = {
  passwordLength: 64,
  excludeUppercase: true,
  excludePunctuation: true,
  includeSpace: false,
  excludeCharacters: 'ghijklmnopqrstuvwxyz',
};

export interface TenantProvisionerProps {
  readonly vpc: ec2.IVpc;
  /** The database this provisioner creates tenants in; its security group admits the handler. */
  readonly database: CellDatabase;
  /** Encrypts the handler's logs and environment, and decrypts the database secret. */
  readonly key: kms.IKey;
  /** The model of the cell: which custom resources the handler accepts. */
  readonly model: IsolationModel;
  /** The tenant registry (DynamoDB) the handler records tenants in. */
  readonly registry: RegistryRef;
  /** The cell's tenant context key, which the database bootstrap installs (db/context.ts). */
  readonly contextKey: secretsmanager.ISecret;
  /**
   * The one tenant a silo's provisioner serves: it may write that tenant's registry item only.
   * @default - the items of every tenant of its model (a shared cell's provisioner)
   */
  readonly tenantId?: string;
  /** @default false */
  readonly disposable?: boolean;
  /**
   * The VPC has no NAT gateway: the functions go out over IPv6 only (Network.ipv6Egress).
   * @default false
   */
  readonly ipv6Egress?: boolean;
}

/**
 * The custom-resource provider that creates tenants inside a database: bootstrap roles, schemas, migrations,
 * registry entries. Only the handler runs in the VPC (it needs the database); the provider framework's own
 * function only relays CloudFormation's request to it. A handler failure fails the resource at once with its
 * reason, never after CloudFormation's one-hour wait.
 */
export class TenantProvisioner extends Construct {
  readonly handler: nodejs.NodejsFunction;
  /** Fleet migrations (npm run migrate -- --aws): operators invoke this, never the custom-resource handler. */
  readonly fleetRunner: nodejs.NodejsFunction;
  readonly provider: cr.Provider;
  readonly securityGroup: ec2.SecurityGroup;
  readonly serviceToken: string;
  /** What the handler may do: whatever needs the handler at its stack's deletion depends on it. */
  readonly handlerPolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: TenantProvisionerProps) {
    super(scope, id);
    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Tenant provisioner: PostgreSQL, and HTTPS to Secrets Manager and DynamoDB',
      allowAllOutbound: true,
      // In a cell without NAT gateways its only way out is IPv6 (Network.ipv6Egress).
      allowAllIpv6Outbound: props.ipv6Egress ?? false,
    });
    props.database.allowFrom(this.securityGroup, 'tenant provisioner');

    const role = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Tenant provisioner (${props.model}): database secret, registry entries, its own logs`,
    });
    const logGroup = new EncryptedLogGroup(this, 'HandlerLogs', {
      key: props.key,
      disposable: props.disposable,
    });
    // The handler and the fleet runner: the same code base, role, network and database; different entries.
    const functionProps = (
      entry: string,
      timeout: Duration,
      functionLogs: EncryptedLogGroup,
    ): nodejs.NodejsFunctionProps => ({
      entry: path.join(__dirname, '..', '..', 'lambda', 'tenant-provisioner', entry),
      handler: 'handler',
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 512,
      timeout,
      role,
      vpc: props.vpc,
      vpcSubnets: APP_SUBNETS,
      ...(props.ipv6Egress ? { ipv6AllowedForDualStack: true } : {}),
      securityGroups: [this.securityGroup],
      logGroup: functionLogs,
      environmentEncryption: props.key,
      environment: provisionerEnvironment(this, props),
      bundling: LAMBDA_BUNDLING,
    });
    this.handler = new nodejs.NodejsFunction(
      this,
      'Handler',
      functionProps('index.ts', Duration.minutes(5), logGroup),
    );
    const fleetLogs = new EncryptedLogGroup(this, 'FleetRunnerLogs', {
      key: props.key,
      disposable: props.disposable,
    });
    this.fleetRunner = new nodejs.NodejsFunction(
      this,
      'FleetRunner',
      functionProps('fleet-entry.ts', Duration.minutes(15), fleetLogs),
    );
    // A customer-managed policy written out in full rather than L2 grants, so the role holds exactly this.
    const handlerPolicy = (this.handlerPolicy = new iam.ManagedPolicy(this, 'HandlerPolicy', {
      roles: [role],
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadDatabaseSecret',
          actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
          resources: [props.database.secretArn],
        }),
        new iam.PolicyStatement({
          sid: 'ReadContextKey',
          actions: ['secretsmanager:GetSecretValue'],
          resources: [props.contextKey.secretArn],
        }),
        new iam.PolicyStatement({
          sid: 'DecryptWithCellKey',
          actions: ['kms:Decrypt'],
          resources: [props.key.keyArn],
        }),
        ...registryStatements(this, props.registry, {
          sid: 'WriteRegistryEntries',
          actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
          writes: true,
          tenantId: props.tenantId,
        }),
        ...vpcFunctionStatements([logGroup, fleetLogs]),
        // A shared cell's: whether a tenant resource's Delete is its stack's deletion (an offboarding) or an update
        // dropping it from the template (which never touches the tenant's data: a move's, or a stale catalog's). A
        // silo's, of its own stack only: whether an update of the silo a move out of it kept is a rollback.
        new iam.PolicyStatement({
          sid: 'ReadTenantStackStatus',
          actions: ['cloudformation:DescribeStacks'],
          resources: [tenantStacksArn(this, Stack.of(this).account, props.tenantId)],
        }),
      ],
    }));

    const providerLogs = new EncryptedLogGroup(this, 'ProviderLogs', {
      key: props.key,
      disposable: props.disposable,
    });
    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.handler,
      logGroup: providerLogs,
      providerFunctionEnvEncryption: props.key,
    });
    this.serviceToken = this.provider.serviceToken;
    // Lambda checks, when it creates a function in a VPC, that the role may create its network interfaces: the
    // functions wait for the policy that grants it (created at the same moment otherwise, once the database is).
    this.handler.node.addDependency(handlerPolicy);
    this.fleetRunner.node.addDependency(handlerPolicy);
    this.acknowledge(handlerPolicy, props.model, props.tenantId);
  }

  private acknowledge(handlerPolicy: iam.ManagedPolicy, model: IsolationModel, tenantId?: string): void {
    const framework = this.provider.node
      .findAll()
      .filter((c): c is lambda.Function => c instanceof lambda.Function && c !== this.handler);
    if (framework.length !== 1)
      throw new Error(`${this.node.path}: expected one provider framework function`);
    const frameworkFn = framework[0];
    ack(
      l1(this.fleetRunner),
      HIPAA_AND_NIST('LambdaDLQ'),
      'Invoked synchronously by an operator (npm run migrate -- --aws), who receives the report or the error; there is no asynchronous event to dead-letter.',
    );
    ack(
      l1(this.fleetRunner),
      HIPAA_AND_NIST('LambdaConcurrency'),
      'Runs once per cell per release, started by an operator; reserving concurrency would take it from the account pool without bounding anything that matters.',
    );
    for (const fn of [l1(this.handler), l1(frameworkFn)]) {
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
      l1(frameworkFn),
      HIPAA_AND_NIST('LambdaInsideVPC'),
      'The provider framework function only relays the CloudFormation request to the handler and the response back; it never touches tenant data. The handler, which does, runs in the VPC.',
    );
    ack(
      l1(frameworkFn.role!),
      AWS_SOLUTIONS(
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      ),
      'The CDK custom-resource framework role uses the AWS-maintained basic execution policy: write its own logs, nothing else.',
    );
    ack(
      l1(childOfType(frameworkFn.role!, iam.Policy)),
      AWS_SOLUTIONS(`IAM5[Resource::<${logicalIdOf(l1(this.handler))}.Arn>:*]`),
      'Lets the framework invoke any version or alias of this one handler function, and no other function.',
    );
    ack(
      l1(handlerPolicy),
      AWS_SOLUTIONS(`IAM5[Resource::${tenantStacksArn(this, '<AWS::AccountId>', tenantId)}]`),
      model !== 'silo'
        ? "Reads the status (DescribeStacks only) of the tenants' stacks, whose names are known only as tenants are onboarded: a tenant resource's Delete offboards the tenant only while its own stack is being deleted, never when an update drops the resource. DescribeStacks also shows a stack's parameters and outputs: tenant stacks have no outputs, and their parameters are SSM parameter names."
        : "Reads the status (DescribeStacks only) of this silo's own stack, named exactly (the wildcard is CloudFormation's stack id, assigned at creation): an update of the silo a move out of it kept is left as it is when it is the stack's rollback. Tenant stacks have no outputs, and their parameters are SSM parameter names.",
    );
    ack(
      l1(handlerPolicy),
      AWS_SOLUTIONS('IAM5[Resource::*]'),
      'A VPC Lambda must create and delete its network interfaces; these EC2 actions have no resource-level permissions. Every other statement is scoped to one secret, key, table or log group.',
    );
  }
}

/** Every tenant stack of this account and Region (`Tenant-<id>`), as an ARN pattern. */
function tenantStacksArn(scope: Construct, account = Stack.of(scope).account, tenantId?: string): string {
  const stack = Stack.of(scope);
  const name = tenantId ? tenantStackName(tenantId) : `${TENANT_STACK_PREFIX}*`;
  return `arn:${partitionOf(stack)}:cloudformation:${stack.region}:${account}:stack/${name}/*`;
}
