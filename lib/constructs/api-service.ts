import { Construct } from 'constructs';
import { ArnFormat, CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { HEALTH_PATH, IsolationModel, ssmNames, TenantPhase, wafLogGroupPrefix } from '../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, HIPAA_AND_NIST, l1 } from '../nag';
import { apiContainerImage, ApiImageRef, cpuArchitecture } from './api-image';
import { APP_SUBNETS } from './network';
import { SiloEgress } from '../silo-profiles';
import { scaleOnLoad, tenantMetrics } from './api-operations';
import { EncryptedLogGroup, stackLogGroupName } from './encrypted-log-group';

/** Common rule set rules that only count: the API's own validation answers for request bodies. */
export const WAF_BODY_RULES_COUNTED = ['SizeRestrictions_BODY', 'CrossSiteScripting_BODY'];

export interface ApiServiceProps {
  readonly vpc: ec2.IVpc;
  readonly key: kms.IKey;
  /** The isolation model this service serves; the API reads it from MODEL. */
  readonly model: IsolationModel;
  /** The release's API image; the tasks run on its architecture. */
  readonly image: ApiImageRef;
  /** Extra environment for the container (database endpoint, registry table, ...). */
  readonly environment?: Record<string, string>;
  /** Secrets the container receives as environment variables, injected by ECS (the context key). */
  readonly secrets?: Record<string, ecs.Secret>;
  /**
   * The tasks the service keeps at least (autoscaling's minimum; the template sets no DesiredCount).
   * @default 2 - one per AZ
   */
  readonly desiredCount?: number;
  /** @default 512 */
  readonly cpu?: number;
  /** @default 1024 */
  readonly memoryLimitMiB?: number;
  /**
   * The ACM certificate for the HTTPS listener.
   * @default - the ARN stored in the SSM parameter `/tenantforge/platform/certificate-arn`, read at deploy time
   */
  readonly certificateArn?: string;
  /** @default false - access logs retained */
  readonly disposable?: boolean;
  /**
   * Where the stack is in its life: the load balancer is deletion-protected in `steady` only, and never for a
   * disposable service.
   * @default 'steady'
   */
  readonly phase?: TenantPhase;
  /**
   * Where the sustained-throttling alarm goes (the cell's alarm topic).
   * @default - no alarm
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * The most tasks the service scales out to under load (CPU and requests per task).
   * @default - four times desiredCount
   */
  readonly maxCount?: number;
  /**
   * `nat-per-az`: tasks in the private `app` tier, out through the VPC's NAT gateways. `task-public-ip`: tasks in
   * the public tier with a public IPv4 address each (the VPC has no NAT gateway); their security group admits the
   * load balancer only, so the address only lets them call out.
   * @default 'nat-per-az'
   */
  readonly egress?: SiloEgress;
}

/** Why a stack in a lifecycle phase other than `steady` has no deletion protection (shared with the database). */
export const PHASE_REASONS: Record<Exclude<TenantPhase, 'steady'>, string> = {
  create:
    "Lifecycle phase 'create': the onboarding workflow's first deploy of this tenant. Deletion protection is turned on by the workflow's next deploy (phase 'steady') as soon as the tenant is ready; until then a failed first deploy must be able to roll back and be retried.",
  retire:
    "Lifecycle phase 'retire': the offboarding workflow's deploy right before it destroys this tenant's stack, after the database's final snapshot is taken and recorded. Protection is lifted by the stack itself so that no role holds rights to modify databases or load balancers.",
};

/** The edge's per-token rate (requests per minute): above the premium tier's rate on two tasks. */
export const WAF_TOKEN_RATE_PER_MINUTE = 60_000;
/** The edge's per-address rate (requests per minute): above any one office's share of a tenant's traffic. */
export const WAF_ADDRESS_RATE_PER_MINUTE = 120_000;

/**
 * The tenant-aware API on ECS Fargate behind an internet-facing ALB. HTTPS only (port 80 answers with a
 * redirect), invalid headers dropped, a WAF with AWS's common and known-bad-input rule sets, access logs kept.
 * Tasks run in private subnets with no public IP and a read-only root filesystem.
 */
export class ApiService extends Construct {
  readonly service: ecs.FargateService;
  /** The cell's cluster (the API's service, and the mobility runner's tasks). */
  readonly cluster: ecs.Cluster;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly securityGroup: ec2.SecurityGroup;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly accessLogs: s3.Bucket;
  readonly targetGroup: elbv2.ApplicationTargetGroup;

  constructor(scope: Construct, id: string, props: ApiServiceProps) {
    super(scope, id);
    const disposable = props.disposable ?? false;
    const phase = props.phase ?? 'steady';
    const protect = !disposable && phase === 'steady';
    const publicTasks = props.egress === 'task-public-ip';
    const removalPolicy = disposable ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    const cluster = (this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENHANCED,
    }));
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: props.cpu ?? 512,
      memoryLimitMiB: props.memoryLimitMiB ?? 1024,
      runtimePlatform: { cpuArchitecture: cpuArchitecture(props.image) },
    });
    const logGroup = new EncryptedLogGroup(this, 'Logs', { key: props.key, disposable });
    this.taskDefinition.addContainer('api', {
      image: apiContainerImage(this, props.image),
      portMappings: [{ containerPort: 8080 }],
      readonlyRootFilesystem: true,
      user: '1000',
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'api' }),
      environment: { MODEL: props.model, PORT: '8080', ...props.environment },
      secrets: props.secrets,
      healthCheck: {
        command: ['CMD', 'node', '/app/healthcheck.cjs'],
        interval: Duration.seconds(30),
        startPeriod: Duration.seconds(30),
      },
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: props.vpc,
      description: 'API tasks: reachable only from the load balancer',
      allowAllOutbound: true,
      // A task with a public IPv4 address may get an IPv6 one too (the ECS account setting dualStackIPv6): let it
      // call dual-stack endpoints over it rather than wait for IPv4. Inbound stays the load balancer only.
      allowAllIpv6Outbound: publicTasks,
    });
    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition: this.taskDefinition,
      // No DesiredCount in the template: autoscaling owns the count (its minimum is desiredCount). With one in the
      // template, every service update (a release, a rollback) would reset a scaled-out service to it.
      vpcSubnets: publicTasks ? { subnetType: ec2.SubnetType.PUBLIC } : APP_SUBNETS,
      securityGroups: [this.securityGroup],
      assignPublicIp: publicTasks,
      circuitBreaker: { rollback: true },
      minHealthyPercent: 100,
      enableExecuteCommand: false,
    });

    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      // ALB access logs can only be delivered to SSE-S3 buckets.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy,
      // A disposable tenant's bucket goes with its stack, so it is emptied first (the load balancer keeps
      // writing into it until it is gone: see the dependency below).
      autoDeleteObjects: disposable,
      lifecycleRules: [{ expiration: Duration.days(400), noncurrentVersionExpiration: Duration.days(30) }],
    });

    const albSecurityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc: props.vpc,
      description: 'API load balancer: HTTPS (and the HTTP redirect) from the internet',
      allowAllOutbound: false,
    });
    albSecurityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS from clients');
    albSecurityGroup.addIngressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(80),
      'HTTP, answered with a redirect to HTTPS',
    );
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup: albSecurityGroup,
      dropInvalidHeaderFields: true,
      deletionProtection: protect,
    });
    this.loadBalancer.logAccessLogs(this.accessLogs, 'alb');
    if (disposable) {
      // Deleted before the bucket is emptied, so no access log lands in an emptied bucket.
      this.loadBalancer.node.addDependency(
        this.accessLogs.node.children.find((c) => c instanceof CustomResource)!,
      );
    }
    this.securityGroup.addIngressRule(
      albSecurityGroup,
      ec2.Port.tcp(8080),
      'API traffic from the load balancer',
    );
    albSecurityGroup.addEgressRule(this.securityGroup, ec2.Port.tcp(8080), 'to the API tasks');

    const certificateArn =
      props.certificateArn ?? ssm.StringParameter.valueForStringParameter(this, ssmNames.certificateArn);
    const https = this.loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      certificates: [elbv2.ListenerCertificate.fromArn(certificateArn)],
      open: false,
    });
    this.targetGroup = https.addTargets('Api', {
      port: 8080,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service],
      healthCheck: { path: HEALTH_PATH, healthyHttpCodes: '200' },
      deregistrationDelay: Duration.seconds(30),
    });
    const redirect = this.loadBalancer.addRedirect({ sourcePort: 80, targetPort: 443, open: false });

    const webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: {
        cloudWatchMetricsEnabled: true,
        metricName: `${Stack.of(this).stackName}-api`,
        sampledRequestsEnabled: true,
      },
      rules: [
        ...['AWSManagedRulesCommonRuleSet', 'AWSManagedRulesKnownBadInputsRuleSet'].map((name, i) => ({
          name,
          priority: i,
          overrideAction: { none: {} },
          statement: {
            managedRuleGroupStatement: {
              vendorName: 'AWS',
              name,
              // The API decides what a valid body is (its schema and its 256 KB limit, answered in its own error
              // shape): a large invoice is not an attack, and text with "<" in a JSON field is data the API never
              // renders. These two body rules count instead of block.
              ...(name === 'AWSManagedRulesCommonRuleSet'
                ? {
                    ruleActionOverrides: WAF_BODY_RULES_COUNTED.map((rule) => ({
                      name: rule,
                      actionToUse: { count: {} },
                    })),
                  }
                : {}),
            },
          },
          visibilityConfig: {
            cloudWatchMetricsEnabled: true,
            metricName: name,
            sampledRequestsEnabled: true,
          },
        })),
        // Noisy neighbours at the edge: one caller's token (so one tenant's user) over WAF_TOKEN_RATE_PER_MINUTE is
        // answered 429 before it reaches a task. The API's own per-tenant limits (service/src/tenant-limits.ts)
        // are the fine-grained ones; this bounds what a single token can make the tasks refuse.
        {
          name: 'RatePerToken',
          priority: 2,
          action: { block: { customResponse: { responseCode: 429 } } },
          statement: {
            rateBasedStatement: {
              aggregateKeyType: 'CUSTOM_KEYS',
              customKeys: [
                { header: { name: 'authorization', textTransformations: [{ priority: 0, type: 'NONE' }] } },
              ],
              limit: WAF_TOKEN_RATE_PER_MINUTE,
              evaluationWindowSec: 60,
            },
          },
          visibilityConfig: {
            cloudWatchMetricsEnabled: true,
            metricName: 'RatePerToken',
            sampledRequestsEnabled: true,
          },
        },
        // The backstop for what a token key cannot count: requests with no token, or a new random one each time.
        {
          name: 'RatePerAddress',
          priority: 3,
          action: { block: { customResponse: { responseCode: 429 } } },
          statement: {
            rateBasedStatement: {
              aggregateKeyType: 'IP',
              limit: WAF_ADDRESS_RATE_PER_MINUTE,
              evaluationWindowSec: 60,
            },
          },
          visibilityConfig: {
            cloudWatchMetricsEnabled: true,
            metricName: 'RatePerAddress',
            sampledRequestsEnabled: true,
          },
        },
      ],
      // The rate rule keys on the Authorization header: its value would otherwise appear in WAF logs (the rate
      // rules' aggregate key) despite the log redaction below. Logs keep a hash of it.
      dataProtectionConfig: {
        dataProtections: [
          { field: { fieldType: 'SINGLE_HEADER', fieldKeys: ['authorization'] }, action: 'HASH' },
        ],
      },
    });
    new wafv2.CfnWebACLAssociation(this, 'WebAclAssociation', {
      resourceArn: this.loadBalancer.loadBalancerArn,
      webAclArn: webAcl.attrArn,
    });
    // WAF only delivers to log groups whose name starts with aws-waf-logs-. The name carries the stack's
    // incarnation, so a kept log group never blocks the stack from being created again.
    const wafLogs = new logs.LogGroup(this, 'WafLogs', {
      logGroupName: stackLogGroupName(this, 'WafLogs', wafLogGroupPrefix),
      encryptionKey: props.key,
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy,
    });
    new wafv2.CfnLoggingConfiguration(this, 'WafLogging', {
      resourceArn: webAcl.attrArn,
      logDestinationConfigs: [
        Stack.of(this).formatArn({
          service: 'logs',
          resource: 'log-group',
          resourceName: wafLogs.logGroupName,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      ],
      redactedFields: [{ singleHeader: { Name: 'authorization' } }],
    });
    scaleOnLoad(this.service, this.targetGroup, props.desiredCount ?? 2, props.maxCount);
    tenantMetrics(this, logGroup, props.alarmTopic);
    this.acknowledge(redirect, albSecurityGroup, disposable, phase);
  }

  private acknowledge(
    redirect: elbv2.ApplicationListener,
    albSecurityGroup: ec2.SecurityGroup,
    disposable: boolean,
    phase: TenantPhase,
  ): void {
    const bucket = l1(this.accessLogs);
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
      l1(redirect),
      HIPAA_AND_NIST('ELBv2ACMCertificateRequired'),
      'The port 80 listener carries no data: its only action is a permanent redirect to the HTTPS listener, which serves an ACM certificate.',
    );
    ack(
      l1(albSecurityGroup),
      AWS_SOLUTIONS('EC23'),
      'The API is public by design: the load balancer admits 443 (and 80, which only redirects) from anywhere, behind AWS WAF; API tasks admit only the load balancer.',
    );
    ack(
      l1(this.taskDefinition),
      AWS_SOLUTIONS('ECS2'),
      'The environment carries only non-secret configuration (endpoints, table and pool ids, the model); the one secret (the context key) is injected by ECS from Secrets Manager, and the API signs in to PostgreSQL with short-lived IAM tokens.',
    );
    ack(
      l1(childOfType(this.taskDefinition.executionRole!, iam.Policy)),
      AWS_SOLUTIONS('IAM5[Resource::*]'),
      'ecr:GetAuthorizationToken has no resource-level permissions and must be granted on "*"; the image pull itself is scoped to the asset repository.',
    );
    if (disposable) {
      ack(
        l1(this.loadBalancer),
        HIPAA_AND_NIST('ELBDeletionProtectionEnabled'),
        `The tenant catalog declares this tenant disposable (settings.deletionPolicy "destroy"): a test tenant whose data is meant to be deleted with its stack.`,
      );
    } else if (phase !== 'steady') {
      ack(l1(this.loadBalancer), HIPAA_AND_NIST('ELBDeletionProtectionEnabled'), PHASE_REASONS[phase]);
    }
  }
}
