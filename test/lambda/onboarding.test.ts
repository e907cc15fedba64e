import { mockClient } from 'aws-sdk-client-mock';
import {
  CloudFormationClient,
  DescribeStackEventsCommand,
  DescribeStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import {
  DynamoDBClient,
  GetItemCommand,
  ScanCommand,
  UpdateItemCommand,
  UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import {
  CreateDBSnapshotCommand,
  DescribeDBSnapshotsCommand,
  ModifyDBInstanceCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { handler, NotReady, RequestRejected } from '../../lambda/onboarding';

// The onboarding workflow's Lambda steps, with every AWS service stubbed at the SDK boundary.
const cfn = mockClient(CloudFormationClient);
const ddb = mockClient(DynamoDBClient);
const rds = mockClient(RDSClient);
const ssm = mockClient(SSMClient);

beforeAll(() => {
  process.env.REGISTRY_TABLE = 'TenantRegistry';
});
beforeEach(() => {
  [cfn, ddb, rds, ssm].forEach((m) => m.reset());
  ddb.on(GetItemCommand).resolves({});
  ddb.on(UpdateItemCommand).resolves({});
  ddb.on(ScanCommand).resolves({ Items: [] });
});

describe('validate', () => {
  test('accepts an onboarding request that passes the catalog rules and returns what the deploy job needs', async () => {
    const r = await handler({
      step: 'validate',
      action: 'onboard',
      request: { tenantId: 'initrode', name: 'Initrode', model: 'silo', settings: { multiAz: false } },
    });
    expect(r).toEqual({
      tenantId: 'initrode',
      model: 'silo',
      name: 'Initrode',
      stackName: 'Tenant-initrode',
      tenantRequest: JSON.stringify({
        id: 'initrode',
        name: 'Initrode',
        model: 'silo',
        settings: { multiAz: false },
      }),
    });
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(0);
  });

  test.each([
    [{ tenantId: "x'; drop", model: 'pool' }, 'onboard request refused: the request: field "id"'],
    [
      { tenantId: 'initrode', model: 'silo', settings: { backupRetentionDays: 1 } },
      'settings.backupRetentionDays" is 1',
    ],
    [{ tenantId: 'initrode', model: 'hybrid' }, 'field "model" is "hybrid"'],
  ])('rejects %j before any registry write', async (request, message) => {
    const attempt = handler({ step: 'validate', action: 'onboard', request });
    await expect(attempt).rejects.toThrow(RequestRejected);
    await expect(handler({ step: 'validate', action: 'onboard', request })).rejects.toThrow(message);
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(0);
  });

  test('rejects onboarding a tenant that exists, and offboarding one that does not', async () => {
    ddb.on(GetItemCommand, { Key: { tenantId: { S: 'acme' } } }).resolves({
      Item: { tenantId: { S: 'acme' }, status: { S: 'active' }, model: { S: 'pool' } },
    });
    await expect(
      handler({ step: 'validate', action: 'onboard', request: { tenantId: 'acme', model: 'pool' } }),
    ).rejects.toThrow('onboard request: tenant "acme" already exists (model pool, status active)');
    await expect(
      handler({ step: 'validate', action: 'offboard', request: { tenantId: 'ghost' } }),
    ).rejects.toThrow('offboard request: tenant "ghost" is unknown: nothing was changed');
    expect(await handler({ step: 'validate', action: 'offboard', request: { tenantId: 'acme' } })).toEqual({
      tenantId: 'acme',
      model: 'pool',
      stackName: 'Tenant-acme',
      tenantRequest: '',
    });
    // A tenant the pipeline onboarded is destroyed from the request it was created with.
    const original = JSON.stringify({ id: 'initech', name: 'Initech', model: 'bridge', settings: {} });
    ddb.on(GetItemCommand, { Key: { tenantId: { S: 'initech' } } }).resolves({
      Item: {
        tenantId: { S: 'initech' },
        status: { S: 'active' },
        model: { S: 'bridge' },
        request: { S: original },
      },
    });
    expect(
      await handler({ step: 'validate', action: 'offboard', request: { tenantId: 'initech' } }),
    ).toMatchObject({
      tenantRequest: original,
    });
  });

  test('refuses a silo whose VPC range overlaps a silo the pipeline onboarded earlier', async () => {
    ddb.on(ScanCommand).resolves({
      Items: [
        {
          tenantId: { S: 'umbrella' },
          request: {
            S: JSON.stringify({
              id: 'umbrella',
              name: 'U',
              model: 'silo',
              settings: { vpcCidr: '10.40.0.0/20' },
            }),
          },
        },
      ],
    });
    await expect(
      handler({
        step: 'validate',
        action: 'onboard',
        request: { tenantId: 'initrode', model: 'silo', settings: { vpcCidr: '10.40.8.0/21' } },
      }),
    ).rejects.toThrow(
      'onboard request refused: tenant "initrode": field "settings.vpcCidr" 10.40.8.0/21 (set in settings.vpcCidr) overlaps tenant "umbrella" (10.40.0.0/20)',
    );
    const ok = await handler({
      step: 'validate',
      action: 'onboard',
      request: { tenantId: 'initrode', model: 'silo', settings: { vpcCidr: '10.41.0.0/20' } },
    });
    expect(ok.tenantId).toBe('initrode');
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(0);
  });
});

describe('setStatus', () => {
  test('records a failure with its reason, and clears the reason on success', async () => {
    await handler({
      step: 'setStatus',
      tenantId: 'acme',
      status: 'failed',
      reason: 'Tenant-acme: Tenant failed',
    });
    await handler({ step: 'setStatus', tenantId: 'acme', status: 'active' });
    const [failed, active] = ddb
      .commandCalls(UpdateItemCommand)
      .map((c) => c.args[0].input as UpdateItemCommandInput);
    expect(failed).toMatchObject({ TableName: 'TenantRegistry', Key: { tenantId: { S: 'acme' } } });
    expect(failed.UpdateExpression).toBe(
      'SET #status = :status, #failureReason = :failureReason, #updatedAt = :updatedAt',
    );
    expect(failed.ExpressionAttributeValues![':failureReason']).toEqual({ S: 'Tenant-acme: Tenant failed' });
    expect(active.UpdateExpression).toBe(
      'SET #status = :status, #updatedAt = :updatedAt REMOVE #failureReason',
    );
  });
});

describe('failureReason', () => {
  test("reports CloudFormation's first real failure, not the cancellations that follow it", async () => {
    cfn.on(DescribeStackEventsCommand, { StackName: 'Tenant-acme' }).resolves({
      StackEvents: [
        {
          StackId: 's',
          EventId: '3',
          StackName: 'Tenant-acme',
          Timestamp: new Date('2026-11-27T10:03:00Z'),
          LogicalResourceId: 'Tenant-acme',
          ResourceType: 'AWS::CloudFormation::Stack',
          ResourceStatus: 'CREATE_FAILED',
          ResourceStatusReason: 'The following resource(s) failed to create: [Tenant].',
        },
        {
          StackId: 's',
          EventId: '2',
          StackName: 'Tenant-acme',
          Timestamp: new Date('2026-11-27T10:02:00Z'),
          LogicalResourceId: 'Tenant',
          ResourceType: 'Custom::PoolTenant',
          ResourceStatus: 'CREATE_FAILED',
          ResourceStatusReason: 'Custom::PoolTenant Create for tenant "acme" failed: connection refused',
        },
        {
          StackId: 's',
          EventId: '1',
          StackName: 'Tenant-acme',
          Timestamp: new Date('2026-11-27T10:02:30Z'),
          LogicalResourceId: 'Other',
          ResourceType: 'AWS::SSM::Parameter',
          ResourceStatus: 'CREATE_FAILED',
          ResourceStatusReason: 'Resource creation cancelled',
        },
      ],
    });
    expect(await handler({ step: 'failureReason', tenantId: 'acme' })).toEqual({
      reason:
        'Tenant-acme: Tenant (Custom::PoolTenant) CREATE_FAILED: Custom::PoolTenant Create for tenant "acme" failed: connection refused',
    });
  });

  test("falls back to the workflow's error when the stack was never created", async () => {
    cfn.on(DescribeStackEventsCommand).rejects(new Error('Stack with id Tenant-acme does not exist'));
    expect(
      await handler({
        step: 'failureReason',
        tenantId: 'acme',
        error: { Error: 'States.TaskFailed', Cause: JSON.stringify({ Build: { BuildStatus: 'FAILED' } }) },
      }),
    ).toEqual({ reason: 'Tenant-acme: States.TaskFailed: build FAILED' });
  });
});

describe('finalSnapshot', () => {
  test("snapshots the silo tenant's database, tags it, lifts deletion protection, and reports the snapshot id", async () => {
    cfn.on(DescribeStackResourcesCommand, { StackName: 'Tenant-northwind' }).resolves({
      StackResources: [
        {
          LogicalResourceId: 'CellDatabaseInstance',
          PhysicalResourceId: 'tenant-northwind-db',
          ResourceType: 'AWS::RDS::DBInstance',
          ResourceStatus: 'CREATE_COMPLETE',
          Timestamp: new Date(),
        },
      ],
    });
    rds.on(CreateDBSnapshotCommand).resolves({});
    rds.on(ModifyDBInstanceCommand).resolves({});
    const r = await handler({ step: 'finalSnapshot', tenantId: 'northwind' });
    expect(r.snapshotId).toMatch(/^northwind-final-\d{14}$/);
    expect(rds.commandCalls(CreateDBSnapshotCommand)[0].args[0].input).toEqual({
      DBInstanceIdentifier: 'tenant-northwind-db',
      DBSnapshotIdentifier: r.snapshotId,
      Tags: [
        { Key: 'tenant-id', Value: 'northwind' },
        { Key: 'purpose', Value: 'offboarding-final-snapshot' },
      ],
    });
    expect(rds.commandCalls(ModifyDBInstanceCommand)[0].args[0].input).toMatchObject({
      DeletionProtection: false,
    });
    // The snapshot is taken before protection is lifted.
    expect(rds.calls().map((c) => c.args[0].constructor.name)).toEqual([
      'CreateDBSnapshotCommand',
      'ModifyDBInstanceCommand',
    ]);

    rds.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [{ Status: 'creating' }] });
    expect(await handler({ step: 'snapshotStatus', snapshotId: r.snapshotId as string })).toMatchObject({
      available: false,
    });
    rds.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [{ Status: 'available' }] });
    expect(await handler({ step: 'snapshotStatus', snapshotId: r.snapshotId as string })).toMatchObject({
      available: true,
    });
  });
});

describe('checkReady', () => {
  test('is NotReady while the endpoint is unpublished or does not answer', async () => {
    ssm.on(GetParameterCommand).rejects(new Error('ParameterNotFound'));
    await expect(handler({ step: 'checkReady', tenantId: 'northwind', model: 'silo' })).rejects.toThrow(
      NotReady,
    );
    ssm
      .on(GetParameterCommand, { Name: '/tenantforge/pool/api-endpoint' })
      .resolves({ Parameter: { Value: 'https://127.0.0.1:1' } });
    await expect(handler({ step: 'checkReady', tenantId: 'acme', model: 'pool' })).rejects.toThrow(
      'https://127.0.0.1:1/ready did not answer',
    );
  });
});

describe('bundles', () => {
  test.each(['onboarding', 'tenant-provisioner'])(
    'the %s Lambda bundle pulls in neither aws-cdk-lib nor constructs (it stays small)',
    async (name) => {
      const { build } = await import('esbuild');
      const result = await build({
        entryPoints: [`${__dirname}/../../lambda/${name}/index.ts`],
        bundle: true,
        platform: 'node',
        target: 'node22',
        external: ['@aws-sdk/*', 'pg-native'],
        write: false,
        metafile: true,
        logLevel: 'silent',
      });
      const inputs = Object.keys(result.metafile!.inputs);
      expect(inputs.filter((i) => /node_modules\/(aws-cdk-lib|constructs|cdk-nag)\//.test(i))).toEqual([]);
      expect(result.outputFiles![0].contents.length).toBeLessThan(1024 * 1024);
    },
  );
});
