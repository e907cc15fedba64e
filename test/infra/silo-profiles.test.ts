/**
 * Silo cost profiles (lib/silo-profiles.ts) and shared cells that exist only when used, sized by tenant count
 * (lib/cell-size.ts). Every fleet here is synthesized with the compliance packs and lifecycle checks on, so each
 * profile passing synth is itself the proof that AwsSolutions, HIPAA Security and NIST 800-53 R5 find nothing
 * unacknowledged in it.
 */
import { execFileSync } from 'child_process';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { CatalogError, parseCatalog, parseTenant, tenantRequestOf } from '../../lib/catalog';
import { cellSizeFor } from '../../lib/cell-size';
import { approvalReasons } from '../../lib/onboarding-rules';
import type { FleetOptions } from '../../lib/fleet';
import { SAMPLE_TENANTS, synthFleet } from './fleet-helpers';

type Resources = Record<
  string,
  { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string }
>;
const resources = (t: Template) => (t.toJSON() as { Resources: Resources }).Resources;
const ofType = (t: Template, type: string) => Object.entries(resources(t)).filter(([, r]) => r.Type === type);

const PROFILE_TENANTS = [
  { id: 'std', name: 'Standard', model: 'silo' },
  { id: 'prod', name: 'Production', model: 'silo', settings: { profile: 'production' } },
  { id: 'idle', name: 'Idle', model: 'silo', settings: { profile: 'idle-friendly' } },
  {
    id: 'idle-test',
    name: 'Idle, disposable',
    model: 'silo',
    settings: { profile: 'idle-friendly', deletionPolicy: 'destroy' },
  },
  {
    id: 'idle-back',
    name: 'Idle, restored',
    model: 'silo',
    settings: { profile: 'idle-friendly', restoredFromSnapshot: 'idle-back-final-20261127100000' },
  },
  {
    id: 'std-back',
    name: 'Standard, restored',
    model: 'silo',
    settings: { restoredFromSnapshot: 'std-back-final-20261127100000' },
  },
];

describe('silo cost profiles: the catalog', () => {
  const silo = (settings: Record<string, unknown>) =>
    parseTenant({ id: 'ten-1', name: 'T', model: 'silo', settings }, 'x');

  test('each profile brings its own defaults; explicit settings win where the profile allows them', () => {
    expect(silo({}).tenant!.silo).toMatchObject({
      profile: 'standard',
      instanceClass: 't4g.medium',
      multiAz: true,
    });
    expect(silo({ profile: 'production' }).tenant!.silo).toMatchObject({
      profile: 'production',
      instanceClass: 't4g.small',
      multiAz: true,
    });
    expect(silo({ profile: 'production', instanceClass: 'r6g.large' }).tenant!.silo!.instanceClass).toBe(
      'r6g.large',
    );
    expect(silo({ profile: 'idle-friendly' }).tenant!.silo).toMatchObject({
      profile: 'idle-friendly',
      instanceClass: 'serverless',
      multiAz: false,
    });
  });

  test('contradictions are refused naming the field, the profile and the fix', () => {
    expect(silo({ profile: 'cheap' }).problems.map((p) => p.message)).toEqual([
      'tenant "ten-1": field "settings.profile" is "cheap": use one of "standard", "production", "idle-friendly" (the default is "standard"; the README\'s "Silo cost profiles" compares them)',
    ]);
    expect(
      silo({ profile: 'idle-friendly', instanceClass: 't4g.medium', multiAz: true }).problems.map(
        (p) => p.field,
      ),
    ).toEqual(['settings.instanceClass', 'settings.multiAz']);
    expect(silo({ profile: 'idle-friendly', instanceClass: 't4g.medium' }).problems[0].message).toMatch(
      /does not apply to the "idle-friendly" profile .* remove it, or use the "standard" or "production" profile/,
    );
    expect(silo({ profile: 'production', multiAz: false }).problems[0].message).toMatch(
      /"production" profile is the highly available one: remove it, or use the "standard" profile/,
    );
    const pool = parseTenant(
      { id: 'ten-2', name: 'T', model: 'pool', settings: { profile: 'production' } },
      'x',
    );
    expect(pool.problems.map((p) => p.code)).toEqual(['silo-only-setting']);
  });

  test('the registry copy of a tenant parses back to the same tenant (profile kept, derived settings not written)', () => {
    for (const settings of [{}, { profile: 'production' }, { profile: 'idle-friendly' }]) {
      const t = silo(settings).tenant!;
      const request = JSON.parse(tenantRequestOf(t)) as { settings: Record<string, unknown> };
      expect('instanceClass' in request.settings).toBe(t.silo!.profile !== 'idle-friendly');
      const again = parseTenant(request, 'x');
      expect(again.problems).toEqual([]);
      expect(again.tenant).toEqual(t);
    }
  });

  test('production needs no approver; idle-friendly (not highly available), a large class or a single-AZ silo does', () => {
    expect(approvalReasons(silo({ profile: 'idle-friendly' }).tenant!)).toEqual([
      'settings.profile "idle-friendly" (one database writer and one API task: not highly available)',
    ]);
    expect(approvalReasons(silo({ profile: 'production' }).tenant!)).toEqual([]);
    expect(approvalReasons(silo({ multiAz: false }).tenant!)).toEqual([
      'settings.multiAz false (a single-AZ database)',
    ]);
    expect(
      approvalReasons(silo({ profile: 'production', instanceClass: 'r6g.4xlarge' }).tenant!),
    ).toHaveLength(1);
  });
});

describe('silo cost profiles: what each builds', () => {
  let fleet: ReturnType<typeof synthFleet>;
  beforeAll(() => {
    // Compliance packs and lifecycle checks run in this synth: it throws on any unacknowledged finding.
    fleet = synthFleet(PROFILE_TENANTS);
  });

  test('standard: tasks in private subnets behind a NAT gateway in each AZ', () => {
    const t = fleet.template('Tenant-std');
    t.resourceCountIs('AWS::EC2::NatGateway', 2);
    t.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
    });
    t.resourceCountIs('AWS::EC2::EgressOnlyInternetGateway', 0);
    t.hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.t4g.medium',
      MultiAZ: true,
      AllocatedStorage: '50',
    });
  });

  test('production: no NAT gateway; two tasks with public addresses in the public tier, reachable only from the load balancer', () => {
    const t = fleet.template('Tenant-prod');
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
    t.resourceCountIs('AWS::EC2::EIP', 0);
    t.hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.t4g.small',
      MultiAZ: true,
      AllocatedStorage: '50', // standard's: RDS never shrinks storage, so moving between them never has to
    });
    expectPublicTasksBehindTheLoadBalancer(t);
    // The database is in the data tier only, never in the provisioner's (isolated too, but with IPv6 out).
    const [[, group]] = ofType(t, 'AWS::RDS::DBSubnetGroup');
    const refs = (group.Properties!.SubnetIds as { Ref: string }[]).map((x) => x.Ref);
    expect(refs.length === 2 && refs.every((r) => r.includes('dataSubnet'))).toBe(true);
  });

  test('without NAT gateways the provisioner reaches AWS over IPv6 only, out through an egress-only gateway', () => {
    for (const name of ['Tenant-prod', 'Tenant-idle']) {
      const t = fleet.template(name);
      const r = resources(t);
      const [[eigw]] = ofType(t, 'AWS::EC2::EgressOnlyInternetGateway');
      const appSubnets = ofType(t, 'AWS::EC2::Subnet').filter(([id]) => id.includes('app'));
      expect(appSubnets).toHaveLength(2);
      for (const [id] of appSubnets) {
        const table = ofType(t, 'AWS::EC2::SubnetRouteTableAssociation').find(
          ([, a]) => (a.Properties!.SubnetId as { Ref: string }).Ref === id,
        )![1].Properties!.RouteTableId as { Ref: string };
        const routes = ofType(t, 'AWS::EC2::Route').filter(
          ([, x]) => (x.Properties!.RouteTableId as { Ref: string }).Ref === table.Ref,
        );
        // One route, IPv6 to the egress-only gateway: no IPv4 way out, and nothing can connect in.
        expect(routes.map(([, x]) => x.Properties)).toEqual([
          {
            RouteTableId: table,
            DestinationIpv6CidrBlock: '::/0',
            EgressOnlyInternetGatewayId: { 'Fn::GetAtt': [eigw, 'Id'] },
          },
        ]);
      }
      const fns = ofType(t, 'AWS::Lambda::Function').filter(([id]) =>
        /Provisioner(Handler|FleetRunner)[0-9A-F]{8}$/.test(id),
      );
      expect(fns).toHaveLength(2);
      for (const [, fn] of fns) {
        const vpc = fn.Properties!.VpcConfig as {
          Ipv6AllowedForDualStack: boolean;
          SubnetIds: { Ref: string }[];
        };
        expect(vpc.Ipv6AllowedForDualStack).toBe(true);
        expect(vpc.SubnetIds.map((s) => s.Ref).sort()).toEqual(appSubnets.map(([id]) => id).sort());
      }
      const sg = Object.entries(r).find(
        ([id, x]) => x.Type === 'AWS::EC2::SecurityGroup' && id.includes('ProvisionerSecurityGroup'),
      )!;
      expect(sg[1].Properties!.SecurityGroupEgress).toEqual(
        expect.arrayContaining([expect.objectContaining({ CidrIpv6: '::/0' })]),
      );
    }
    // The standard profile's provisioner has no IPv6 way out.
    const std = fleet.template('Tenant-std');
    const [, fn] = ofType(std, 'AWS::Lambda::Function').find(([id]) =>
      /ProvisionerHandler[0-9A-F]{8}$/.test(id),
    )!;
    expect((fn.Properties!.VpcConfig as Record<string, unknown>).Ipv6AllowedForDualStack).toBeUndefined();
  });

  test('idle-friendly: an Aurora PostgreSQL Serverless v2 cluster that pauses at 0 ACU, locked down like the RDS instance', () => {
    const t = fleet.template('Tenant-idle');
    t.resourceCountIs('AWS::RDS::DBCluster', 1);
    const [[clusterId, cluster]] = ofType(t, 'AWS::RDS::DBCluster');
    expect(cluster.DeletionPolicy).toBe('Snapshot');
    expect(cluster.Properties).toMatchObject({
      Engine: 'aurora-postgresql',
      EngineVersion: '17.9',
      ServerlessV2ScalingConfiguration: { MinCapacity: 0, MaxCapacity: 4, SecondsUntilAutoPause: 900 },
      StorageEncrypted: true,
      EnableIAMDatabaseAuthentication: true,
      ManageMasterUserPassword: true,
      DeletionProtection: true,
      EnableCloudwatchLogsExports: ['postgresql'],
      DatabaseName: 'saas',
      BackupRetentionPeriod: 14,
    });
    expect(JSON.stringify(cluster.Properties!.KmsKeyId)).toMatch(/DataKey/);
    const [[, params]] = ofType(t, 'AWS::RDS::DBClusterParameterGroup');
    expect(params.Properties!.Parameters).toMatchObject({
      'rds.force_ssl': '1',
      password_encryption: 'scram-sha-256',
    });
    const [[, writer]] = ofType(t, 'AWS::RDS::DBInstance');
    expect(writer.Properties).toMatchObject({
      DBInstanceClass: 'db.serverless',
      DBClusterIdentifier: { Ref: clusterId },
      PubliclyAccessible: false,
      EnablePerformanceInsights: true,
    });
    // Backed up as a cluster; the API and the provisioner connect to the cluster's writer endpoint.
    t.hasResourceProperties('AWS::Backup::BackupSelection', {
      BackupSelection: {
        Resources: [{ 'Fn::Join': ['', Match.arrayWith([':cluster:', { Ref: clusterId }])] }],
      },
    });
    const taskDef = ofType(t, 'AWS::ECS::TaskDefinition')[0][1];
    expect(JSON.stringify(taskDef.Properties)).toContain(
      JSON.stringify({ 'Fn::GetAtt': [clusterId, 'Endpoint.Address'] }),
    );
    // Health checks never wake the paused database; the first connection after a pause waits for it to resume.
    const env = (
      taskDef.Properties!.ContainerDefinitions as { Environment: { Name: string; Value: string }[] }[]
    )[0].Environment;
    expect(env).toEqual(
      expect.arrayContaining([
        { Name: 'DB_IDLE_PROBES', Value: 'off' },
        { Name: 'DB_CONNECT_TIMEOUT_MS', Value: '30000' },
      ]),
    );
    const stdEnv = JSON.stringify(ofType(fleet.template('Tenant-std'), 'AWS::ECS::TaskDefinition')[0][1]);
    expect(stdEnv).not.toContain('DB_IDLE_PROBES');
    // One small task: the profile trades availability for cost.
    expect(taskDef.Properties).toMatchObject({ Cpu: '256', Memory: '512' });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 1,
      MaxCapacity: 4,
    });
    // The API, the mobility runner (its exports) and the runner's task sign in with IAM to this cluster only, as
    // its runtime role (rds-db:connect on its resource id).
    const connect = ofType(t, 'AWS::IAM::Policy')
      .flatMap(
        ([, p]) =>
          (p.Properties!.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }).Statement,
      )
      .filter((s) => s.Action === 'rds-db:connect');
    expect(connect).toHaveLength(3);
    for (const c of connect) {
      expect(JSON.stringify(c.Resource)).toContain(
        JSON.stringify({ 'Fn::GetAtt': [clusterId, 'DBClusterResourceId'] }),
      );
      expect(JSON.stringify(c.Resource)).toMatch(/\/app_silo"\]\]\}$/);
    }
    // An alarm when the cluster sits at its maximum capacity.
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ServerlessDatabaseCapacity',
      Threshold: 4,
    });
  });

  test('idle-friendly through its life: a disposable cluster goes with its stack, a restored one comes from its own cluster snapshot', () => {
    const disposable = ofType(fleet.template('Tenant-idle-test'), 'AWS::RDS::DBCluster')[0][1];
    expect(disposable.DeletionPolicy).toBe('Delete');
    expect(disposable.Properties!.DeletionProtection).toBe(false);
    const restored = ofType(fleet.template('Tenant-idle-back'), 'AWS::RDS::DBCluster')[0][1];
    expect(restored.Properties!.SnapshotIdentifier).toBe('idle-back-final-20261127100000');
    // The engine version too: a snapshot taken after an automatic minor upgrade cannot go back to 17.9.
    for (const gone of ['DatabaseName', 'MasterUsername', 'KmsKeyId', 'StorageEncrypted', 'EngineVersion'])
      expect(restored.Properties![gone]).toBeUndefined();
    expect(ofType(fleet.template('Tenant-idle'), 'AWS::RDS::DBCluster')[0][1].Properties!.EngineVersion).toBe(
      '17.9',
    );
    // An RDS instance restored from its snapshot takes the snapshot's storage (it may have grown past 50 GB, and
    // RDS cannot restore into less), with room to keep growing.
    const std = ofType(fleet.template('Tenant-std-back'), 'AWS::RDS::DBInstance')[0][1].Properties!;
    expect(std.DBSnapshotIdentifier).toBe('std-back-final-20261127100000');
    expect(std.AllocatedStorage).toBeUndefined();
    expect(std.MaxAllocatedStorage).toBe(1000);
    // The database's subnet group is the data tier alone in every profile.
    for (const name of ['Tenant-std', 'Tenant-prod', 'Tenant-idle']) {
      const [[, group]] = ofType(fleet.template(name), 'AWS::RDS::DBSubnetGroup');
      const refs = (group.Properties!.SubnetIds as { Ref: string }[]).map((x) => x.Ref);
      expect(refs).toHaveLength(2);
      expect(refs.every((r) => r.includes('dataSubnet'))).toBe(true);
    }
  });

  test('offboarding and a failed first deploy: deletion protection is off outside the steady phase', () => {
    for (const phase of ['create', 'retire'] as const) {
      const f = synthFleet(
        PROFILE_TENANTS.filter((x) => x.id === 'idle'),
        { tenantPhase: phase },
      );
      expect(
        ofType(f.template('Tenant-idle'), 'AWS::RDS::DBCluster')[0][1].Properties!.DeletionProtection,
      ).toBe(false);
    }
  });

  test('every taggable resource carries its tenant, model and cost profile, CDK helper resources included', () => {
    const all = ['Tenant-std', 'Tenant-prod', 'Tenant-idle'].map((name) => resources(fleet.template(name)));
    // A type is taggable when some resource of it carries tags; then every resource of it must carry ours
    // (CDK's raw provider resources get none from tag aspects: the fleet adds them).
    const taggable = new Set(
      all.flatMap((r) =>
        Object.values(r)
          .filter((x) => Array.isArray(x.Properties?.Tags))
          .map((x) => x.Type),
      ),
    );
    expect(taggable).toEqual(expect.objectContaining(new Set(['AWS::IAM::Role', 'AWS::Lambda::Function'])));
    const untagged: string[] = [];
    for (const [name, profile] of [
      ['Tenant-std', 'standard'],
      ['Tenant-prod', 'production'],
      ['Tenant-idle', 'idle-friendly'],
    ]) {
      for (const [id, r] of Object.entries(resources(fleet.template(name)))) {
        if (!taggable.has(r.Type)) continue;
        const tags = (r.Properties?.Tags ?? []) as { Key: string; Value: string }[];
        const keys = Object.fromEntries(tags.map((x) => [x.Key, x.Value]));
        if (
          keys['cost-profile'] !== profile ||
          keys['isolation-model'] !== 'silo' ||
          keys['tenant-id'] !== name.slice(7)
        )
          untagged.push(`${name}/${id}`);
      }
    }
    expect(untagged).toEqual([]);
    const std = resources(fleet.template('Tenant-std'));
    expect(
      Object.keys(std).some((id) => id.startsWith('CustomVpcRestrictDefaultSGCustomResourceProviderRole')),
    ).toBe(true);
  });
});

describe('shared cells: only when used, sized by tenant count', () => {
  const rdsOf = (f: ReturnType<typeof synthFleet>, stack: string) =>
    ofType(f.template(stack), 'AWS::RDS::DBInstance')[0][1].Properties!;
  const minTasks = (f: ReturnType<typeof synthFleet>, stack: string) =>
    ofType(f.template(stack), 'AWS::ApplicationAutoScaling::ScalableTarget')[0][1].Properties!.MinCapacity;

  test('a silo-only fleet has neither shared cell; a pool-only fleet has no bridge cell', () => {
    expect(synthFleet(PROFILE_TENANTS.slice(0, 1)).stackNames()).toEqual([
      'Onboarding',
      'Platform',
      'Tenant-std',
    ]);
    const poolOnly = synthFleet(SAMPLE_TENANTS.filter((t) => t.model === 'pool'));
    expect(poolOnly.stackNames()).toEqual(['Onboarding', 'Platform', 'Pool', 'Tenant-acme', 'Tenant-globex']);
    expect(poolOnly.fleet.bridge).toBeUndefined();
  });

  test('the catalog can plan a cell before its first tenant, and size it for the tenants it expects', () => {
    const app = synthFleetWith({ tenants: [], sharedCells: { bridge: { plannedTenants: 500 } } });
    expect(app.stackNames()).toEqual(['Bridge', 'Onboarding', 'Platform']);
    expect(rdsOf(app, 'Bridge')).toMatchObject({
      DBInstanceClass: 'db.r6g.xlarge',
      AllocatedStorage: '50',
      MaxAllocatedStorage: 200,
      MultiAZ: true,
    });
    expect(minTasks(app, 'Bridge')).toBe(2);
  });

  test('the size comes from the plan alone (two catalogs of one fleet build the same cell); listing more warns', () => {
    const many = Array.from({ length: 120 }, (_, i) => ({ id: `pool-${i}`, name: `P${i}`, model: 'pool' }));
    // 120 pool tenants listed, no plan: the default size, and a warning naming the fix.
    const unplanned = synthFleetWith({ tenants: many });
    expect(rdsOf(unplanned, 'Pool')).toMatchObject({
      DBInstanceClass: 'db.t4g.medium',
      AllocatedStorage: '50',
    });
    const warnings = unplanned.app.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data)));
    expect(warnings).toContainEqual(
      expect.stringContaining(
        'lists 120 pool tenants but plans the Pool cell for the default size (up to 100): set "sharedCells": { "pool": { "plannedTenants": 120 } }',
      ),
    );
    // Planned for 1,200: the rule's size, whether the catalog lists 3 tenants or all 120, and for -c tenant=.
    const plan = { pool: { plannedTenants: 1200 } };
    for (const f of [
      synthFleetWith({ tenants: many.slice(0, 3), sharedCells: plan }),
      synthFleetWith({ tenants: many, sharedCells: plan }, { onlyTenant: 'pool-7' }),
    ]) {
      expect(rdsOf(f, 'Pool')).toMatchObject({
        DBInstanceClass: cellSizeFor('pool', 1200).instanceClass,
        // Storage starts at 50 GB (RDS never shrinks it) and autoscales up to twice the rule's 240 GB.
        AllocatedStorage: '50',
        MaxAllocatedStorage: 480,
      });
      expect(minTasks(f, 'Pool')).toBe(5);
    }
    expect(cellSizeFor('pool', 1200).instanceClass).toBe('db.m6g.xlarge');
  });

  test('a bad sharedCells entry is refused naming the field and the fix', () => {
    const problems = (sharedCells: unknown) => {
      try {
        parseCatalog({ tenants: [], sharedCells }, 'c.json');
        return [];
      } catch (e) {
        return (e as CatalogError).messages;
      }
    };
    expect(problems({ silo: {} })).toEqual([
      'unknown field "sharedCells.silo": shared cells are "pool" and "bridge" (a silo tenant has a cell of its own)',
    ]);
    expect(problems({ pool: { plannedTenants: -1 } })[0]).toMatch(
      /field "sharedCells.pool" is \{"plannedTenants":-1\}: use \{ "plannedTenants": <a whole number from 0 to 100000> \}/,
    );
    expect(problems({ pool: { tenants: 3 } })).toHaveLength(1);
    expect(problems({ pool: { plannedTenants: 1000, profile: 'cheap' } })).toEqual([
      'field "sharedCells.pool.profile" is "cheap": use one of "standard", "production" (the default is "standard"; the README\'s "Shared cell profiles" compares them)',
    ]);
    expect(problems({ bridge: { profile: 'idle-friendly' } })[0]).toMatch(
      /use one of "standard", "production"/,
    );
    // Both at once.
    expect(problems({ pool: { plannedTenants: -1, profile: 'cheap' } }).map((m) => m.split(':')[0])).toEqual([
      'field "sharedCells.pool" is {"plannedTenants"',
      'field "sharedCells.pool.profile" is "cheap"',
    ]);
    expect(problems([])).toEqual([
      'field "sharedCells" must be an object such as { "pool": { "plannedTenants": 300 } }',
    ]);
  });
});

function synthFleetWith(doc: { tenants: unknown[]; sharedCells?: unknown }, options: FleetOptions = {}) {
  return synthFleet(doc.tenants, { ...options, sharedCells: doc.sharedCells });
}

describe('shared cell profiles: production has no NAT gateway and, for pool, a burstable database', () => {
  const many = Array.from({ length: 3 }, (_, i) => ({ id: `pool-${i}`, name: `P${i}`, model: 'pool' }));
  const plan = (profile?: string) => ({
    pool: { plannedTenants: 1000, ...(profile ? { profile } : {}) },
    bridge: { plannedTenants: 1000, ...(profile ? { profile } : {}) },
  });
  let standard: ReturnType<typeof synthFleet>;
  let production: ReturnType<typeof synthFleet>;
  beforeAll(() => {
    // Compliance packs and lifecycle checks run in these synths: they throw on any unacknowledged finding.
    standard = synthFleet(many, { sharedCells: plan() });
    production = synthFleet(many, { sharedCells: plan('production') });
  });

  test('the rule: production keeps the pool database burstable up to 1,000 tenants; bridge classes and tasks are the same', () => {
    expect(cellSizeFor('pool', 1000)).toMatchObject({ instanceClass: 'db.m6g.large', egress: 'nat-per-az' });
    expect(cellSizeFor('pool', 1000, 'production')).toMatchObject({
      instanceClass: 'db.t4g.large',
      tasks: 4,
      egress: 'task-public-ip',
    });
    expect(cellSizeFor('pool', 1001, 'production').instanceClass).toBe('db.m6g.xlarge');
    expect(cellSizeFor('pool', 50, 'production').instanceClass).toBe('db.t4g.medium');
    for (const n of [10, 300, 1000, 5000]) {
      expect({ ...cellSizeFor('bridge', n, 'production'), egress: 'nat-per-az' }).toEqual(
        cellSizeFor('bridge', n),
      );
    }
  });

  test.each(['Pool', 'Bridge'])(
    '%s: no NAT gateway; tasks with public addresses in the public tier, reachable only from the load balancer',
    (stack) => {
      const t = production.template(stack);
      t.resourceCountIs('AWS::EC2::NatGateway', 0);
      t.resourceCountIs('AWS::EC2::EIP', 0);
      t.resourceCountIs('AWS::EC2::EgressOnlyInternetGateway', 1);
      const net = expectPublicTasksBehindTheLoadBalancer(t);
      // The mobility runner's task (started by its launcher) runs in the public tier too, with a public address and
      // a security group that admits nothing; the provisioner's function goes out over IPv6 and says so to its
      // AWS clients (test/lambda/ipv6-egress-clients.test.ts).
      const [[, launcher]] = ofType(t, 'AWS::Lambda::Function').filter(([id]) =>
        id.startsWith('CellMobilityLauncher'),
      );
      const launcherEnv = (launcher.Properties!.Environment as { Variables: Record<string, unknown> })
        .Variables;
      expect(launcherEnv.RUNNER_TASK_PUBLIC_IP).toBe('true');
      const runnerSgId = (launcherEnv.RUNNER_TASK_SECURITY_GROUPS as { 'Fn::GetAtt': [string, string] })[
        'Fn::GetAtt'
      ][0];
      expect(resources(t)[runnerSgId].Type).toBe('AWS::EC2::SecurityGroup');
      expect(resources(t)[runnerSgId].Properties!.SecurityGroupIngress ?? []).toEqual([]);
      expect(
        ofType(t, 'AWS::EC2::SecurityGroupIngress').filter(([, r]) =>
          JSON.stringify(r.Properties!.GroupId).includes(runnerSgId),
        ),
      ).toEqual([]);
      const dualStack = ofType(t, 'AWS::Lambda::Function').filter(
        ([, f]) =>
          (f.Properties!.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables
            ?.S3_DUALSTACK === 'true',
      );
      expect(dualStack.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(
        ['CellMobilityRunner', 'CellProvisionerHandler'].sort(),
      );
      // Its cost-allocation tag names the profile (a standard cell's stays `shared-cell`).
      const costProfile = (f: ReturnType<typeof synthFleet>) =>
        (
          ofType(f.template(stack), 'AWS::EC2::VPC')[0][1].Properties!.Tags as {
            Key: string;
            Value: string;
          }[]
        ).find((x) => x.Key === 'cost-profile')?.Value;
      expect(costProfile(production)).toBe('shared-cell-production');
      expect(costProfile(standard)).toBe('shared-cell');
      // Still highly available: a Multi-AZ database, and tasks in two AZs.
      expect(ofType(t, 'AWS::RDS::DBInstance')[0][1].Properties!.MultiAZ).toBe(true);
      expect((net.Subnets as unknown[]).length).toBe(2);
      const standardService = ofType(standard.template(stack), 'AWS::ECS::Service')[0][1].Properties!;
      expect(
        (standardService.NetworkConfiguration as { AwsvpcConfiguration: Record<string, unknown> })
          .AwsvpcConfiguration.AssignPublicIp,
      ).toBe('DISABLED');
      standard.template(stack).resourceCountIs('AWS::EC2::NatGateway', 2);
    },
  );

  test('the pool database: db.t4g.large for 1,000 tenants in production, db.m6g.large in standard', () => {
    expect(ofType(production.template('Pool'), 'AWS::RDS::DBInstance')[0][1].Properties).toMatchObject({
      DBInstanceClass: 'db.t4g.large',
      MultiAZ: true,
    });
    expect(ofType(standard.template('Pool'), 'AWS::RDS::DBInstance')[0][1].Properties!.DBInstanceClass).toBe(
      'db.m6g.large',
    );
    expect(
      ofType(production.template('Bridge'), 'AWS::RDS::DBInstance')[0][1].Properties!.DBInstanceClass,
    ).toBe('db.r6g.xlarge');
    // A burstable class bills CPU above its baseline: sustained load past half its CPU raises the cell's alarm.
    const cpuAlarms = (f: ReturnType<typeof synthFleet>) =>
      ofType(f.template('Pool'), 'AWS::CloudWatch::Alarm').filter(
        ([, a]) => a.Properties!.MetricName === 'CPUUtilization',
      );
    const [[, alarm]] = cpuAlarms(production);
    expect(alarm.Properties).toMatchObject({
      Namespace: 'AWS/RDS',
      Statistic: 'Average',
      Period: 3600,
      EvaluationPeriods: 3,
      Threshold: 50,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [{ Ref: expect.stringMatching(/^CellAlarms/) }],
    });
    expect(String(alarm.Properties!.AlarmDescription)).toMatch(
      /or the standard cell profile; a silo: settings.instanceClass/,
    );
    expect(cpuAlarms(standard)).toEqual([]);
  });

  test.each(['Pool', 'Bridge'])(
    '%s: switching a deployed cell between the profiles replaces no resource that outlives the change',
    (stack) => {
      // What CloudFormation replaces on an update: a resource whose create-only properties (its registry
      // schema, as cfn-lint ships it) change. Going to production adds the VPC's IPv6 block and the subnets'
      // (updated in place), removes the NAT gateways, and moves the tasks (a rolling deployment).
      const before = resources(standard.template(stack));
      const after = resources(production.template(stack));
      const replaced = replacedOnUpdate(before, after);
      // A task definition is replaced on any change by design (a new revision; running tasks keep theirs): the
      // mobility runner's moves to the public tier with its environment.
      expect(replaced).toEqual(['CellMobilityTaskD0C93FC1.ContainerDefinitions']);
      expect(before.CellMobilityTaskD0C93FC1.Type).toBe('AWS::ECS::TaskDefinition');
      // The database, its subnets and its key keep their logical ids (so they are updated, not re-created).
      for (const type of [
        'AWS::RDS::DBInstance',
        'AWS::RDS::DBSubnetGroup',
        'AWS::KMS::Key',
        'AWS::EC2::VPC',
      ]) {
        const ids = (r: Resources) =>
          Object.entries(r)
            .filter(([, x]) => x.Type === type)
            .map(([id]) => id);
        expect(ids(after)).toEqual(ids(before));
        expect(ids(before).length).toBeGreaterThan(0);
      }
    },
  );
});

/** Logical ids (with the property) of resources in both templates whose create-only properties differ. */
function replacedOnUpdate(before: Resources, after: Resources): string[] {
  const types = [...new Set(Object.values(after).map((r) => r.Type))].filter(
    (t) => !t.startsWith('Custom::'),
  );
  const createOnly = JSON.parse(
    execFileSync(
      'python3',
      [
        '-c',
        [
          'import json, sys',
          'from cfnlint.schema import PROVIDER_SCHEMA_MANAGER as P',
          'out = {}',
          'for t in json.loads(sys.argv[1]):',
          '    try: s = P.get_resource_schema("us-east-1", t).schema',
          '    except Exception: out[t] = None; continue',
          '    out[t] = [p.split("/")[2] for p in s.get("createOnlyProperties", [])]',
          'print(json.dumps(out))',
        ].join('\n'),
        JSON.stringify(types),
      ],
      { encoding: 'utf8' },
    ),
  ) as Record<string, string[] | null>;
  // A type the schemas lack would be skipped silently: refuse it instead.
  const unknown = Object.entries(createOnly).filter(([, v]) => v === null);
  if (unknown.length) throw new Error(`no resource schema for ${unknown.map(([t]) => t).join(', ')}`);
  const out: string[] = [];
  for (const [id, a] of Object.entries(after)) {
    const b = before[id];
    if (!b || b.Type !== a.Type) continue;
    for (const prop of createOnly[a.Type] ?? []) {
      if (JSON.stringify(b.Properties?.[prop]) !== JSON.stringify(a.Properties?.[prop]))
        out.push(`${id}.${prop}`);
    }
  }
  return out;
}

/**
 * A cell without NAT gateways: its API tasks in the public subnets with public addresses, their security group's
 * only ingress the load balancer's (on the container port); no subnet hands out IPv4 public addresses (the service
 * asks for its tasks'), and only the provisioner's tier hands out IPv6 ones (its only route out is the egress-only
 * gateway). Returns the service's network configuration.
 */
function expectPublicTasksBehindTheLoadBalancer(t: Template): Record<string, unknown> {
  const [[, service]] = ofType(t, 'AWS::ECS::Service');
  const net = (service.Properties!.NetworkConfiguration as { AwsvpcConfiguration: Record<string, unknown> })
    .AwsvpcConfiguration;
  expect(net.AssignPublicIp).toBe('ENABLED');
  const publicSubnets = ofType(t, 'AWS::EC2::Subnet')
    .filter(([id]) => id.includes('public'))
    .map(([id]) => ({ Ref: id }));
  expect(net.Subnets).toEqual(publicSubnets);
  const taskSg = (net.SecurityGroups as { 'Fn::GetAtt': [string, string] }[])[0]['Fn::GetAtt'][0];
  const ingress = ofType(t, 'AWS::EC2::SecurityGroupIngress').filter(([, r]) =>
    JSON.stringify(r.Properties!.GroupId).includes(taskSg),
  );
  expect(ingress).toHaveLength(1);
  expect(JSON.stringify(ingress[0][1].Properties!.SourceSecurityGroupId)).toMatch(
    /LoadBalancerSecurityGroup/,
  );
  expect(ingress[0][1].Properties).toMatchObject({ FromPort: 8080, ToPort: 8080, IpProtocol: 'tcp' });
  expect(JSON.stringify(resources(t)[taskSg].Properties!.SecurityGroupIngress ?? [])).toBe('[]');
  for (const [id, subnet] of ofType(t, 'AWS::EC2::Subnet')) {
    expect(subnet.Properties!.AssignIpv6AddressOnCreation).toBe(id.includes('app'));
    expect(subnet.Properties!.MapPublicIpOnLaunch).not.toBe(true);
  }
  return net;
}
