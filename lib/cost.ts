/**
 * What the fleet costs, from its synthesized templates and a dated price table kept in the repository
 * (lib/prices/<region>.json). Every resource type the templates use is either priced here or named as free of
 * charge (FREE_TYPES); any other type stops the report with its name, so a new priced resource cannot slip in
 * unpriced. Usage-driven lines (log volume, NAT traffic, load balancer capacity units, WAF requests, backup
 * storage, monthly active users) are assumptions the caller sets (`Usage`), shown as such.
 */
import { cellSizeFor, SharedCellProfileName, SharedModel } from './cell-size';
import { DEFAULT_USAGE, Usage } from './cost-usage';

export { DEFAULT_USAGE, IDLE_USAGE, type Usage } from './cost-usage';

export interface PriceTable {
  readonly region: string;
  readonly currency: string;
  readonly date: string;
  readonly hoursPerMonth: number;
  readonly source: string;
  readonly prices: {
    readonly 'rds.postgres.instanceHour': Readonly<Record<string, number>>;
    readonly [name: string]: number | Readonly<Record<string, number>>;
  };
}

export interface CostLine {
  readonly stack: string;
  readonly resource: string;
  readonly what: string;
  readonly monthly: number;
  /** Driven by an assumption of Usage rather than by the template alone. */
  readonly usage: boolean;
}

/** Resource types that cost nothing by themselves (their usage is priced where it lands, if anywhere). */
export const FREE_TYPES = new Set([
  'AWS::ApplicationAutoScaling::ScalableTarget',
  'AWS::ApplicationAutoScaling::ScalingPolicy',
  'AWS::Backup::BackupSelection',
  'AWS::Backup::BackupVault',
  'AWS::CodeBuild::Project', // per build minute: a few minutes per onboarding
  'AWS::Cognito::UserPoolClient',
  'AWS::EC2::EgressOnlyInternetGateway', // no hourly charge; data out is priced as any transfer
  'AWS::EC2::FlowLog', // its log group is priced
  'AWS::EC2::InternetGateway',
  'AWS::EC2::IPAMPool',
  'AWS::EC2::Route',
  'AWS::EC2::RouteTable',
  'AWS::EC2::SecurityGroup',
  'AWS::EC2::SecurityGroupEgress',
  'AWS::EC2::SecurityGroupIngress',
  'AWS::EC2::Subnet',
  'AWS::EC2::SubnetRouteTableAssociation',
  'AWS::EC2::VPC',
  'AWS::EC2::VPCCidrBlock', // an Amazon-provided IPv6 block
  'AWS::EC2::VPCGatewayAttachment',
  'AWS::ECS::Cluster',
  'AWS::ECS::TaskDefinition', // priced through its service
  'AWS::ElasticLoadBalancingV2::Listener',
  'AWS::ElasticLoadBalancingV2::TargetGroup',
  'AWS::Events::Rule',
  'AWS::IAM::ManagedPolicy',
  'AWS::IAM::Policy',
  'AWS::IAM::Role',
  'AWS::Lambda::Function', // per request: provisioning and onboarding only
  'AWS::Lambda::Permission',
  'AWS::Lambda::Url',
  'AWS::Logs::MetricFilter',
  'AWS::RDS::DBClusterParameterGroup',
  'AWS::RDS::DBParameterGroup',
  'AWS::RDS::DBSubnetGroup',
  'AWS::S3::BucketPolicy',
  'AWS::SNS::Topic', // per notification: alarms only
  'AWS::SNS::TopicPolicy',
  'AWS::SSM::Parameter', // standard parameters
  'AWS::StepFunctions::StateMachine', // per transition: onboarding only
  'AWS::WAFv2::LoggingConfiguration',
  'AWS::WAFv2::WebACLAssociation',
]);

interface Resource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
}

export interface Template {
  readonly Resources: Record<string, Resource>;
}

export class UnpricedResourceError extends Error {
  constructor(readonly types: readonly string[]) {
    super(
      `no price for resource type${types.length > 1 ? 's' : ''} ${types.join(', ')}: add a price line to lib/cost.ts (and its unit prices to lib/prices/<region>.json), or add the type to FREE_TYPES if it costs nothing by itself`,
    );
    this.name = 'UnpricedResourceError';
  }
}

const num = (v: unknown, fallback = 0) => (v === undefined ? fallback : Number(v));

/** The monthly cost lines of one stack's template. `tenants`: how many tenants the stack serves (Cognito MAU). */
export function priceTemplate(
  stack: string,
  template: Template,
  table: PriceTable,
  usage: Usage = DEFAULT_USAGE,
  context: { tenants?: number; vpcs?: number } = {},
): CostLine[] {
  const p = table.prices as Record<string, number>;
  const h = table.hoursPerMonth;
  const lines: CostLine[] = [];
  const add = (resource: string, what: string, monthly: number, isUsage = false) =>
    lines.push({ stack, resource, what, monthly, usage: isUsage });
  const unpriced = new Set<string>();
  const resources = template.Resources ?? {};
  const clusters = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::RDS::DBCluster');
  const allocatedGb =
    Object.values(resources)
      .filter((r) => r.Type === 'AWS::RDS::DBInstance' && r.Properties?.DBClusterIdentifier === undefined)
      .reduce((sum, r) => sum + num(r.Properties?.AllocatedStorage, 20), 0) +
    clusters.length * usage.auroraStorageGb;
  for (const [id, r] of Object.entries(resources)) {
    const props = r.Properties ?? {};
    switch (r.Type) {
      case 'AWS::RDS::DBCluster':
        add(
          id,
          `Aurora storage (${usage.auroraStorageGb} GB)`,
          usage.auroraStorageGb * p['aurora.storageGbMonth'],
          true,
        );
        if (props.ManageMasterUserPassword === true)
          add(id, 'RDS-managed master secret', p['secretsmanager.secretMonth']);
        break;
      case 'AWS::RDS::DBInstance': {
        const cls = String(props.DBInstanceClass);
        if (cls === 'db.serverless') {
          // Billed in capacity units: the cluster's minimum all month, plus the assumed use above it.
          const ref = (props.DBClusterIdentifier as { Ref?: string } | undefined)?.Ref;
          const scaling = (ref ? resources[ref]?.Properties?.ServerlessV2ScalingConfiguration : undefined) as
            { MinCapacity?: number } | undefined;
          const min = num(scaling?.MinCapacity, 0.5);
          if (min > 0)
            add(id, `Aurora Serverless v2 minimum (${min} ACU)`, min * p['aurora.serverlessV2AcuHour'] * h);
          add(
            id,
            `Aurora Serverless v2 use (${usage.auroraAcuHours} ACU-hours)`,
            usage.auroraAcuHours * p['aurora.serverlessV2AcuHour'],
            true,
          );
          break;
        }
        const hourly = table.prices['rds.postgres.instanceHour'][cls];
        if (hourly === undefined) {
          throw new Error(
            `no price for ${cls} in lib/prices/${table.region}.json: add it under rds.postgres.instanceHour`,
          );
        }
        const factor = props.MultiAZ === true ? p['rds.multiAzFactor'] : 1;
        const gb = num(props.AllocatedStorage, 20);
        add(id, `RDS PostgreSQL ${cls}${factor > 1 ? ' Multi-AZ' : ''}`, hourly * factor * h);
        // RDS runs T classes in Unlimited mode: CPU above the class's baseline is billed per vCPU-hour. Priced at
        // the Multi-AZ factor too, as every hourly dimension of a Multi-AZ instance is (the cautious reading).
        if (cls.startsWith('db.t')) {
          const baseline = (
            table.prices['rds.burstableBaselinePercent'] as Record<string, number> | undefined
          )?.[cls];
          const vcpus = (table.prices['rds.burstableVcpus'] as Record<string, number> | undefined)?.[cls];
          if (baseline === undefined || vcpus === undefined) {
            throw new Error(
              `no CPU baseline for ${cls} in lib/prices/${table.region}.json: add it under rds.burstableBaselinePercent and rds.burstableVcpus`,
            );
          }
          const surplusVcpus = (vcpus * Math.max(0, usage.dbCpuPercent - baseline)) / 100;
          if (surplusVcpus > 0) {
            add(
              id,
              `CPU credits above the baseline (${usage.dbCpuPercent}% average CPU)`,
              surplusVcpus * p['rds.cpuCreditVcpuHour'] * h * factor,
              true,
            );
          }
        }
        add(
          id,
          `RDS storage gp3 ${gb} GB${factor > 1 ? ' Multi-AZ' : ''}`,
          gb * p['rds.gp3GbMonth'] * factor,
        );
        if (props.ManageMasterUserPassword === true)
          add(id, 'RDS-managed master secret', p['secretsmanager.secretMonth']);
        break;
      }
      case 'AWS::Backup::BackupPlan':
        add(
          id,
          `backup storage (${usage.backupGbFactor} x ${allocatedGb} GB)`,
          allocatedGb * usage.backupGbFactor * p['backup.rdsSnapshotGbMonth'],
          true,
        );
        break;
      case 'AWS::EC2::NatGateway':
        add(id, 'NAT gateway', p['ec2.natGatewayHour'] * h);
        add(
          id,
          `NAT data (${usage.natGbPerGateway} GB)`,
          usage.natGbPerGateway * p['ec2.natGatewayGbProcessed'],
          true,
        );
        break;
      case 'AWS::EC2::EIP':
        add(id, 'public IPv4 address (Elastic IP)', p['ec2.publicIpv4Hour'] * h);
        break;
      case 'AWS::ElasticLoadBalancingV2::LoadBalancer': {
        add(id, 'application load balancer', p['elb.albHour'] * h);
        add(id, `load balancer capacity (${usage.albLcu} LCU)`, usage.albLcu * p['elb.albLcuHour'] * h, true);
        if (props.Scheme === 'internet-facing') {
          const azs = Array.isArray(props.Subnets) ? props.Subnets.length : 2;
          add(id, `public IPv4 addresses of the load balancer (${azs})`, azs * p['ec2.publicIpv4Hour'] * h);
        }
        break;
      }
      case 'AWS::WAFv2::WebACL': {
        const rules = Array.isArray(props.Rules) ? props.Rules.length : 0;
        add(id, `WAF web ACL and ${rules} rules`, p['waf.webAclMonth'] + rules * p['waf.ruleMonth']);
        add(
          id,
          `WAF requests (${usage.wafMillionRequests} million)`,
          usage.wafMillionRequests * p['waf.millionRequests'],
          true,
        );
        break;
      }
      case 'AWS::ECS::Service': {
        const ref = (props.TaskDefinition as { Ref?: string } | undefined)?.Ref;
        const task = ref ? resources[ref]?.Properties : undefined;
        if (!task) throw new Error(`${stack}/${id}: its task definition is not in the template`);
        const arch =
          (task.RuntimePlatform as { CpuArchitecture?: string } | undefined)?.CpuArchitecture === 'X86_64'
            ? 'x86_64'
            : 'arm64';
        const vcpu = num(task.Cpu) / 1024;
        const gb = num(task.Memory) / 1024;
        // A service whose count autoscaling owns has no DesiredCount: it runs at least its target's minimum.
        const scaledMin = Object.values(resources)
          .filter((x) => x.Type === 'AWS::ApplicationAutoScaling::ScalableTarget')
          .map((x) => num(x.Properties?.MinCapacity, 1));
        const count = num(props.DesiredCount, scaledMin.length ? Math.max(...scaledMin) : 1);
        add(
          id,
          `Fargate ${arch} ${count} x (${vcpu} vCPU, ${gb} GB)`,
          count * (vcpu * p[`fargate.${arch}.vcpuHour`] + gb * p[`fargate.${arch}.gbHour`]) * h,
        );
        const network = props.NetworkConfiguration as
          { AwsvpcConfiguration?: { AssignPublicIp?: string } } | undefined;
        if (network?.AwsvpcConfiguration?.AssignPublicIp === 'ENABLED') {
          add(id, `public IPv4 addresses of the tasks (${count})`, count * p['ec2.publicIpv4Hour'] * h);
        }
        break;
      }
      case 'AWS::KMS::Key':
        add(id, 'KMS key', p['kms.keyMonth']);
        break;
      case 'AWS::SecretsManager::Secret':
        add(id, 'Secrets Manager secret', p['secretsmanager.secretMonth']);
        break;
      case 'AWS::CloudWatch::Alarm':
        add(id, 'CloudWatch alarm', p['cloudwatch.alarmMonth']);
        break;
      case 'AWS::Logs::LogGroup':
        add(
          id,
          `log ingestion and storage (${usage.logGbPerLogGroup} GB)`,
          usage.logGbPerLogGroup * (p['logs.ingestGb'] + p['logs.storedGbMonth']),
          true,
        );
        break;
      case 'AWS::EC2::VPCEndpoint':
        if (props.VpcEndpointType === 'Interface') {
          const azs = Array.isArray(props.SubnetIds) ? props.SubnetIds.length : 2;
          add(id, `interface endpoint (${azs} AZs)`, azs * p['ec2.interfaceEndpointAzHour'] * h);
        }
        break;
      case 'AWS::EC2::IPAM':
        if (props.Tier !== 'free') {
          const ips = usage.ipamIpsPerVpc * (context.vpcs ?? 1);
          add(
            id,
            `IPAM advanced tier (${ips} active IPs)`,
            ips * p['ec2.ipamAdvancedActiveIpHour'] * h,
            true,
          );
        }
        break;
      case 'AWS::Cognito::UserPool': {
        const mau = usage.mauPerTenant * (context.tenants ?? 1);
        add(id, `Cognito Plus (${mau} monthly active users)`, mau * p['cognito.plusMau'], true);
        break;
      }
      case 'AWS::DynamoDB::Table':
        add(
          id,
          `DynamoDB on demand (${usage.registryMillionReads} million reads)`,
          usage.registryMillionReads * p['dynamodb.onDemandMillionReads'],
          true,
        );
        break;
      case 'AWS::S3::Bucket':
        add(id, 'S3 storage (1 GB of logs)', p['s3.standardGbMonth'], true);
        break;
      default:
        if (!FREE_TYPES.has(r.Type) && !r.Type.startsWith('Custom::')) unpriced.add(r.Type);
    }
  }
  if (unpriced.size) throw new UnpricedResourceError([...unpriced].sort());
  return lines;
}

export const total = (lines: readonly CostLine[]) => lines.reduce((s, l) => s + l.monthly, 0);

/** The biggest lines (merged by what they are), for a report. */
export function biggest(lines: readonly CostLine[], n = 3): { what: string; monthly: number }[] {
  const merged = new Map<string, number>();
  for (const l of lines) {
    const key = l.what.replace(/ \(.*\)$/, '');
    merged.set(key, (merged.get(key) ?? 0) + l.monthly);
  }
  return [...merged.entries()]
    .map(([what, monthly]) => ({ what, monthly }))
    .sort((a, b) => b.monthly - a.monthly)
    .slice(0, n);
}

export { cellSizeFor } from './cell-size';

/**
 * A shared cell's template resized for N tenants by cellSizeFor (database class and storage, task count). The
 * template must be a cell of `profile` (its egress is the template's own).
 */
export function resizeCell(
  template: Template,
  model: SharedModel,
  tenants: number,
  profile?: SharedCellProfileName,
): Template {
  const size = cellSizeFor(model, tenants, profile);
  const resources: Record<string, Resource> = {};
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type === 'AWS::RDS::DBInstance') {
      resources[id] = {
        ...r,
        Properties: {
          ...r.Properties,
          DBInstanceClass: size.instanceClass,
          AllocatedStorage: String(size.storageGb),
        },
      };
    } else if (r.Type === 'AWS::ECS::Service') {
      resources[id] = { ...r, Properties: { ...r.Properties, DesiredCount: size.tasks } };
    } else {
      resources[id] = r;
    }
  }
  return { Resources: resources };
}
