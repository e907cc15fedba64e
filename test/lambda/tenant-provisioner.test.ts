import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { BOOTSTRAP_REVISION, LATEST_VERSION } from '../../db/migrations';
import { sql } from '../../db/sql';
import { TenantDatabase } from '../../db/tenant-context';
import {
  createTestDatabase,
  MASTER_PASSWORD,
  MASTER_ROLE,
  serverUrl,
  setRuntimePassword,
  sqlstateOf,
  TestDatabase,
  TEST_CONTEXT_KEY,
} from '../db/harness';
import { Moto, startMoto } from '../helpers/moto';

// The handler runs for real against the embedded PostgreSQL server and against DynamoDB's API (moto), so the
// registry's conditional writes behave as in AWS; only Secrets Manager is stubbed, at the SDK boundary.
const secrets = mockClient(SecretsManagerClient);
// CloudFormation says a tenant stack is being deleted (a tenant resource's Delete offboards only then).
const cloudformation = mockClient(CloudFormationClient);
const stackBeingDeleted = () =>
  cloudformation.on(DescribeStacksCommand).resolves({
    Stacks: [{ StackName: 'Tenant-x', StackStatus: 'DELETE_IN_PROGRESS', CreationTime: new Date() }],
  });
stackBeingDeleted();
// A test that says otherwise says so for itself only, even when it fails half-way.
afterEach(stackBeingDeleted);
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:rds!db-1234';
const KEY_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:context-key';
const TEST_KEY_HEX = '5e'.repeat(32); // the harness's TEST_CONTEXT_KEY

let poolDb: TestDatabase;
let bridgeDb: TestDatabase;
let moto: Moto;
let provisioner: typeof import('../../lambda/tenant-provisioner');
const handler = (event: CloudFormationCustomResourceEvent) => provisioner.handler(event);

beforeAll(async () => {
  moto = await startMoto();
  provisioner = await import('../../lambda/tenant-provisioner');
  poolDb = await createTestDatabase('handler_pool');
  bridgeDb = await createTestDatabase('handler_bridge');
});
afterAll(async () => {
  await poolDb.drop();
  await bridgeDb.drop();
  await moto.stop();
});
beforeEach(() => {
  secrets.reset();
  secrets
    .on(GetSecretValueCommand, { SecretId: SECRET_ARN })
    .resolves({ SecretString: JSON.stringify({ username: MASTER_ROLE, password: MASTER_PASSWORD }) });
  // The cell's tenant context key (the API holds the same).
  secrets.on(GetSecretValueCommand, { SecretId: KEY_SECRET_ARN }).resolves({ SecretString: TEST_KEY_HEX });
});

function useCell(model: 'pool' | 'bridge', db: TestDatabase): void {
  const url = serverUrl();
  Object.assign(process.env, {
    MODEL: model,
    OWN_STACK: model === 'pool' ? 'Pool' : 'Bridge',
    DB_HOST: url.hostname,
    DB_PORT: url.port,
    DB_NAME: db.name,
    DB_SECRET_ARN: SECRET_ARN,
    CONTEXT_KEY_SECRET_ARN: KEY_SECRET_ARN,
    // The embedded test server has no certificate; production is verify-full (asserted below).
    DB_SSL_MODE: 'disable',
    DB_CONNECT_SECONDS: '2',
  });
}

const stackId = (name: string) => `arn:aws:cloudformation:us-east-1:111122223333:stack/${name}/0a1b2c3d`;

let requestNo = 0;
function cfnEvent(
  requestType: 'Create' | 'Update' | 'Delete',
  resourceType: string,
  properties: Record<string, unknown>,
  extra: { physicalId?: string; old?: Record<string, unknown>; stack?: string } = {},
): CloudFormationCustomResourceEvent {
  const base = {
    ServiceToken: 'arn:aws:lambda:us-east-1:111122223333:function:provider',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/',
    // A tenant's resource comes from its own stack, the bootstrap from the cell's, unless a test says otherwise.
    StackId: stackId(
      extra.stack ??
        (properties.TenantId ? `Tenant-${properties.TenantId as string}` : process.env.OWN_STACK!),
    ),
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

const bootstrap = (model: string) =>
  cfnEvent('Create', 'Custom::DatabaseBootstrap', { Model: model, SchemaVersion: String(LATEST_VERSION) });
const poolTenant = (id: string, extra: Record<string, unknown> = {}) => ({
  TenantId: id,
  Name: `${id} Inc`,
  Model: 'pool',
  DeletionPolicy: 'retain',
  SchemaVersion: String(LATEST_VERSION),
  Request: JSON.stringify({ id, name: `${id} Inc`, model: 'pool', settings: { deletionPolicy: 'retain' } }),
  ...extra,
});
const bridgeTenant = (id: string, extra: Record<string, unknown> = {}) => ({
  ...poolTenant(id, extra),
  Model: 'bridge',
  ...extra,
});

/** A pool tenant's registration in the pool database, as the tables' owner sees it (gone once destroyed). */
const poolStatus = async (id: string) => {
  const master = await poolDb.master();
  try {
    await master.query('BEGIN; SET LOCAL ROLE tenant_owner');
    const r = await master.query<{ status: string }>(
      'SELECT status FROM tenancy.pool_tenants WHERE tenant_id = $1',
      [id],
    );
    await master.query('ROLLBACK');
    return r.rows[0]?.status;
  } finally {
    await master.end();
  }
};

describe('tenant provisioner handler: pool cell', () => {
  beforeAll(async () => {
    useCell('pool', poolDb);
    await moto.resetRegistry();
  });

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
    // The master secret for each connection; the context key for each bootstrap (Create and its retry).
    expect(secrets.commandCalls(GetSecretValueCommand, { SecretId: SECRET_ARN })).toHaveLength(3);
    expect(secrets.commandCalls(GetSecretValueCommand, { SecretId: KEY_SECRET_ARN })).toHaveLength(2);
  });

  test("a new bootstrap revision (the cell's next deploy) installs what the bootstrap changed on a live database", async () => {
    // A database bootstrapped before revision 2: only the runtime role could call enter(), not PUBLIC.
    const master = await poolDb.master();
    const callable = async () =>
      (
        await master.query<{ ok: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM aclexplode((SELECT proacl FROM pg_proc
                    WHERE oid = 'tenancy_api.enter(text[], text[])'::regprocedure)) a
                  WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS ok`,
        )
      ).rows[0].ok;
    try {
      await master.query(
        'SET ROLE tenant_owner; REVOKE EXECUTE ON FUNCTION tenancy_api.enter(text[], text[]) FROM PUBLIC; RESET ROLE',
      );
      expect(await callable()).toBe(false);
      const props = { Model: 'pool', SchemaVersion: String(LATEST_VERSION) };
      const updated = await handler(
        cfnEvent(
          'Update',
          'Custom::DatabaseBootstrap',
          { ...props, Revision: String(BOOTSTRAP_REVISION) },
          { physicalId: 'pool-database-bootstrap', old: { ...props, Revision: '1' } },
        ),
      );
      expect(updated.PhysicalResourceId).toBe('pool-database-bootstrap');
      expect(await callable()).toBe(true);
    } finally {
      await master.end();
    }
  });

  test('a catalog tenant (deployed straight from the catalog) is registered by its Create: active, with its request', async () => {
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
    expect(await moto.get('acme')).toMatchObject({
      status: 'active',
      model: 'pool',
      schema: 'pool',
      schemaVersion: LATEST_VERSION,
      upgradeStatus: 'current',
      deletionPolicy: 'retain',
      requestedBy: 'catalog',
      request: poolTenant('acme').Request,
    });
  });

  test('a retried Create returns the same physical id and changes nothing', async () => {
    const again = await handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('acme')));
    expect(again.PhysicalResourceId).toBe('tenant-pool-acme');
    expect(await moto.get('acme')).toMatchObject({ status: 'active' });
  });

  test("a tenant the onboarding workflow holds: its status is the workflow's, never the provisioner's", async () => {
    await moto.put({ tenantId: 'globex', model: 'pool', status: 'provisioning', lock: 'execution-1' });
    await handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('globex')));
    expect(await moto.get('globex')).toMatchObject({
      status: 'provisioning',
      lock: 'execution-1',
      upgradeStatus: 'current',
      schema: 'pool',
    });
  });

  test('a resource naming another tenant than its own stack is refused with nothing changed', async () => {
    const before = await moto.get('acme');
    await expect(
      handler(
        cfnEvent('Delete', 'Custom::PoolTenant', poolTenant('acme'), {
          stack: 'Tenant-globex',
          physicalId: 'tenant-pool-acme',
        }),
      ),
    ).resolves.toEqual({ PhysicalResourceId: 'tenant-pool-acme' });
    await expect(
      handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('acme'), { stack: 'Tenant-globex' })),
    ).rejects.toThrow(
      'tenant "acme" can be provisioned only from its own stack Tenant-acme, not from Tenant-globex: nothing was changed',
    );
    await expect(handler({ ...bootstrap('pool'), StackId: stackId('Tenant-globex') })).rejects.toThrow(
      'the database bootstrap belongs to stack Pool; stack Tenant-globex may not run it',
    );
    for (const bad of ['0', 'lots', '4097']) {
      await expect(
        handler(
          cfnEvent('Create', 'Custom::DatabaseBootstrap', {
            Model: 'pool',
            SchemaVersion: String(LATEST_VERSION),
            RuntimeSlots: bad,
          }),
        ),
      ).rejects.toThrow(
        `property RuntimeSlots is "${bad}": use a whole number of login roles from 1 to 4096`,
      );
    }
    expect(secrets.calls()).toHaveLength(0);
    expect(await moto.get('acme')).toEqual(before);
  });

  test('Delete with the default policy keeps the rows and records offboarded with data retained', async () => {
    const res = await handler(
      cfnEvent('Delete', 'Custom::PoolTenant', poolTenant('acme'), { physicalId: 'tenant-pool-acme' }),
    );
    expect(res.PhysicalResourceId).toBe('tenant-pool-acme');
    expect(await moto.get('acme')).toMatchObject({ status: 'offboarded', dataRetained: true });
  });

  test('a retired tenant is provisioned again only by an explicit restore', async () => {
    await expect(handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('acme')))).rejects.toThrow(
      'pool:acme was offboarded with its data kept: it is provisioned again only by an explicit restore',
    );
    await handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('acme', { Restore: 'true' })));
    const api = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: poolDb.poolAs('app_pool'),
      model: 'pool',
    });
    await poolDb.master().then((m) => setRuntimePassword(m, 'app_pool'));
    await expect(api.forTenant('acme').run(sql`SELECT 1`)).resolves.toBeDefined();
  });

  test('rejects a bad tenant id before any AWS call or SQL, with a message naming the property and the rule', async () => {
    await expect(
      handler(
        cfnEvent('Create', 'Custom::PoolTenant', poolTenant("acme'; DROP SCHEMA pool; --"), {
          stack: 'Tenant-x',
        }),
      ),
    ).rejects.toThrow(
      'Custom::PoolTenant Tenant: property TenantId: tenant id "acme\'; DROP SCHEMA pool; --" is invalid: use 3-30 lowercase letters',
    );
    expect(secrets.calls()).toHaveLength(0);
  });

  test('the rollback Delete of a refused Create succeeds without touching anything', async () => {
    const res = await handler(
      cfnEvent('Delete', 'Custom::PoolTenant', poolTenant('Bad Id!'), {
        physicalId: 'request-id-of-failed-create',
        stack: 'Tenant-x',
      }),
    );
    expect(res).toEqual({ PhysicalResourceId: 'request-id-of-failed-create' });
    expect(secrets.calls()).toHaveLength(0);
  });

  test.each([
    [{ Model: 'bridge' }, 'property Model is "bridge", but this provisioner serves "pool" tenants'],
    [{ SchemaVersion: '7' }, 'property SchemaVersion is "7": use one of 1, 2'],
    [{ DeletionPolicy: 'keep' }, 'property DeletionPolicy is "keep": use "retain" or "destroy"'],
    [{ Name: '' }, 'property Name must be the tenant display name'],
    [{ Restore: 'yes' }, 'property Restore is "yes": use "true" or leave it out'],
  ])('rejects invalid properties %j', async (override, message) => {
    await expect(
      handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('initrode', override))),
    ).rejects.toThrow(message);
    expect(await moto.get('initrode')).toBeUndefined();
  });

  test('rejects a resource type that belongs to another model', async () => {
    await expect(handler(cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('acme')))).rejects.toThrow(
      'this is the pool provisioner; it handles Custom::DatabaseBootstrap and Custom::PoolTenant only',
    );
  });
});

describe('tenant provisioner handler: bridge cell', () => {
  beforeAll(async () => {
    useCell('bridge', bridgeDb);
    await moto.resetRegistry();
  });

  test('Create builds the tenant schema at the requested version; Update migrates it in place, status untouched', async () => {
    await handler(bootstrap('bridge'));
    const created = await handler(
      cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('cyberdyne', { SchemaVersion: '1' })),
    );
    expect(created).toEqual({
      PhysicalResourceId: 'tenant-bridge-cyberdyne',
      Data: { TenantId: 'cyberdyne', Schema: 't_cyberdyne', SchemaVersion: '1', FromVersion: '0' },
    });
    expect(await moto.get('cyberdyne')).toMatchObject({ status: 'active', schemaVersion: 1 });
    const updated = await handler(
      cfnEvent('Update', 'Custom::BridgeTenant', bridgeTenant('cyberdyne', { SchemaVersion: '2' }), {
        physicalId: created.PhysicalResourceId,
        old: bridgeTenant('cyberdyne', { SchemaVersion: '1' }),
      }),
    );
    expect(updated.Data).toMatchObject({ SchemaVersion: '2', FromVersion: '1' });
    expect(updated.PhysicalResourceId).toBe(created.PhysicalResourceId);
    expect(await moto.get('cyberdyne')).toMatchObject({
      status: 'active',
      schemaVersion: 2,
      upgradeStatus: 'current',
    });
    const master = await bridgeDb.master();
    await master.query('BEGIN; SET LOCAL ROLE tenant_owner');
    const due = await master.query(
      "SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 't_cyberdyne.invoices'::regclass AND attname = 'due_on'",
    );
    await master.query('ROLLBACK');
    expect(due.rows[0].n).toBe(1);
  });

  test('a failing Update records its own failure; the tenant stays active at its version', async () => {
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
    const item = await moto.get('cyberdyne');
    expect(item).toMatchObject({ status: 'active', schemaVersion: 2, upgradeStatus: 'failed' });
    expect(item!.upgradeFailure).toContain('Update: bridge:cyberdyne is at schema version 2');
    expect(item!.failureReason).toBeUndefined();
  });

  test('a Create that cannot reach its database fails with the reason after bounded retries', async () => {
    process.env.DB_PORT = '1';
    try {
      const started = Date.now();
      await expect(
        handler(cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('wonka'))),
      ).rejects.toThrow(
        /Custom::BridgeTenant Create for tenant "wonka" failed: cannot reach the database at .*:1 after \d+ attempts over 2 s/,
      );
      expect(Date.now() - started).toBeLessThan(10000);
    } finally {
      useCell('bridge', bridgeDb);
    }
    expect(await moto.get('wonka')).toMatchObject({ status: 'failed', upgradeStatus: 'failed' });
    expect((await moto.get('wonka'))!.failureReason).toContain('cannot reach the database');
  });

  test('a fleet event migrates every tenant of the cell, records each new schemaVersion, and reports', async () => {
    const runner = await import('../../lambda/tenant-provisioner/fleet-entry');
    const fleet = (event: Record<string, unknown>) => runner.handler(event as never) as Promise<never>;
    // The custom-resource handler refuses fleet events (operators invoke the fleet runner only), and the runner
    // refuses anything else.
    await expect(provisioner.handler({ action: 'migrate-fleet' } as never)).rejects.toThrow(
      "a fleet event goes to the cell's fleet runner function (FleetRunner)",
    );
    await expect(runner.handler(bootstrap('bridge') as never)).rejects.toThrow(
      'the fleet runner accepts only fleet events',
    );
    await handler(
      cfnEvent('Create', 'Custom::BridgeTenant', bridgeTenant('soylent', { SchemaVersion: '1' })),
    );
    // Bad input is refused before any SQL, naming the field.
    await expect(fleet({ action: 'migrate-fleet', concurrency: 99 })).rejects.toThrow(
      'fleet event field "concurrency" is 99: a whole number from 1 to 16',
    );
    await expect(fleet({ action: 'migrate-fleet', canary: ['../x'] })).rejects.toThrow(
      'fleet event field "canary"',
    );
    const plan = (await fleet({ action: 'plan-fleet' })) as {
      plan: { target: string; from: number; action: string }[];
      done: number;
    };
    expect(plan.done).toBe(0);
    expect(plan.plan.filter((t) => t.action === 'migrate').map((t) => [t.target, t.from])).toEqual([
      ['bridge:cyberdyne', 2],
      ['bridge:soylent', 1],
    ]);
    expect(await moto.get('soylent')).toMatchObject({ schemaVersion: 1 }); // the plan changed nothing

    const logged = jest.spyOn(console, 'log');
    let report;
    let lines: string[];
    try {
      report = await fleet({ action: 'migrate-fleet', canary: ['soylent'] });
      lines = logged.mock.calls.map(([line]) => String(line));
    } finally {
      logged.mockRestore();
    }
    expect(report).toMatchObject({
      cell: 'bridge cell',
      action: 'migrate-fleet',
      toVersion: LATEST_VERSION,
      done: 2,
      failed: [],
      stoppedAfterCanary: false,
    });
    for (const id of ['cyberdyne', 'soylent']) {
      expect(await moto.get(id)).toMatchObject({ schemaVersion: LATEST_VERSION, upgradeStatus: 'current' });
    }
    // The counts, as CloudWatch metrics in the log (embedded metric format).
    const emf = lines.find((line) => line.includes('"_aws"'));
    expect(JSON.parse(emf!)).toMatchObject({ Cell: 'bridge cell', TargetsDone: 2, TargetsFailed: 0 });
    // A rerun has nothing to do.
    expect(await fleet({ action: 'migrate-fleet' })).toMatchObject({ targets: 2, done: 0, current: 2 });
    // A late or concurrent write never lowers a recorded version.
    const { recordSchemaVersion } = await import('../../lambda/tenant-provisioner/registry');
    const { readEnv } = await import('../../lambda/tenant-provisioner/request');
    expect(await recordSchemaVersion(readEnv(), 'soylent', 1)).toBe(false);
    expect(await recordSchemaVersion(readEnv(), 'nobody-here', LATEST_VERSION)).toBe(false);
    expect(await moto.get('soylent')).toMatchObject({ schemaVersion: LATEST_VERSION });
    expect(await moto.get('nobody-here')).toBeUndefined();
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
    expect(await moto.get('tyrell')).toMatchObject({ status: 'offboarded', dataRetained: false });
    const master = await bridgeDb.master();
    const left = await master.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 't_tyrell'");
    expect(left.rows[0].n).toBe(0);
    // In AWS app_bridge signs in with IAM; here it needs a password to try.
    await setRuntimePassword(master, 'app_bridge');
    const api = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: bridgeDb.poolAs('app_bridge'),
      model: 'bridge',
    });
    expect(await sqlstateOf(api.forTenant('tyrell').run(sql`SELECT 1`))).toBe('22023');
  });
});

describe('tenant provisioner handler: a tenant moving between the pool and bridge cells', () => {
  // Each cell's database is bootstrapped by the describe blocks above (jest runs them in order, in one process).
  const MOVE = 'arn:aws:states:us-east-1:111122223333:execution:tenantforge-onboarding:move_pool_x';
  const bridgeRequest = (id: string) =>
    JSON.stringify({
      id,
      name: `${id} Inc`,
      model: 'bridge',
      firstModel: 'pool',
      settings: { deletionPolicy: 'retain' },
    });
  const inCell = async <T>(model: 'pool' | 'bridge', work: () => Promise<T>): Promise<T> => {
    useCell(model, model === 'pool' ? poolDb : bridgeDb);
    return work();
  };
  const bridgeSchemaExists = async (id: string) => {
    const master = await bridgeDb.master();
    try {
      const r = await master.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [`t_${id}`]);
      return r.rowCount === 1;
    } finally {
      await master.end();
    }
  };
  const bridgeEvent = (type: 'Create' | 'Delete', id: string) =>
    cfnEvent(type, 'Custom::BridgeTenant', bridgeTenant(id, { Request: bridgeRequest(id) }), {
      physicalId: `tenant-bridge-${id}`,
    });

  beforeAll(async () => {
    await moto.resetRegistry();
  });

  test("the destination's Create builds the empty place, only the workflow's rollback removes it, the registry untouched", async () => {
    await inCell('pool', () => handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('wonka'))));
    const active = await moto.get('wonka');
    expect(active).toMatchObject({ status: 'active', model: 'pool' });
    await moto.put({ ...active!, status: 'moving', movingTo: 'bridge', lock: MOVE });
    const moving = await moto.get('wonka');

    const created = await inCell('bridge', () => handler(bridgeEvent('Create', 'wonka')));
    expect(created.Data).toMatchObject({ TenantId: 'wonka', Schema: 't_wonka' });
    expect(await bridgeSchemaExists('wonka')).toBe(true);
    // Nothing written: the registry still places the tenant in pool, moving, held by the move.
    expect(await moto.get('wonka')).toEqual(moving);

    // A deploy of the stack from a stale catalog drops the resource while the move goes on: the place is left as it
    // is (the switch may yet make it the tenant's).
    await inCell('bridge', () => handler(bridgeEvent('Delete', 'wonka')));
    expect(await bridgeSchemaExists('wonka')).toBe(true);
    expect(await moto.get('wonka')).toEqual(moving);
    // The workflow's rollback (the move marked aborted): the stack's deletion policy says retain, but this place
    // holds only a copy of the frozen source.
    await moto.put({ ...moving!, moveAborted: true });
    await inCell('bridge', () => handler(bridgeEvent('Delete', 'wonka')));
    expect(await bridgeSchemaExists('wonka')).toBe(false);
    expect(await moto.get('wonka')).toEqual({ ...moving, moveAborted: true });
    await moto.put({ ...moving! });
    expect(await poolStatus('wonka')).toBe('active');
  });

  test("once switched, the old cell's resource is refused on Create and Update and kept on Delete, whatever its policy", async () => {
    await inCell('bridge', () => handler(bridgeEvent('Create', 'wonka')));
    const moving = await moto.get('wonka');
    // The move's switch (the workflow's write).
    await moto.put({
      ...moving!,
      model: 'bridge',
      status: 'active',
      schema: 't_wonka',
      request: bridgeRequest('wonka'),
      movingTo: undefined,
      lock: undefined,
      keptCopy: 'pool',
    });
    const switched = await moto.get('wonka');
    const refusal =
      "refused: the registry places the tenant in another cell than this pool cell, so this is not its stack's current definition; nothing was changed";
    await inCell('pool', async () => {
      await expect(handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('wonka')))).rejects.toThrow(
        `Custom::PoolTenant Create for tenant "wonka" ${refusal}`,
      );
      await expect(
        handler(
          cfnEvent('Update', 'Custom::PoolTenant', poolTenant('wonka'), {
            physicalId: 'tenant-pool-wonka',
            old: poolTenant('wonka', { Name: 'Old' }),
          }),
        ),
      ).rejects.toThrow(`Custom::PoolTenant Update for tenant "wonka" ${refusal}`);
      // The move's last deploy drops the source's resource: its data stays, kept and unreachable.
      await handler(
        cfnEvent('Delete', 'Custom::PoolTenant', poolTenant('wonka', { DeletionPolicy: 'destroy' }), {
          physicalId: 'tenant-pool-wonka',
        }),
      );
    });
    expect(await poolStatus('wonka')).toBe('offboarded');
    expect(await bridgeSchemaExists('wonka')).toBe(true);
    expect(await moto.get('wonka')).toEqual(switched);

    // A deploy from a stale catalog (it still says pool) drops the bridge resource from the stack: an update's
    // cleanup, not the stack's deletion, so the tenant's data and entry are left as they are, whatever its policy.
    cloudformation.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'Tenant-wonka',
          StackStatus: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS',
          CreationTime: new Date(),
        },
      ],
    });
    await inCell('bridge', () =>
      handler(
        cfnEvent(
          'Delete',
          'Custom::BridgeTenant',
          bridgeTenant('wonka', { Request: bridgeRequest('wonka'), DeletionPolicy: 'destroy' }),
          { physicalId: 'tenant-bridge-wonka' },
        ),
      ),
    );
    expect(await bridgeSchemaExists('wonka')).toBe(true);
    expect(await moto.get('wonka')).toEqual(switched);
    cloudformation.on(DescribeStacksCommand).resolves({
      Stacks: [{ StackName: 'Tenant-x', StackStatus: 'DELETE_IN_PROGRESS', CreationTime: new Date() }],
    });

    // An Update of its new place whose request has lost what the move wrote (firstModel: a catalog entry written
    // before the move, edited to say bridge) is refused, and changes nothing; the request as the registry keeps it
    // (a release's update) goes through.
    const { firstModel, ...stale } = JSON.parse(bridgeRequest('wonka')) as Record<string, unknown>;
    expect(firstModel).toBe('pool');
    const update = (request: string) =>
      inCell('bridge', () =>
        handler(
          cfnEvent('Update', 'Custom::BridgeTenant', bridgeTenant('wonka', { Request: request }), {
            physicalId: 'tenant-bridge-wonka',
            old: bridgeTenant('wonka', { Request: bridgeRequest('wonka') }),
          }),
        ),
      );
    await expect(update(JSON.stringify(stale))).rejects.toThrow(
      `Custom::BridgeTenant Update for tenant "wonka" refused: its request says firstModel (none), the registry's pool (written by a move), so this is not its stack's current definition; nothing was changed`,
    );
    expect(await moto.get('wonka')).toEqual(switched);
    await update(bridgeRequest('wonka'));
    expect(await moto.get('wonka')).toMatchObject({
      model: 'bridge',
      status: 'active',
      request: bridgeRequest('wonka'),
    });
  });

  test("a cell's registry writes never land once the registry places the tenant in another cell (a switch raced them)", async () => {
    const { recordDone, recordFailure, recordStart, recordSchemaVersion } =
      await import('../../lambda/tenant-provisioner/registry');
    const { readEnv, parseRequest } = await import('../../lambda/tenant-provisioner/request');
    const switched = await moto.get('wonka');
    expect(switched).toMatchObject({ model: 'bridge', status: 'active' });
    useCell('pool', poolDb);
    const env = readEnv();
    const r = parseRequest(
      cfnEvent('Update', 'Custom::PoolTenant', poolTenant('wonka'), { physicalId: 'tenant-pool-wonka' }),
      env,
    );
    await recordStart(env, r, false);
    await recordDone(env, r, 'pool', false);
    await recordFailure(env, r, 'a stale update failed', false);
    expect(await recordSchemaVersion(env, 'wonka', LATEST_VERSION + 1)).toBe(false);
    expect(await moto.get('wonka')).toEqual(switched);
  });

  test("the source's Delete while the move holds the tenant keeps its data and writes nothing", async () => {
    await inCell('pool', () => handler(cfnEvent('Create', 'Custom::PoolTenant', poolTenant('slugworth'))));
    await moto.put({ ...(await moto.get('slugworth'))!, status: 'moving', movingTo: 'bridge', lock: MOVE });
    const moving = await moto.get('slugworth');
    await inCell('pool', () =>
      handler(
        cfnEvent('Delete', 'Custom::PoolTenant', poolTenant('slugworth', { DeletionPolicy: 'destroy' }), {
          physicalId: 'tenant-pool-slugworth',
        }),
      ),
    );
    expect(await poolStatus('slugworth')).toBe('offboarded');
    expect(await moto.get('slugworth')).toEqual(moving);
  });
});

describe("a shared cell's tenant resource Delete offboards only while its stack is deleted or its creation rolled back", () => {
  const statusIs = (StackStatus: string) =>
    cloudformation.on(DescribeStacksCommand).resolves({
      Stacks: [{ StackName: 'Tenant-x', StackStatus: StackStatus as never, CreationTime: new Date() }],
    });
  afterEach(() => statusIs('DELETE_IN_PROGRESS'));

  test.each([
    ['DELETE_IN_PROGRESS', 'stat-a', true],
    ['ROLLBACK_IN_PROGRESS', 'stat-b', true],
    ['UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', 'stat-c', false],
    ['UPDATE_ROLLBACK_IN_PROGRESS', 'stat-d', false],
    ['UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS', 'stat-e', false],
    ['IMPORT_ROLLBACK_IN_PROGRESS', 'stat-f', false],
  ])('%s (tenant %s): offboarded %s', async (status, id, offboards) => {
    useCell('pool', poolDb);
    const props = poolTenant(id, { DeletionPolicy: 'destroy' });
    await handler(cfnEvent('Create', 'Custom::PoolTenant', props));
    statusIs(status);
    await handler(cfnEvent('Delete', 'Custom::PoolTenant', props, { physicalId: `tenant-pool-${id}` }));
    expect(await poolStatus(id)).toBe(offboards ? undefined : 'active');
    expect((await moto.get(id))!.status).toBe(offboards ? 'offboarded' : 'active');
  });
});

describe('connection security', () => {
  test('connects with TLS and verifies the server certificate and host name by default', () => {
    const config = provisioner.connectionConfig(
      {
        model: 'pool',
        ownStack: 'Pool',
        connectSeconds: 120,
        statementTimeoutMs: 120000,
        host: 'pool-db.abc.us-east-1.rds.amazonaws.com',
        port: 5432,
        database: 'saas',
        secretArn: SECRET_ARN,
        contextKeySecretArn: KEY_SECRET_ARN,
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
    // Migrations never queue behind a long transaction: they wait at most lock_timeout, then retry.
    expect(config).toMatchObject({ lock_timeout: 5000, keepAlive: true });
  });
});
