import { App, Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Match } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { LIFECYCLE_METADATA_KEY } from '../../contracts';
import { ApiImage, apiContainerImage } from '../../lib/constructs/api-image';
import { LifecycleChecks } from '../../lib/lifecycle';
import { cdkJsonContext, SAMPLE_TENANTS, synthFleet } from './fleet-helpers';

/** Synthesizes `build`'s stacks with only the lifecycle checks, and returns what they reported. */
function violationsOf(build: (app: App) => void): string {
  const app = new App({ context: cdkJsonContext() });
  build(app);
  Validations.of(app).addPlugins(new LifecycleChecks());
  try {
    app.synth();
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

const stackIn = (app: App, id: string, lifecycle?: { deletionPolicy: string; phase: string }) => {
  const stack = new Stack(app, id, { env: { region: 'us-east-1' } });
  if (lifecycle) stack.templateOptions.metadata = { [LIFECYCLE_METADATA_KEY]: lifecycle };
  return stack;
};

describe('lifecycle checks fail the synth on what would break a deploy or a delete', () => {
  test('image-platform: a task whose CPU architecture is not its image platform', () => {
    const found = violationsOf((app) => {
      const platform = stackIn(app, 'Images');
      const image = new ApiImage(platform, 'ApiImage', { architecture: 'arm64' });
      const stack = stackIn(app, 'Service');
      const task = new ecs.FargateTaskDefinition(stack, 'Task', {
        runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64 },
      });
      task.addContainer('api', { image: apiContainerImage(stack, image.ref) });
    });
    expect(found).toContain('image-platform');
    expect(found).toContain('A task runs on X86_64 an image built for linux/arm64');
  });

  test('protection-on-delete: a disposable stack with a protected load balancer, or a bucket nothing empties', () => {
    const found = violationsOf((app) => {
      const stack = stackIn(app, 'Disposable', { deletionPolicy: 'destroy', phase: 'steady' });
      const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, maxAzs: 2 });
      new elbv2.ApplicationLoadBalancer(stack, 'Lb', { vpc, deletionProtection: true });
      new s3.Bucket(stack, 'Logs', { removalPolicy: RemovalPolicy.DESTROY });
    });
    expect(found).toContain('protection-on-delete');
    expect(found).toContain('holds a deletion-protected resource');
    expect(found).toContain('BucketNotEmpty');
    // The same stack in steady phase and kept: protection is what it should have.
    expect(
      violationsOf((app) => {
        const stack = stackIn(app, 'Kept', { deletionPolicy: 'retain', phase: 'steady' });
        const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, maxAzs: 2 });
        new elbv2.ApplicationLoadBalancer(stack, 'Lb', { vpc, deletionProtection: true });
      }),
    ).toBe('');
  });

  test('kept-fixed-name: a kept log group with a fixed name', () => {
    const found = violationsOf((app) => {
      const stack = stackIn(app, 'Named');
      new logs.LogGroup(stack, 'Waf', {
        logGroupName: 'aws-waf-logs-fixed',
        removalPolicy: RemovalPolicy.RETAIN,
      });
    });
    expect(found).toContain('kept-fixed-name');
    expect(found).toContain('creating the stack again fails with AlreadyExists');
    // Named with the id of a key the same template creates (new each time it is created): not fixed. With a key
    // id the template only refers to (an imported key, the same every time): fixed.
    const named = (keyId: (stack: Stack) => string) =>
      violationsOf((app) => {
        const stack = stackIn(app, 'Named');
        new logs.LogGroup(stack, 'Waf', {
          logGroupName: `aws-waf-logs-${Fn.select(0, Fn.split('-', keyId(stack)))}`,
          removalPolicy: RemovalPolicy.RETAIN,
        });
      });
    expect(named((stack) => new kms.Key(stack, 'Key', { enableKeyRotation: true }).keyId)).toBe('');
    expect(
      named(
        (stack) =>
          kms.Key.fromKeyArn(
            stack,
            'Key',
            'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
          ).keyId,
      ),
    ).toContain('kept-fixed-name');
  });

  test('readiness: a load balancer health check on a route that needs a token', () => {
    const found = violationsOf((app) => {
      const stack = stackIn(app, 'Health');
      const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, maxAzs: 2 });
      new elbv2.ApplicationTargetGroup(stack, 'Tg', { vpc, port: 8080, healthCheck: { path: '/invoices' } });
    });
    expect(found).toContain('readiness');
    expect(found).toContain('calls /invoices, which the API serves only with a token');
  });
});

describe('the fleet as built passes them, and is built for its whole life', () => {
  const fleet = synthFleet([
    ...SAMPLE_TENANTS,
    { id: 'ipam-silo', name: 'From the pool', model: 'silo' },
    {
      id: 'restored',
      name: 'Back',
      model: 'silo',
      settings: { vpcCidr: '10.18.0.0/20', restoredFromSnapshot: 'restored-final-20261127100000' },
    },
  ]);
  const imageTag = fleet.fleet.platform.apiImage.ref.tag;

  test("one image per release, built by the Platform stack for the tasks' platform; every cell refers to it by tag", () => {
    expect(ApiImage.reference().tag).toBe(imageTag);
    for (const name of ['Pool', 'Bridge', 'Tenant-northwind']) {
      fleet.template(name).hasResourceProperties('AWS::ECS::TaskDefinition', {
        RuntimePlatform: { CpuArchitecture: 'ARM64' },
        ContainerDefinitions: [
          Match.objectLike({ Image: { 'Fn::Join': ['', Match.arrayWith([`:${imageTag}`])] } }),
        ],
      });
    }
  });

  test("the API service starts only after its database's bootstrap", () => {
    const t = fleet.template('Tenant-northwind').toJSON();
    const [service] = Object.values(
      t.Resources as Record<string, { Type: string; DependsOn?: string[] }>,
    ).filter((r) => r.Type === 'AWS::ECS::Service');
    expect(service.DependsOn).toEqual(
      expect.arrayContaining([expect.stringMatching(/^CellDatabaseBootstrap/)]),
    );
  });

  test('a silo with no catalog range takes a /20 from the platform address pool', () => {
    fleet.template('Tenant-ipam-silo').hasResourceProperties('AWS::EC2::VPC', {
      Ipv4IpamPoolId: { Ref: Match.stringLikeRegexp('siloipampoolid') },
      Ipv4NetmaskLength: 20,
    });
    fleet.template('Platform').hasResourceProperties('AWS::EC2::IPAMPool', {
      ProvisionedCidrs: [{ Cidr: '10.128.0.0/9' }],
      AllocationDefaultNetmaskLength: 20,
    });
  });

  test('kept resources carry the stack incarnation in their names', () => {
    const t = fleet.template('Tenant-northwind');
    t.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: {
        'Fn::Join': [
          '',
          Match.arrayWith([
            Match.stringLikeRegexp('^aws-waf-logs-tenantforge/Tenant-northwind/Cell-Api-WafLogs-'),
          ]),
        ],
      },
    });
    t.hasResourceProperties('AWS::Backup::BackupVault', {
      BackupVaultName: { 'Fn::Join': ['', Match.arrayWith(['Tenant-northwind-'])] },
    });
  });

  test("a disposable tenant's access-log bucket is emptied after its load balancer is gone", () => {
    const t = fleet.template('Tenant-initech-qa').toJSON();
    const resources = t.Resources as Record<string, { Type: string; DependsOn?: string[] }>;
    const [autoDelete] = Object.entries(resources).find(([, r]) => r.Type === 'Custom::S3AutoDeleteObjects')!;
    const [, lb] = Object.entries(resources).find(
      ([, r]) => r.Type === 'AWS::ElasticLoadBalancingV2::LoadBalancer',
    )!;
    expect(lb.DependsOn).toContain(autoDelete);
  });

  test('a restored silo database comes back from its final snapshot and keeps naming it', () => {
    const t = fleet.template('Tenant-restored').toJSON();
    const [db] = Object.values(
      t.Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>,
    ).filter((r) => r.Type === 'AWS::RDS::DBInstance');
    expect(db.Properties.DBSnapshotIdentifier).toBe('restored-final-20261127100000');
    for (const p of ['DBName', 'MasterUsername', 'KmsKeyId', 'StorageEncrypted'])
      expect(db.Properties[p]).toBeUndefined();
  });

  test('the API reads, and the provisioner writes, the registry with the key rights DynamoDB needs', () => {
    const t = fleet.template('Pool');
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Sid: 'ReadTenantRegistryItems', Action: 'dynamodb:GetItem' }),
          Match.objectLike({
            Sid: 'ReadTenantRegistryKey',
            Action: ['kms:Decrypt', 'kms:DescribeKey'],
            Condition: {
              StringEquals: Match.objectLike({ 'kms:ViaService': 'dynamodb.us-east-1.amazonaws.com' }),
            },
          }),
        ]),
      },
    });
    t.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'WriteRegistryEntriesKey',
            Action: Match.arrayWith(['kms:GenerateDataKey']),
          }),
        ]),
      },
    });
  });
});

describe('deletion protection follows the lifecycle phase', () => {
  const protection = (phase: 'create' | 'steady' | 'retire') => {
    const f = synthFleet(SAMPLE_TENANTS, { onlyTenant: 'northwind', tenantPhase: phase });
    const t = f.template('Tenant-northwind').toJSON();
    const resources = Object.values(
      t.Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>,
    );
    const db = resources.find((r) => r.Type === 'AWS::RDS::DBInstance')!;
    const lb = resources.find((r) => r.Type === 'AWS::ElasticLoadBalancingV2::LoadBalancer')!;
    const attr = (lb.Properties.LoadBalancerAttributes as { Key: string; Value: string }[]).find(
      (a) => a.Key === 'deletion_protection.enabled',
    );
    return { db: db.Properties.DeletionProtection, lb: attr?.Value ?? 'false' };
  };

  test('steady: on; create (a first deploy that must roll back cleanly) and retire (before destroy): off', () => {
    expect(protection('steady')).toEqual({ db: true, lb: 'true' });
    expect(protection('create')).toEqual({ db: false, lb: 'false' });
    expect(protection('retire')).toEqual({ db: false, lb: 'false' });
  });
});

describe('a function in a VPC is created only once its role may create its network interfaces', () => {
  // Lambda checks the role when it creates a VPC function: created beside the policy that grants it (both wait for
  // the database, then start together), the create fails at random and the stack rolls back.
  test('every VPC function depends on the policy of its role that grants ec2:CreateNetworkInterface', () => {
    const fleet = synthFleet(SAMPLE_TENANTS);
    let functions = 0;
    for (const name of fleet.stackNames()) {
      const resources = fleet.template(name).toJSON().Resources as Record<
        string,
        { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] }
      >;
      for (const [id, fn] of Object.entries(resources)) {
        if (fn.Type !== 'AWS::Lambda::Function' || !fn.Properties.VpcConfig) continue;
        functions++;
        const role = JSON.stringify(fn.Properties.Role);
        const grants = Object.entries(resources)
          .filter(
            ([, p]) =>
              (p.Type === 'AWS::IAM::ManagedPolicy' || p.Type === 'AWS::IAM::Policy') &&
              JSON.stringify(p.Properties.Roles ?? []).includes(
                role.replace(/^\{"Fn::GetAtt":\["([^"]+)".*$/, '$1'),
              ) &&
              JSON.stringify(p.Properties.PolicyDocument).includes('ec2:CreateNetworkInterface'),
          )
          .map(([pid]) => pid);
        expect({ fn: `${name}/${id}`, grants: grants.length > 0 }).toEqual({
          fn: `${name}/${id}`,
          grants: true,
        });
        expect({ fn: `${name}/${id}`, waits: grants.every((g) => fn.DependsOn?.includes(g)) }).toEqual({
          fn: `${name}/${id}`,
          waits: true,
        });
      }
    }
    expect(functions).toBeGreaterThan(6);
  });
});
