import { Match, Template } from 'aws-cdk-lib/assertions';
import { SAMPLE_TENANTS, synthFleet, SynthesizedFleet } from './fleet-helpers';
import { tenantMark } from '../../contracts';
import { runtimeSlotsFor } from '../../lib/cell-size';

let fleet: SynthesizedFleet;
beforeAll(() => {
  fleet = synthFleet();
});

type Resources = Record<
  string,
  { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string }
>;
const resourcesOf = (t: Template) => t.toJSON().Resources as Resources;
const ofType = (t: Template, type: string) =>
  Object.entries(resourcesOf(t)).filter(([, r]) => r.Type === type);
const ref = (v: unknown) => JSON.stringify(v);

describe('fleet layout', () => {
  test('synthesizes the shared stacks and exactly one stack per tenant', () => {
    expect(fleet.stackNames()).toEqual(
      ['Bridge', 'Onboarding', 'Platform', 'Pool', ...SAMPLE_TENANTS.map((t) => `Tenant-${t.id}`)].sort(),
    );
  });

  test('-c tenant=<id> builds the shared stacks and that tenant only', () => {
    const one = synthFleet(SAMPLE_TENANTS, { onlyTenant: 'umbrella' });
    expect(one.stackNames()).toEqual(['Bridge', 'Onboarding', 'Platform', 'Pool', 'Tenant-umbrella']);
  });

  test('rejects -c tenant=<id> for a tenant the catalog does not have', () => {
    expect(() => synthFleet(SAMPLE_TENANTS, { onlyTenant: 'nobody' })).toThrow(
      `-c tenant=nobody: no tenant with that id in test catalog: add it to the catalog or pass one of its ids (${SAMPLE_TENANTS.map((t) => t.id).join(', ')})`,
    );
  });

  test('stacks share values through SSM parameters, never CloudFormation exports', () => {
    for (const name of fleet.stackNames()) {
      const json = JSON.stringify(fleet.template(name).toJSON());
      expect(json).not.toContain('Fn::ImportValue');
      expect(fleet.template(name).toJSON().Outputs ?? {}).not.toEqual(
        expect.objectContaining({ Export: expect.anything() }),
      );
    }
  });

  test('every tenant resource carries tenant-id and isolation-model tags for cost allocation', () => {
    const t = fleet.template('Tenant-northwind');
    for (const type of ['AWS::RDS::DBInstance', 'AWS::EC2::VPC', 'AWS::KMS::Key', 'AWS::ECS::Cluster']) {
      t.hasResourceProperties(type, {
        Tags: Match.arrayWith([
          { Key: 'isolation-model', Value: 'silo' },
          { Key: 'tenant-id', Value: 'northwind' },
        ]),
      });
    }
    fleet.template('Pool').hasResourceProperties('AWS::RDS::DBInstance', {
      Tags: Match.arrayWith([{ Key: 'isolation-model', Value: 'pool' }]),
    });
  });
});

describe('silo isolation', () => {
  test.each(['northwind', 'initech-qa'])(
    'silo tenant %s has its own database encrypted with its own KMS key',
    (id) => {
      const t = fleet.template(`Tenant-${id}`);
      const keys = ofType(t, 'AWS::KMS::Key');
      const dbs = ofType(t, 'AWS::RDS::DBInstance');
      expect(keys).toHaveLength(1);
      expect(dbs).toHaveLength(1);
      const [keyId] = keys[0];
      const db = dbs[0][1].Properties!;
      expect(db.KmsKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
      expect(db.MasterUserSecret).toEqual({ KmsKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } });
      expect(db.PerformanceInsightsKMSKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
      t.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
      t.resourceCountIs('AWS::EC2::VPC', 1);
      t.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL' });
      t.resourceCountIs('AWS::ECS::Service', 1);
    },
  );

  test('silo database accepts PostgreSQL connections only from its own API service, provisioner and mobility runner', () => {
    for (const name of ['Tenant-northwind', 'Tenant-initech-qa', 'Pool', 'Bridge']) {
      const t = fleet.template(name);
      const res = resourcesOf(t);
      const [dbSgId] = ofType(t, 'AWS::EC2::SecurityGroup').find(([id]) =>
        id.includes('DatabaseSecurityGroup'),
      )!;
      expect(res[dbSgId].Properties!.SecurityGroupIngress).toBeUndefined();
      const rules = ofType(t, 'AWS::EC2::SecurityGroupIngress').filter(
        ([, r]) => ref(r.Properties!.GroupId) === ref({ 'Fn::GetAtt': [dbSgId, 'GroupId'] }),
      );
      const sources = rules.map(
        ([, r]) => (r.Properties!.SourceSecurityGroupId as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0],
      );
      expect(sources.sort()).toEqual([
        expect.stringMatching(/^CellApiTaskSecurityGroup/),
        expect.stringMatching(/^CellMobilitySecurityGroup/),
        expect.stringMatching(/^CellProvisionerSecurityGroup/),
      ]);
      for (const [, r] of rules) {
        expect(r.Properties).toMatchObject({ IpProtocol: 'tcp', FromPort: 5432, ToPort: 5432 });
        expect(r.Properties!.CidrIp).toBeUndefined();
      }
      // And no egress from the database at all.
      expect(res[dbSgId].Properties!.SecurityGroupEgress).toEqual([
        expect.objectContaining({ CidrIp: '255.255.255.255/32', Description: 'Disallow all traffic' }),
      ]);
    }
  });

  test('no security group admits 0.0.0.0/0 except the load balancer on 443 and the 80 redirect', () => {
    for (const name of fleet.stackNames()) {
      const t = fleet.template(name);
      const open: string[] = [];
      for (const [id, r] of Object.entries(resourcesOf(t))) {
        const rules =
          r.Type === 'AWS::EC2::SecurityGroup'
            ? ((r.Properties!.SecurityGroupIngress as Record<string, unknown>[]) ?? [])
            : r.Type === 'AWS::EC2::SecurityGroupIngress'
              ? [r.Properties!]
              : [];
        for (const rule of rules) {
          if (rule.CidrIp === '0.0.0.0/0' || rule.CidrIpv6 === '::/0') open.push(`${id}:${rule.FromPort}`);
        }
      }
      const expected = t.toJSON().Resources && ofType(t, 'AWS::ElasticLoadBalancingV2::LoadBalancer').length;
      expect(open.sort()).toEqual(
        expected
          ? [
              expect.stringMatching(/^CellApiLoadBalancerSecurityGroup.*:443$/),
              expect.stringMatching(/^CellApiLoadBalancerSecurityGroup.*:80$/),
            ].sort()
          : [],
      );
    }
  });

  test('the load balancer serves HTTPS only: port 80 answers with a redirect', () => {
    const t = fleet.template('Tenant-northwind');
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: Match.anyValue() }],
    });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      DefaultActions: [
        { Type: 'redirect', RedirectConfig: Match.objectLike({ Protocol: 'HTTPS', Port: '443' }) },
      ],
    });
    t.hasResourceProperties('AWS::WAFv2::WebACLAssociation', {});
  });

  test('a non-disposable database is encrypted, TLS-only, private, deletion-protected and snapshotted on delete', () => {
    for (const name of ['Tenant-northwind', 'Pool', 'Bridge']) {
      const t = fleet.template(name);
      t.hasResource('AWS::RDS::DBInstance', {
        DeletionPolicy: 'Snapshot',
        UpdateReplacePolicy: 'Snapshot',
        Properties: Match.objectLike({
          StorageEncrypted: true,
          PubliclyAccessible: false,
          DeletionProtection: true,
          EnableIAMDatabaseAuthentication: true,
          ManageMasterUserPassword: true,
          MultiAZ: true,
          EnableCloudwatchLogsExports: ['postgresql', 'upgrade'],
          BackupRetentionPeriod: name === 'Tenant-northwind' ? 35 : 14,
        }),
      });
      t.hasResourceProperties('AWS::RDS::DBParameterGroup', {
        Parameters: Match.objectLike({ 'rds.force_ssl': '1', password_encryption: 'scram-sha-256' }),
      });
      t.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Retain' });
      t.hasResourceProperties('AWS::Backup::BackupSelection', {});
    }
  });

  test('a disposable tenant is deleted with its stack, with backups still kept for at least 7 days', () => {
    const t = fleet.template('Tenant-initech-qa');
    t.hasResource('AWS::RDS::DBInstance', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({
        DeletionProtection: false,
        StorageEncrypted: true,
        PubliclyAccessible: false,
        BackupRetentionPeriod: 7,
      }),
    });
    t.resourceCountIs('AWS::Backup::BackupPlan', 0);
  });
});

describe('pool and bridge tenants', () => {
  test.each([
    ['acme', 'pool', 'Custom::PoolTenant'],
    ['umbrella', 'bridge', 'Custom::BridgeTenant'],
  ])(
    'tenant %s holds only its custom resource, which calls the %s provisioner found in SSM',
    (id, model, type) => {
      const t = fleet.template(`Tenant-${id}`);
      const res = resourcesOf(t);
      expect(Object.values(res).map((r) => r.Type)).toEqual([type]);
      const [, tenant] = Object.entries(res)[0];
      expect(tenant.Properties).toMatchObject({ TenantId: id, Model: model, DeletionPolicy: 'retain' });
      const tokenParam = (tenant.Properties!.ServiceToken as { Ref: string }).Ref;
      expect(t.toJSON().Parameters[tokenParam]).toEqual({
        Type: 'AWS::SSM::Parameter::Value<String>',
        Default: `/tenantforge/${model}/provisioner-service-token`,
      });
    },
  );

  test.each(['Pool', 'Bridge'])(
    'the %s provisioner runs in the database VPC and publishes its service token',
    (name) => {
      const t = fleet.template(name);
      const model = name.toLowerCase();
      t.hasResourceProperties('AWS::SSM::Parameter', {
        Name: `/tenantforge/${model}/provisioner-service-token`,
      });
      t.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'nodejs24.x',
        VpcConfig: Match.objectLike({ SecurityGroupIds: [Match.anyValue()] }),
        Environment: {
          Variables: Match.objectLike({ MODEL: model, NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem' }),
        },
      });
      t.hasResourceProperties('Custom::DatabaseBootstrap', { Model: model });
    },
  );

  test('a silo API serves its own tenant only', () => {
    fleet.template('Tenant-northwind').hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: 'MODEL', Value: 'silo' },
            { Name: 'DB_USER', Value: 'app_silo' },
            { Name: 'SILO_TENANT_ID', Value: 'northwind' },
          ]),
        }),
      ],
    });
  });

  test('the API service signs in to PostgreSQL as its runtime role with IAM, never with the master secret', () => {
    const t = fleet.template('Pool');
    t.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: 'DB_USER', Value: 'app_pool' },
            { Name: 'DB_AUTH', Value: 'iam' },
          ]),
          ReadonlyRootFilesystem: true,
        }),
      ],
    });
    expect(JSON.stringify(t.toJSON())).toContain(':dbuser:');
    // The API's task definition (the runner task, the mobility runner's code, restores as the master user as its
    // function does).
    const taskDefs = ofType(t, 'AWS::ECS::TaskDefinition').filter(([id]) => id.includes('ApiTask'));
    expect(taskDefs).toHaveLength(1);
    expect(JSON.stringify(taskDefs)).not.toContain('MasterUserSecret');
  });

  test.each([
    ['Pool', 'app_pool'],
    ['Bridge', 'app_bridge'],
    ['Tenant-northwind', 'app_silo'],
  ])(
    "%s: every connection signs in as a login role of its own (the shared cells' slot roles, I8), as many as the bootstrap makes",
    (stack, runtimeRole) => {
      const t = fleet.template(stack);
      const shared = runtimeRole !== 'app_silo';
      // Who may sign in as whom: the API's task role, the runner's function and task roles, and nobody else.
      const connects = [...ofType(t, 'AWS::IAM::Policy'), ...ofType(t, 'AWS::IAM::ManagedPolicy')].flatMap(
        ([, p]) =>
          (
            (p.Properties!.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] })
              .Statement ?? []
          )
            .filter((st) => st.Action === 'rds-db:connect')
            .map((st) => JSON.stringify(st.Resource)),
      );
      const users = connects.flatMap((c) => [...c.matchAll(/\/(app_[a-z]+(?:_s\*)?)"/g)].map((m) => m[1]));
      // The API's task role, the runner's function and task roles; in a shared cell, the API's also as the runtime
      // role itself, for the release that brings slot roles (the earlier release's tasks sign in as it).
      expect(users.sort()).toEqual(
        shared
          ? [runtimeRole, `${runtimeRole}_s*`, `${runtimeRole}_s*`, `${runtimeRole}_s*`]
          : [runtimeRole, runtimeRole, runtimeRole],
      );
      const slots = ofType(t, 'Custom::DatabaseBootstrap')[0][1].Properties!.RuntimeSlots;
      const env = (name: string) =>
        JSON.stringify(t.toJSON()).match(
          new RegExp(`"(?:Name":"${name}","Value":"|${name}":")([0-9]+)"`),
        )?.[1];
      if (shared) {
        // Twice what the API opens at its largest (4x its 2 tasks, 20 connections each, twice over while a
        // deployment runs old and new tasks), and 16 for the runner.
        expect(slots).toBe(String(runtimeSlotsFor(2)));
        expect(slots).toBe('656');
        expect(env('DB_SLOTS')).toBe(slots);
        expect(env('RUNTIME_DB_SLOTS')).toBe(slots);
      } else {
        expect([slots, env('DB_SLOTS'), env('RUNTIME_DB_SLOTS')]).toEqual([undefined, undefined, undefined]);
      }
    },
  );
});

describe('platform', () => {
  test('the tenant id attribute is immutable and no app client can write it', () => {
    const t = fleet.template('Platform');
    t.hasResourceProperties('AWS::Cognito::UserPool', {
      Schema: Match.arrayWith([
        Match.objectLike({ Name: 'tenant_id', Mutable: false, AttributeDataType: 'String' }),
      ]),
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      MfaConfiguration: 'ON',
    });
    const clients = ofType(t, 'AWS::Cognito::UserPoolClient');
    expect(clients.length).toBeGreaterThan(0);
    for (const [, c] of clients) {
      // Cognito's default when WriteAttributes is absent is "all writable attributes": it must always be explicit.
      expect(c.Properties!.WriteAttributes).toBeDefined();
      expect(c.Properties!.WriteAttributes).not.toContain('custom:tenant_id');
      expect(c.Properties!.ReadAttributes).toContain('custom:tenant_id');
    }
  });

  test('the tenant registry is encrypted with a customer key, recoverable to any point and retained', () => {
    fleet.template('Platform').hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        KeySchema: [{ AttributeName: 'tenantId', KeyType: 'HASH' }],
        SSESpecification: Match.objectLike({ SSEEnabled: true, SSEType: 'KMS' }),
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
      }),
    });
  });
});

describe('tenant mobility runner (npm run tenant -- export|restore --aws)', () => {
  type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
  const statementsOf = (t: Template) =>
    [...ofType(t, 'AWS::IAM::ManagedPolicy'), ...ofType(t, 'AWS::IAM::Policy')].flatMap(([id, p]) =>
      (p.Properties!.PolicyDocument as { Statement: Statement[] }).Statement.map((s) => ({ id, ...s })),
    );
  const actions = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
  const bucketOf = (t: Template) =>
    ofType(t, 'AWS::S3::Bucket').find(([id]) => id.includes('MobilityArchives'))!;

  test.each([
    ['Pool', '*'],
    ['Bridge', '*'],
    ['Tenant-northwind', 'northwind'],
  ])(
    "%s: its own bucket with the cell's key, kept on delete; only the runner may read or write archives, under %s",
    (stack, prefix) => {
      const t = fleet.template(stack);
      const [bucketId, bucket] = bucketOf(t);
      const [keyId] = ofType(t, 'AWS::KMS::Key')[0];
      // Kept when the stack is deleted, not when its own creation rolls back.
      expect(bucket.DeletionPolicy).toBe('RetainExceptOnCreate');
      expect((bucket as { UpdateReplacePolicy?: string }).UpdateReplacePolicy).toBe('Retain');
      expect(bucket.Properties).toMatchObject({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            {
              BucketKeyEnabled: true,
              ServerSideEncryptionByDefault: {
                SSEAlgorithm: 'aws:kms',
                KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] },
              },
            },
          ],
        },
        VersioningConfiguration: { Status: 'Enabled' },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        LoggingConfiguration: { LogFilePrefix: 's3/tenant-archives/' },
      });
      const archiveKey = ofType(t, 'AWS::SecretsManager::Secret').find(([id]) =>
        id.includes('MobilityArchiveKey'),
      )!;
      expect(archiveKey[1].DeletionPolicy).toBe('RetainExceptOnCreate');
      // Reads and writes of the bucket's objects: the runner's statement only, scoped to the tenant prefix; no
      // statement anywhere in the stack reads S3 objects on every resource.
      const reads = (s: Statement) =>
        actions(s).some((a) => /^s3:(\*|Get\*|GetObject.*|PutObject.*)$/.test(a));
      const onArchives = statementsOf(t).filter(
        (s) =>
          reads(s) && (JSON.stringify(s.Resource).includes(bucketId) || JSON.stringify(s.Resource) === '"*"'),
      );
      const [runnerPolicy] = ofType(t, 'AWS::IAM::ManagedPolicy').find(([id]) =>
        id.includes('MobilityPolicy'),
      )!;
      const policyOf = (fragment: string) =>
        ofType(t, 'AWS::IAM::ManagedPolicy').find(([id]) => id.includes(fragment))![0];
      const at = (path: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, path]] });
      // The runner's data (its function's and its task's alike): the tenants' archives. The hand-over between the
      // function and its task (the step's token and link go through the bucket only): each side writes only its own
      // prefix, the function the steps it hands over, the task the outcomes it leaves for an operator's poll.
      expect(
        onArchives.map((s) => ({ policy: s.id, sid: s.Sid, actions: actions(s), resource: s.Resource })),
      ).toEqual([
        {
          policy: runnerPolicy,
          sid: 'TenantArchives',
          actions: ['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject'],
          resource: at(`/tenants/${prefix}/*`),
        },
        {
          policy: policyOf('MobilityFunctionPolicy'),
          sid: 'HandStepsToRunnerTask',
          actions: ['s3:DeleteObjectVersion', 's3:PutObject'],
          resource: at('/runner-events/in/*'),
        },
        {
          policy: policyOf('MobilityFunctionPolicy'),
          sid: 'ReadRunnerTaskOutcomes',
          actions: ['s3:GetObject'],
          resource: at('/runner-events/out/*'),
        },
        {
          policy: policyOf('MobilityTaskPolicy'),
          sid: 'TakeHandedSteps',
          actions: ['s3:DeleteObjectVersion', 's3:GetObject'],
          resource: at('/runner-events/in/*'),
        },
        {
          policy: policyOf('MobilityTaskPolicy'),
          sid: 'LeaveOutcomes',
          actions: ['s3:PutObject'],
          resource: at('/runner-events/out/*'),
        },
      ]);
      // And the bucket itself refuses every other principal's reads and writes, whatever their IAM says.
      const [, bucketPolicy] = ofType(t, 'AWS::S3::BucketPolicy').find(
        ([, p]) => ref(p.Properties!.Bucket) === ref({ Ref: bucketId }),
      )!;
      const [runnerRoleId] = ofType(t, 'AWS::IAM::Role').find(([id]) => id.includes('MobilityRole'))!;
      expect(
        (bucketPolicy.Properties!.PolicyDocument as { Statement: Statement[] }).Statement,
      ).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: [
            's3:GetObject',
            's3:GetObjectVersion',
            's3:GetObjectVersionForReplication',
            's3:PutObject',
          ],
          Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, '/*']] },
          // The runner's role and its task's (the same work), no other.
          Condition: {
            ArnNotEquals: {
              'aws:PrincipalArn': [
                { 'Fn::GetAtt': [runnerRoleId, 'Arn'] },
                {
                  'Fn::GetAtt': [
                    ofType(t, 'AWS::IAM::Role').find(([id]) => id.includes('MobilityTaskRole'))![0],
                    'Arn',
                  ],
                },
              ],
            },
          },
        }),
      );
      // ... and stays with it when the stack is deleted.
      expect((bucketPolicy as { DeletionPolicy?: string }).DeletionPolicy).toBe('RetainExceptOnCreate');
      // The provisioner may only delete a destroyed tenant's archives (list them under the prefix, delete them).
      const destroy = statementsOf(t).filter((s) => s.id.includes('MobilityDestroyPolicy'));
      expect(destroy.flatMap(actions).sort()).toEqual([
        's3:DeleteObject',
        's3:DeleteObjectVersion',
        's3:ListBucketVersions',
      ]);
      expect(destroy.find((s) => actions(s).includes('s3:ListBucketVersions'))!.Condition).toEqual({
        StringLike: { 's3:prefix': [`tenants/${prefix}/`] },
      });
      expect(destroy.find((s) => actions(s).includes('s3:DeleteObject'))!.Resource).toEqual({
        'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, `/tenants/${prefix}/*`]],
      });
      // The runner task: a role of its own (the bucket admits it and the runner's, no other), holding the runner's
      // data policy and nothing that starts tasks; started only by the cell's launcher (RunTask on the runner task
      // definition in the cell's cluster, passing only the task's two roles to ECS), which the runner may invoke.
      const [taskRoleId, taskRoleDef] = ofType(t, 'AWS::IAM::Role').find(([id]) =>
        id.includes('MobilityTaskRole'),
      )!;
      expect(
        (taskRoleDef.Properties!.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement,
      ).toEqual([
        expect.objectContaining({
          Principal: { Service: 'ecs-tasks.amazonaws.com' },
          Condition: {
            StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
            ArnLike: { 'aws:SourceArn': expect.anything() },
          },
        }),
      ]);
      const [runnerRoleArnId, runnerRoleDef] = ofType(t, 'AWS::IAM::Role').find(
        ([id]) => id.includes('MobilityRole') && !id.includes('TaskRole'),
      )!;
      expect(
        (runnerRoleDef.Properties!.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement,
      ).toEqual([expect.objectContaining({ Principal: { Service: 'lambda.amazonaws.com' } })]);
      const rolesOf = (policyId: string) =>
        JSON.stringify(
          ofType(t, 'AWS::IAM::ManagedPolicy').find(([id]) => id === policyId)![1].Properties!.Roles,
        );
      expect(rolesOf(runnerPolicy)).toBe(JSON.stringify([{ Ref: runnerRoleArnId }, { Ref: taskRoleId }]));
      const [runnerTaskId, runnerTask] = ofType(t, 'AWS::ECS::TaskDefinition').find(([id]) =>
        id.includes('MobilityTask'),
      )!;
      expect(runnerTask.Properties).toMatchObject({
        TaskRoleArn: { 'Fn::GetAtt': [taskRoleId, 'Arn'] },
        ContainerDefinitions: [
          expect.objectContaining({ Name: 'runner', ReadonlyRootFilesystem: true, User: '1000' }),
        ],
      });
      const [clusterId] = ofType(t, 'AWS::ECS::Cluster')[0];
      const start = statementsOf(t).find((s) => s.Sid === 'StartRunnerTask')!;
      expect(start.id).toContain('MobilityLauncherPolicy');
      const [launcherRoleId] = ofType(t, 'AWS::IAM::Role').find(([id]) =>
        id.includes('MobilityLauncherRole'),
      )!;
      expect(rolesOf(start.id)).toBe(JSON.stringify([{ Ref: launcherRoleId }]));
      const invoke = statementsOf(t).find((s) => s.Sid === 'StartRunnerTaskThroughItsLauncher')!;
      expect(rolesOf(invoke.id)).toBe(JSON.stringify([{ Ref: runnerRoleArnId }]));
      expect(actions(invoke)).toEqual(['lambda:InvokeFunction']);
      expect(JSON.stringify(invoke.Resource)).toContain('MobilityLauncher');
      expect(actions(start)).toEqual(['ecs:RunTask']);
      // This deploy's revision of the runner task definition, exactly (not every revision of its family).
      expect(start.Resource).toEqual({ Ref: runnerTaskId });
      expect(start.Condition).toEqual({ ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': [clusterId, 'Arn'] } } });
      const describe = statementsOf(t).find((s) => s.Sid === 'DescribeRunnerTasks')!;
      expect(actions(describe)).toEqual(['ecs:DescribeTasks']);
      expect(JSON.stringify(describe.Resource)).toContain(`{"Ref":"${clusterId}"},"/*"`);
      expect(describe.Condition).toEqual({
        ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': [clusterId, 'Arn'] } },
      });
      const pass = statementsOf(t).find((s) => s.Sid === 'PassRolesToRunnerTask')!;
      // The task's two roles, in either order.
      expect(pass.Resource).toHaveLength(2);
      expect(pass.Resource).toEqual(
        expect.arrayContaining([
          { 'Fn::GetAtt': [taskRoleId, 'Arn'] },
          {
            'Fn::GetAtt': [
              (runnerTask.Properties!.ExecutionRoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0],
              'Arn',
            ],
          },
        ]),
      );
      expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } });
      // Nothing else in the stack may start tasks or pass roles to them.
      expect(
        statementsOf(t)
          .filter((s) => actions(s).some((a) => a === 'ecs:RunTask' || a === 'iam:PassRole'))
          .map((s) => s.Sid),
      ).toEqual(['StartRunnerTask', 'PassRolesToRunnerTask']);
      // The handler keeps these permissions until every resource it serves is deleted (the bootstrap, on which
      // a silo's tenant resource depends, is deleted after the tenant and before the policies).
      const [destroyPolicyId] = ofType(t, 'AWS::IAM::ManagedPolicy').find(([id]) =>
        id.includes('MobilityDestroyPolicy'),
      )!;
      const [handlerPolicyId] = ofType(t, 'AWS::IAM::ManagedPolicy').find(([id]) =>
        id.includes('ProvisionerHandlerPolicy'),
      )!;
      const [, bootstrapResource] = Object.entries(resourcesOf(t)).find(([id]) =>
        id.startsWith('CellDatabaseBootstrap'),
      )!;
      expect((bootstrapResource as { DependsOn?: string[] }).DependsOn).toEqual(
        expect.arrayContaining([destroyPolicyId, handlerPolicyId]),
      );
      // The cell's provisioner reads the status of tenant stacks only (DescribeStacks): a shared cell's, of any
      // tenant's; a silo's, of its own stack only.
      const stackStatus = statementsOf(t).find((s) => s.Sid === 'ReadTenantStackStatus')!;
      expect(actions(stackStatus)).toEqual(['cloudformation:DescribeStacks']);
      expect(JSON.stringify(stackStatus.Resource)).toContain(
        `:stack/${prefix === '*' ? 'Tenant-*' : `Tenant-${prefix}`}/*`,
      );
      // A silo's runner reads its own tenant's registry item only.
      const registry = statementsOf(t).find(
        (s) => s.id === runnerPolicy && s.Sid === 'ReadRegistryEntriesItems',
      )!;
      expect(actions(registry)).toEqual(['dynamodb:GetItem']);
      // And no policy of its role writes anything in DynamoDB: registry writes are the control plane's.
      const [runnerRole] = ofType(t, 'AWS::IAM::Role').find(([id]) => id.includes('MobilityRole'))!;
      const ofRunnerRole = [...ofType(t, 'AWS::IAM::ManagedPolicy'), ...ofType(t, 'AWS::IAM::Policy')]
        .filter(([, p]) => JSON.stringify(p.Properties!.Roles ?? []).includes(`"${runnerRole}"`))
        .map(([id]) => id);
      expect(ofRunnerRole).toContain(runnerPolicy);
      expect(
        statementsOf(t)
          .filter((s) => ofRunnerRole.includes(s.id))
          .flatMap(actions)
          .filter((a) => a === '*' || (a.startsWith('dynamodb:') && a !== 'dynamodb:GetItem')),
      ).toEqual([]);
      if (prefix !== '*') {
        expect(registry.Condition).toEqual({
          'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [prefix] },
        });
      }
      // A purge lists the archive versions it deletes: under its tenant's prefix only, in a silo's bucket.
      const listing = statementsOf(t).find(
        (s) => s.id === runnerPolicy && s.Sid === 'ListTenantArchiveVersions',
      )!;
      expect(listing.Condition).toEqual({ StringLike: { 's3:prefix': [`tenants/${prefix}/`] } });
      // Of the onboarding workflow it reads only what it needs, and no link handed to another: a shared cell's
      // runner describes any execution but reads the history of its own model's onboardings and moves only, and answers the
      // workflow's tasks; a silo's reads its own tenant's onboardings and moves into it only, and describes its
      // moves out and purges (their names carry its id's mark).
      const states = statementsOf(t)
        .filter((s) => s.id === runnerPolicy && actions(s).some((a) => a.startsWith('states:')))
        .map((s) => ({ actions: actions(s), resource: JSON.stringify(s.Resource) }));
      const executions = (pattern: string) =>
        expect.stringContaining(`:execution:tenantforge-onboarding:${pattern}"`);
      if (prefix === '*') {
        const model = stack.toLowerCase();
        expect(states).toEqual([
          {
            actions: ['states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess'],
            resource: expect.stringContaining(':stateMachine:tenantforge-onboarding"'),
          },
          { actions: ['states:DescribeExecution'], resource: executions('*') },
          { actions: ['states:GetExecutionHistory'], resource: executions(`onboard_${model}_*`) },
          // ... and of the moves into its own cell (named for the cell they move to).
          { actions: ['states:GetExecutionHistory'], resource: executions(`move_${model}_*`) },
        ]);
      } else {
        const own = `${tenantMark(prefix)}_${prefix}-*`;
        expect(states).toEqual([
          // The task of a move out of it, whose token it is handed.
          {
            actions: ['states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess'],
            resource: expect.stringContaining(':stateMachine:tenantforge-onboarding"'),
          },
          {
            actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
            resource: executions(`onboard_silo_${own}`),
          },
          {
            actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
            resource: executions(`move_silo_${own}`),
          },
          // Moves out of it and the purge of the silo it kept: described only (their inputs hold no link).
          { actions: ['states:DescribeExecution'], resource: executions(`move_pool_${own}`) },
          { actions: ['states:DescribeExecution'], resource: executions(`move_bridge_${own}`) },
          // ... restores over its tenant's data (the archive is its own, in its own bucket).
          { actions: ['states:DescribeExecution'], resource: executions(`restore_x_${own}`) },
          { actions: ['states:DescribeExecution'], resource: executions(`purge_x_${own}`) },
        ]);
      }
      // It runs in the cell's VPC, long enough and with room for a large tenant's archive.
      const [, fn] = ofType(t, 'AWS::Lambda::Function').find(([id]) => id.includes('MobilityRunner'))!;
      expect(fn.Properties).toMatchObject({
        Timeout: 900,
        EphemeralStorage: { Size: 10240 },
        Environment: { Variables: expect.objectContaining({ RUNTIME_DB_AUTH: 'iam' }) },
      });
      expect(fn.Properties!.VpcConfig).toBeDefined();
    },
  );

  test("a disposable tenant's archives and key go with its stack", () => {
    const t = fleet.template('Tenant-initech-qa');
    expect(bucketOf(t)[1].DeletionPolicy).toBe('Delete');
    const [, key] = ofType(t, 'AWS::SecretsManager::Secret').find(([id]) =>
      id.includes('MobilityArchiveKey'),
    )!;
    expect(key.DeletionPolicy).toBe('Delete');
  });
});
