import * as fs from 'fs';
import * as path from 'path';
import {
  DEFAULT_USAGE,
  FREE_TYPES,
  IDLE_USAGE,
  cellSizeFor,
  priceTemplate,
  resizeCell,
  total,
  UnpricedResourceError,
  type PriceTable,
  type Template,
} from '../../lib/cost';
import { unitCostChart } from '../../lib/cost-chart';
import { SAMPLE_TENANTS, synthFleet } from './fleet-helpers';

// A fixed price table, so the figures below are exact.
const TABLE: PriceTable = {
  region: 'test-1',
  currency: 'USD',
  date: '2026-01-01',
  hoursPerMonth: 100,
  source: 'test',
  prices: {
    'rds.postgres.instanceHour': { 'db.t4g.medium': 0.1, 'db.r6g.xlarge': 1 },
    'rds.multiAzFactor': 2,
    'rds.burstableVcpus': { 'db.t4g.medium': 2 },
    'rds.burstableBaselinePercent': { 'db.t4g.medium': 20 },
    'rds.cpuCreditVcpuHour': 0.05,
    'rds.gp3GbMonth': 0.1,
    'backup.rdsSnapshotGbMonth': 0.05,
    'ec2.natGatewayHour': 0.05,
    'ec2.natGatewayGbProcessed': 0.05,
    'ec2.publicIpv4Hour': 0.01,
    'ec2.interfaceEndpointAzHour': 0.01,
    'ec2.ipamAdvancedActiveIpHour': 0.001,
    'elb.albHour': 0.02,
    'elb.albLcuHour': 0.01,
    'waf.webAclMonth': 5,
    'waf.ruleMonth': 1,
    'waf.millionRequests': 0.5,
    'fargate.arm64.vcpuHour': 0.04,
    'fargate.arm64.gbHour': 0.004,
    'fargate.x86_64.vcpuHour': 0.05,
    'fargate.x86_64.gbHour': 0.005,
    'kms.keyMonth': 1,
    'secretsmanager.secretMonth': 0.4,
    'cloudwatch.alarmMonth': 0.1,
    'logs.ingestGb': 0.5,
    'logs.storedGbMonth': 0.03,
    'cognito.plusMau': 0.02,
    'dynamodb.onDemandMillionReads': 0.25,
    'dynamodb.onDemandMillionWrites': 1.25,
    's3.standardGbMonth': 0.02,
    'aurora.serverlessV2AcuHour': 0.1,
    'aurora.storageGbMonth': 0.2,
  },
};

const CELL: Template = {
  Resources: {
    Db: {
      Type: 'AWS::RDS::DBInstance',
      Properties: {
        DBInstanceClass: 'db.t4g.medium',
        MultiAZ: true,
        AllocatedStorage: '50',
        ManageMasterUserPassword: true,
      },
    },
    Nat: { Type: 'AWS::EC2::NatGateway' },
    Ip: { Type: 'AWS::EC2::EIP' },
    Lb: {
      Type: 'AWS::ElasticLoadBalancingV2::LoadBalancer',
      Properties: { Scheme: 'internet-facing', Subnets: ['a', 'b'] },
    },
    Acl: { Type: 'AWS::WAFv2::WebACL', Properties: { Rules: [{}, {}, {}] } },
    Task: {
      Type: 'AWS::ECS::TaskDefinition',
      Properties: { Cpu: '512', Memory: '1024', RuntimePlatform: { CpuArchitecture: 'ARM64' } },
    },
    Service: { Type: 'AWS::ECS::Service', Properties: { TaskDefinition: { Ref: 'Task' }, DesiredCount: 2 } },
    Key: { Type: 'AWS::KMS::Key' },
    Vpc: { Type: 'AWS::EC2::VPC' },
    Tenant: { Type: 'Custom::PoolTenant' },
  },
};

describe('pricing a template (lib/cost.ts)', () => {
  test('exact lines from a fixed template and price table', () => {
    const lines = priceTemplate('Cell', CELL, TABLE, {
      ...DEFAULT_USAGE,
      natGbPerGateway: 10,
      albLcu: 2,
      wafMillionRequests: 4,
    });
    expect(lines.map((l) => [l.what, Number(l.monthly.toFixed(4)), l.usage])).toEqual([
      ['RDS PostgreSQL db.t4g.medium Multi-AZ', 20, false], // 0.1 x 2 x 100 h
      ['RDS storage gp3 50 GB Multi-AZ', 10, false], // 50 x 0.1 x 2
      ['RDS-managed master secret', 0.4, false],
      ['NAT gateway', 5, false],
      ['NAT data (10 GB)', 0.5, true],
      ['public IPv4 address (Elastic IP)', 1, false],
      ['application load balancer', 2, false],
      ['load balancer capacity (2 LCU)', 2, true],
      ['public IPv4 addresses of the load balancer (2)', 2, false],
      ['WAF web ACL and 3 rules', 8, false],
      ['WAF requests (4 million)', 2, true],
      ['Fargate arm64 2 x (0.5 vCPU, 1 GB)', 4.8, false], // 2 x (0.5 x 0.04 + 1 x 0.004) x 100
      ['KMS key', 1, false],
    ]);
    expect(Number(total(lines).toFixed(4))).toBe(58.7);
  });

  test('an Aurora Serverless v2 cluster: its minimum capacity all month, the assumed use above it, storage as used', () => {
    const cluster = (min: number): Template => ({
      Resources: {
        Cluster: {
          Type: 'AWS::RDS::DBCluster',
          Properties: {
            ServerlessV2ScalingConfiguration: { MinCapacity: min, MaxCapacity: 4 },
            ManageMasterUserPassword: true,
          },
        },
        Writer: {
          Type: 'AWS::RDS::DBInstance',
          Properties: { DBInstanceClass: 'db.serverless', DBClusterIdentifier: { Ref: 'Cluster' } },
        },
        Params: { Type: 'AWS::RDS::DBClusterParameterGroup' },
        Plan: { Type: 'AWS::Backup::BackupPlan' },
      },
    });
    const usage = { ...DEFAULT_USAGE, auroraAcuHours: 40, auroraStorageGb: 10 };
    expect(
      priceTemplate('Silo', cluster(0), TABLE, usage).map((l) => [
        l.what,
        Number(l.monthly.toFixed(4)),
        l.usage,
      ]),
    ).toEqual([
      ['Aurora storage (10 GB)', 2, true], // 10 x 0.2
      ['RDS-managed master secret', 0.4, false],
      ['Aurora Serverless v2 use (40 ACU-hours)', 4, true], // 40 x 0.1
      ['backup storage (1 x 10 GB)', 0.5, true], // the cluster's stored GB, not an allocation
    ]);
    // A cluster that never pauses pays its minimum every hour.
    const min = priceTemplate('Silo', cluster(0.5), TABLE, usage).find((l) => l.what.includes('minimum'))!;
    expect([min.what, Number(min.monthly.toFixed(4))]).toEqual(['Aurora Serverless v2 minimum (0.5 ACU)', 5]);
    // Idle: no use above the minimum, a little storage.
    expect(Number(total(priceTemplate('Silo', cluster(0), TABLE, IDLE_USAGE)).toFixed(4))).toBe(0.65);
  });

  test('tasks with public addresses pay for one IPv4 address each', () => {
    const t: Template = {
      Resources: {
        Task: CELL.Resources.Task,
        Service: {
          Type: 'AWS::ECS::Service',
          Properties: {
            TaskDefinition: { Ref: 'Task' },
            DesiredCount: 2,
            NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'ENABLED' } },
          },
        },
      },
    };
    expect(priceTemplate('Silo', t, TABLE).map((l) => [l.what, Number(l.monthly.toFixed(4))])).toEqual([
      ['Fargate arm64 2 x (0.5 vCPU, 1 GB)', 4.8],
      ['public IPv4 addresses of the tasks (2)', 2], // 2 x 0.01 x 100 h
    ]);
  });

  test('a service whose count autoscaling owns (no DesiredCount) is priced at its scalable target minimum', () => {
    const { DesiredCount: _omitted, ...service } = CELL.Resources.Service.Properties as Record<
      string,
      unknown
    >;
    void _omitted;
    const t: Template = {
      Resources: {
        Task: CELL.Resources.Task,
        Service: { Type: 'AWS::ECS::Service', Properties: service },
        Scaling: {
          Type: 'AWS::ApplicationAutoScaling::ScalableTarget',
          Properties: { MinCapacity: 3, MaxCapacity: 12 },
        },
      },
    };
    expect(priceTemplate('Cell', t, TABLE).map((l) => l.what)).toEqual([
      'Fargate arm64 3 x (0.5 vCPU, 1 GB)',
    ]);
  });

  test('a resource type with no price line and not known to be free stops the report, naming it', () => {
    const t: Template = {
      Resources: {
        ...CELL.Resources,
        Cache: { Type: 'AWS::ElastiCache::CacheCluster' },
        Q: { Type: 'AWS::SQS::Queue' },
      },
    };
    expect(() => priceTemplate('Cell', t, TABLE)).toThrow(UnpricedResourceError);
    expect(() => priceTemplate('Cell', t, TABLE)).toThrow(
      'no price for resource types AWS::ElastiCache::CacheCluster, AWS::SQS::Queue: add a price line',
    );
  });

  test('an instance class missing from the price table is named, with where to add it', () => {
    const t: Template = {
      Resources: { Db: { Type: 'AWS::RDS::DBInstance', Properties: { DBInstanceClass: 'db.x9.huge' } } },
    };
    expect(() => priceTemplate('Cell', t, TABLE)).toThrow(
      'no price for db.x9.huge in lib/prices/test-1.json',
    );
  });

  test('every resource type of the synthesized sample fleet, and of every silo profile, is priced or known to be free', () => {
    const fleet = synthFleet([
      ...SAMPLE_TENANTS,
      { id: 'prod-silo', name: 'P', model: 'silo', settings: { profile: 'production' } },
      { id: 'idle-silo', name: 'I', model: 'silo', settings: { profile: 'idle-friendly' } },
    ]);
    const table = JSON.parse(
      fs.readFileSync(path.join(__dirname, '..', '..', 'lib', 'prices', 'us-east-1.json'), 'utf8'),
    ) as PriceTable;
    for (const stack of fleet.stackNames()) {
      const template = fleet.template(stack).toJSON() as Template;
      expect(() => priceTemplate(stack, template, table)).not.toThrow();
    }
    expect(FREE_TYPES.has('AWS::RDS::DBInstance')).toBe(false);
  });

  test('shared cells are sized by the stated rule, and resized templates price accordingly', () => {
    const nat = { egress: 'nat-per-az' };
    expect(cellSizeFor('pool', 10)).toEqual({
      instanceClass: 'db.t4g.medium',
      storageGb: 50,
      tasks: 2,
      ...nat,
    });
    expect(cellSizeFor('pool', 1000)).toEqual({
      instanceClass: 'db.m6g.large',
      storageGb: 200,
      tasks: 4,
      ...nat,
    });
    expect(cellSizeFor('bridge', 1000)).toEqual({
      instanceClass: 'db.r6g.xlarge',
      storageGb: 200,
      tasks: 4,
      ...nat,
    });
    expect(cellSizeFor('pool', 1000, 'production')).toEqual({
      instanceClass: 'db.t4g.large',
      storageGb: 200,
      tasks: 4,
      egress: 'task-public-ip',
    });
    const big = priceTemplate('Cell', resizeCell(CELL, 'bridge', 1000), TABLE);
    expect(big.find((l) => l.what.startsWith('RDS PostgreSQL'))!.monthly).toBe(200); // 1 x 2 x 100 h
    expect(big.find((l) => l.what.startsWith('Fargate'))!.what).toBe('Fargate arm64 4 x (0.5 vCPU, 1 GB)');
  });

  test('a burstable database bills the CPU it uses above its baseline (Multi-AZ: twice)', () => {
    const table: PriceTable = {
      ...TABLE,
      prices: {
        ...TABLE.prices,
        'rds.postgres.instanceHour': { 'db.t4g.large': 0.2 },
        'rds.burstableVcpus': { 'db.t4g.large': 2 },
        'rds.burstableBaselinePercent': { 'db.t4g.large': 30 },
        'rds.cpuCreditVcpuHour': 0.05,
      },
    };
    const t4g = resizeCell(CELL, 'pool', 1000, 'production');
    const credits = (dbCpuPercent: number) =>
      priceTemplate('Cell', t4g, table, { ...DEFAULT_USAGE, dbCpuPercent }).filter((l) =>
        l.what.startsWith('CPU credits'),
      );
    // At or under the baseline: no line.
    expect(credits(30)).toEqual([]);
    // 50% of 2 vCPUs, 30% of them free: 0.4 vCPU x 0.05 x 100 h, x 2 for Multi-AZ.
    expect(credits(50)).toEqual([
      expect.objectContaining({ what: 'CPU credits above the baseline (50% average CPU)', usage: true }),
    ]);
    expect(credits(50)[0].monthly).toBeCloseTo(4, 10);
    const singleAz = {
      Resources: {
        ...t4g.Resources,
        Db: { ...t4g.Resources.Db, Properties: { ...t4g.Resources.Db.Properties, MultiAZ: false } },
      },
    };
    const line = priceTemplate('Cell', singleAz, table, { ...DEFAULT_USAGE, dbCpuPercent: 50 }).find((l) =>
      l.what.startsWith('CPU credits'),
    );
    expect(line!.monthly).toBeCloseTo(2, 10);
    // A T class the table has no baseline for is refused, naming the fix.
    const noBaseline = { ...table, prices: { ...table.prices, 'rds.burstableBaselinePercent': {} } };
    expect(() => priceTemplate('Cell', t4g, noBaseline)).toThrow(
      'no CPU baseline for db.t4g.large in lib/prices/test-1.json: add it under rds.burstableBaselinePercent and rds.burstableVcpus',
    );
  });

  test('the chart is an SVG with one line per model', () => {
    const svg = unitCostChart({
      silo: [
        { tenants: 10, perTenant: 250 },
        { tenants: 1000, perTenant: 240 },
      ],
      pool: [
        { tenants: 10, perTenant: 25 },
        { tenants: 1000, perTenant: 0.9 },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('pool $0.90');
  });
});
