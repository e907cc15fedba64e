import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDBClient, UpdateItemCommand, UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { handler, connectionConfig } from '../../lambda/tenant-provisioner';
import { LATEST_VERSION } from '../../db/migrations';
import { sql } from '../../db/sql';
import { TenantDatabase } from '../../db/tenant-context';
import {
  createTestDatabase,
  MASTER_PASSWORD,
  MASTER_ROLE,
  RUNTIME_PASSWORD,
  serverUrl,
  sqlstateOf,
  TestDatabase,
} from '../db/harness';

// The handler runs for real against the embedded PostgreSQL server; only Secrets Manager and DynamoDB are
// stubbed, at the SDK boundary.
const secrets = mockClient(SecretsManagerClient);
const dynamo = mockClient(DynamoDBClient);
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:rds!db-1234';

let poolDb: TestDatabase;
let bridgeDb: TestDatabase;

beforeAll(async () => {
  poolDb = await createTestDatabase('handler_pool');
  bridgeDb = await createTestDatabase('handler_bridge');
});
afterAll(async () => {
  await poolDb.drop();
  await bridgeDb.drop();
});
beforeEach(() => {
  secrets.reset();
  dynamo.reset();
  secrets
    .on(GetSecretValueCommand, { SecretId: SECRET_ARN })
    .resolves({ SecretString: JSON.stringify({ username: MASTER_ROLE, password: MASTER_PASSWORD }) });
  dynamo.on(UpdateItemCommand).resolves({});
});

function useCell(model: 'pool' | 'bridge', db: TestDatabase): void {
  const url = serverUrl();
  Object.assign(process.env, {
    MODEL: model,
    DB_HOST: url.hostname,
    DB_PORT: url.port,
    DB_NAME: db.name,
    DB_SECRET_ARN: SECRET_ARN,
    REGISTRY_TABLE: 'TenantRegistry',
    // The embedded test server has no certificate; production is verify-full (asserted below).
    DB_SSL_MODE: 'disable',
  });
}

let requestNo = 0;
function cfnEvent(
  requestType: 'Create' | 'Update' | 'Delete',
  resourceType: string,
  properties: Record<string, unknown>,
  extra: { physicalId?: string; old?: Record<string, unknown> } = {},
): CloudFormationCustomResourceEvent {
  const base = {
    ServiceToken: 'arn:aws:lambda:us-east-1:111122223333:function:provider',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/',
    StackId: 'arn:aws:cloudformation:us-east-1:111122223333:stack/Tenant-x/guid',
    RequestId: `request-${++requestNo}`,
    LogicalResourceId: 'Tenant',
    ResourceType: resourceType,
    ResourceProperties: { ServiceToken: 'token', ...properties },
  };
  if (requestType === 'Create') return { ...base, RequestType: 'Create' };
  if (requestType === 'Update') {
    return {
      ...base,
      RequestType: 'Update',
      PhysicalResourceId: extra.physicalId!,
      OldResourceProperties: { ServiceToken: 'token', ...(extra.old ?? {}) },
    };
  }
  return { ...base, RequestType: 'Delete', PhysicalResourceId: extra.physicalId ?? 'unknown' };
}

const registryWrites = () =>
  dynamo.commandCalls(UpdateItemCommand).map((c) => {
    const input = c.args[0].input as UpdateItemCommandInput;
    const v = input.ExpressionAttributeValues!;
    return {
      tenantId: input.Key!.tenantId.S,
      status: v[':status'].S,
      ...(v[':schema'] ? { schema: v[':schema'].S } : {}),
      ...(v[':failureReason'] ? { failureReason: v[':failureReason'].S } : {}),
      ...(v[':dataRetained'] ? { dataRetained: v[':dataRetained'].BOOL } : {}),
    };
  });

const bootstrap = (model: string) =>
  cfnEvent('Create', 'Custom::DatabaseBootstrap', { Model: model, SchemaVersion: String(LATEST_VERSION) });
const poolTenant = (id: string, extra: Record<string, unknown> = {}) => ({
  TenantId: id,
  Name: `${id} Inc`,
  Model: 'pool',
  DeletionPolicy: 'retain',
  SchemaVersion: String(LATEST_VERSION),
  ...extra,
});
const bridgeTenant = (id: string, extra: Record<string, unknown> = {}) => ({
  ...poolTenant(id, extra),
  Model: 'bridge',
  ...extra,
});

describe('tenant provisioner handler: pool cell', () => {
  beforeAll(() => useCell('pool', poolDb));

  test('bootstrap Create (and its retry) prepares the database; Delete keeps it', async () => {
    const first = await handler(bootstrap('pool'));
    const retry = await handler(bootstrap('pool'));
    expect(first).toEqual({
      PhysicalResourceId: 'pool-database-bootstrap',
      Data: { Model: 'pool', SchemaVersion: String(LATEST_VERSION) },
    });
    expect(retry).toEqual(first);
    const del = await handler(
      cfnEvent(
        'Delete',
        'Custom::DatabaseBootstrap',
        { Model: 'pool', SchemaVersion: '2' },
        { physicalId: first.PhysicalResourceId },
      ),
    );
    expect(del.PhysicalResourceId).toBe('pool-database-bootstrap');
    expect(registryWrites()).toEqual([]);
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(3);
  });

  test('pool tenant Create registers the tenant and records provisioning then active in the registry', async () => {
    const res = await handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('acme')));
    expect(res).toEqual({
      PhysicalResourceId: 'tenant-pool-acme',
      Data: {
        TenantId: 'acme',
        Schema: 'pool',
        SchemaVersion: String(LATEST_VERSION),
        FromVersion: String(LATEST_VERSION),
      },
    });
    expect(registryWrites()).toEqual([
      { tenantId: 'acme', status: 'provisioning' },
      { tenantId: 'acme', status: 'active', schema: 'pool' },
    ]);
    const call = dynamo.commandCalls(UpdateItemCommand)[1].args[0].input as UpdateItemCommandInput;
    expect(call.TableName).toBe('TenantRegistry');
    expect(call.UpdateExpression).toContain('REMOVE #failureReason');
    expect(call.ExpressionAttributeNames!['#failureReason']).toBe('failureReason');
    // Every writer records the tenant's deletion policy, so readers need not parse its request.
    expect(call.ExpressionAttributeValues![':deletionPolicy']).toEqual({ S: 'retain' });
  });

  test('a retried Create returns the same physical id and changes nothing', async () => {
    const again = await handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('acme')));
    expect(again.PhysicalResourceId).toBe('tenant-pool-acme');
  });

  test('Delete with the default policy keeps the rows and records offboarded with data retained', async () => {
    const res = await handler(
      cfnEvent('Delete', 'Custom::PoolTenant', poolTenant('acme'), { physicalId: 'tenant-pool-acme' }),
    );
    expect(res.PhysicalResourceId).toBe('tenant-pool-acme');
    expect(registryWrites()).toEqual([
      { tenantId: 'acme', status: 'offboarded', schema: 'pool', dataRetained: true },
    ]);
  });

  test('rejects a bad tenant id before any AWS call or SQL, with a message naming the property and the rule', async () => {
    await expect(
      handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant("acme'; DROP SCHEMA pool; --"))),
    ).rejects.toThrow(
      'Custom::PoolTenant Tenant: property TenantId: tenant id "acme\'; DROP SCHEMA pool; --" is invalid: use 3-30 lowercase letters',
    );
    expect(secrets.calls()).toHaveLength(0);
    expect(dynamo.calls()).toHaveLength(0);
  });

  test('the rollback Delete of a refused Create succeeds without touching anything', async () => {
    const res = await handler(
      cfnEvent('Delete', 'Custom::PoolTenant', poolTenant('Bad Id!'), {
        physicalId: 'request-id-of-failed-create',
      }),
    );
    expect(res).toEqual({ PhysicalResourceId: 'request-id-of-failed-create' });
    expect(secrets.calls()).toHaveLength(0);
    expect(dynamo.calls()).toHaveLength(0);
  });

  test.each([
    [{ Model: 'bridge' }, 'property Model is "bridge", but this provisioner serves "pool" tenants'],
    [{ SchemaVersion: '7' }, 'property SchemaVersion is "7": use one of 1, 2'],
    [{ DeletionPolicy: 'keep' }, 'property DeletionPolicy is "keep": use "retain" or "destroy"'],
    [{ Name: '' }, 'property Name must be the tenant display name'],
  ])('rejects invalid properties %j', async (override, message) => {
    await expect(
      handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('acme', override))),
    ).rejects.toThrow(message);
    expect(dynamo.calls()).toHaveLength(0);
  });

  test('rejects a resource type that belongs to another model', async () => {
    await expect(handler(cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('acme')))).rejects.toThrow(
      'this is the pool provisioner; it handles Custom::DatabaseBootstrap and Custom::PoolTenant only',
    );
  });
});

describe('tenant provisioner handler: bridge cell', () => {
  beforeAll(() => useCell('bridge', bridgeDb));

  test('Create builds the tenant schema at the requested version; Update migrates it in place', async () => {
    await handler(bootstrap('bridge'));
    const created = await handler(
      cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('cyberdyne', { SchemaVersion: '1' })),
    );
    expect(created).toEqual({
      PhysicalResourceId: 'tenant-bridge-cyberdyne',
      Data: { TenantId: 'cyberdyne', Schema: 't_cyberdyne', SchemaVersion: '1', FromVersion: '0' },
    });
    const updated = await handler(
      cfnEvent('Update', 'Custom::BridgeTenant', bridgeTenant('cyberdyne', { SchemaVersion: '2' }), {
        physicalId: created.PhysicalResourceId,
        old: bridgeTenant('cyberdyne', { SchemaVersion: '1' }),
      }),
    );
    expect(updated.Data).toMatchObject({ SchemaVersion: '2', FromVersion: '1' });
    expect(updated.PhysicalResourceId).toBe(created.PhysicalResourceId);
    const master = await bridgeDb.master();
    await master.query('BEGIN; SET LOCAL ROLE tenant_owner');
    const due = await master.query(
      "SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 't_cyberdyne.invoices'::regclass AND attname = 'due_on'",
    );
    await master.query('ROLLBACK');
    expect(due.rows[0].n).toBe(1);
  });

  test('a failing Update records the reason in the registry and fails with it', async () => {
    await expect(
      handler(
        cfnEvent('Update', 'Custom::BridgeTenant', bridgeTenant('cyberdyne', { SchemaVersion: '1' }), {
          physicalId: 'tenant-bridge-cyberdyne',
          old: bridgeTenant('cyberdyne', { SchemaVersion: '2' }),
        }),
      ),
    ).rejects.toThrow(
      'Custom::BridgeTenant Update for tenant "cyberdyne" failed: bridge:cyberdyne is at schema version 2, newer than the requested 1',
    );
    expect(registryWrites()).toEqual([
      { tenantId: 'cyberdyne', status: 'provisioning' },
      {
        tenantId: 'cyberdyne',
        status: 'failed',
        failureReason: expect.stringContaining('Update: bridge:cyberdyne is at schema version 2'),
      },
    ]);
  });

  test('a Create that cannot reach its database fails at once with the reason', async () => {
    secrets
      .on(GetSecretValueCommand)
      .rejects(new Error('AccessDeniedException: not authorized to GetSecretValue'));
    await expect(handler(cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('wonka')))).rejects.toThrow(
      'Custom::BridgeTenant Create for tenant "wonka" failed: AccessDeniedException: not authorized to GetSecretValue',
    );
    expect(registryWrites().at(-1)).toEqual({
      tenantId: 'wonka',
      status: 'failed',
      failureReason: 'Create: AccessDeniedException: not authorized to GetSecretValue',
    });
  });

  test('Delete of a disposable tenant drops its schema and role; the API can no longer serve it', async () => {
    await handler(
      cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('tyrell', { DeletionPolicy: 'destroy' })),
    );
    await handler(
      cfnEvent('Delete', 'Custom::BridgeTenant', bridgeTenant('tyrell', { DeletionPolicy: 'destroy' }), {
        physicalId: 'tenant-bridge-tyrell',
      }),
    );
    expect(registryWrites().at(-1)).toEqual({
      tenantId: 'tyrell',
      status: 'offboarded',
      schema: 't_tyrell',
      dataRetained: false,
    });
    const master = await bridgeDb.master();
    const left = await master.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 't_tyrell'");
    expect(left.rows[0].n).toBe(0);
    // In AWS app_bridge signs in with IAM; here it needs a password to try.
    await master.query(`ALTER ROLE app_bridge PASSWORD '${RUNTIME_PASSWORD}'`);
    const api = new TenantDatabase({ pool: bridgeDb.poolAs('app_bridge'), model: 'bridge' });
    expect(await sqlstateOf(api.forTenant('tyrell').run(sql`SELECT 1`))).toBe('22023');
  });
});

describe('connection security', () => {
  test('connects with TLS and verifies the server certificate and host name by default', () => {
    const config = connectionConfig(
      {
        model: 'pool',
        host: 'pool-db.abc.us-east-1.rds.amazonaws.com',
        port: 5432,
        database: 'saas',
        secretArn: SECRET_ARN,
        registryTable: 't',
        sslMode: 'verify-full',
      },
      'postgres',
      'pw',
    );
    expect(config.ssl).toEqual({
      rejectUnauthorized: true,
      servername: 'pool-db.abc.us-east-1.rds.amazonaws.com',
    });
  });
});
