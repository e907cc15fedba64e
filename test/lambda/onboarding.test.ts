import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CloudFormationClient,
  DescribeStackEventsCommand,
  ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import {
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  CreateDBClusterSnapshotCommand,
  CreateDBSnapshotCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBSnapshotsCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { Moto, startMoto } from '../helpers/moto';

// The onboarding workflow's Lambda steps. The registry is DynamoDB's API for real (moto), so conditional writes
// behave as they do in AWS; every other service is stubbed at the SDK boundary.
const cfn = mockClient(CloudFormationClient);
const ecs = mockClient(ECSClient);
const elb = mockClient(ElasticLoadBalancingV2Client);
const rds = mockClient(RDSClient);
const ssm = mockClient(SSMClient);
const sfn = mockClient(SFNClient);

let moto: Moto;
let steps: typeof import('../../lambda/onboarding');
let beginning: typeof import('../../lambda/onboarding/begin');
let userPoolId: string;
beforeAll(async () => {
  moto = await startMoto();
  userPoolId = await moto.createUserPool();
  process.env.USER_POOL_ID = userPoolId;
  steps = await import('../../lambda/onboarding');
  beginning = await import('../../lambda/onboarding/begin');
});
afterAll(async () => {
  await moto.stop();
});
beforeEach(async () => {
  [cfn, ecs, elb, rds, ssm, sfn].forEach((m) => m.reset());
  await moto.resetRegistry();
});

const EXEC_A = 'arn:aws:states:us-east-1:111122223333:execution:Workflow:a';
const EXEC_B = 'arn:aws:states:us-east-1:111122223333:execution:Workflow:b';
const OPS = 'arn:aws:iam::111122223333:role/ops';
const ADMIN = 'admin@initrode.example';
/** What the onboarding entry does once it has checked who asks (lambda/onboarding-entry tests that part). */
const begin = (
  request: Record<string, unknown>,
  execution = EXEC_A,
  action: 'onboard' | 'offboard' = 'onboard',
  approver = false,
) => {
  const who = { execution, requestedBy: OPS, approver };
  return action === 'onboard'
    ? beginning.beginOnboarding({ adminEmail: ADMIN, ...request }, who)
    : beginning.beginOffboarding(request, who);
};

describe('begin: onboarding', () => {
  test('accepts a new tenant, locks it for this execution and records the request and who made it', async () => {
    const r = await begin({
      tenantId: 'initrode',
      name: 'Initrode',
      model: 'silo',
      settings: { instanceClass: 't4g.large' },
      adminEmail: 'Admin@Initrode.example',
    });
    const request = JSON.stringify({
      id: 'initrode',
      name: 'Initrode',
      model: 'silo',
      settings: { instanceClass: 't4g.large' },
    });
    expect(r).toEqual({
      tenantId: 'initrode',
      model: 'silo',
      name: 'Initrode',
      hostname: 'initrode',
      stackName: 'Tenant-initrode',
      tenantRequest: request,
      restore: false,
      adminEmail: 'admin@initrode.example',
    });
    expect(await moto.get('initrode')).toMatchObject({
      status: 'provisioning',
      model: 'silo',
      lock: EXEC_A,
      request,
      requestedBy: OPS,
      deletionPolicy: 'retain',
    });
  });

  test.each([
    [{ settings: { multiAz: false } }, 'settings.multiAz false (a single-AZ database)'],
    [{ settings: { deletionPolicy: 'destroy' } }, 'settings.deletionPolicy "destroy"'],
    [
      { settings: { instanceClass: 'r6g.16xlarge' } },
      'settings.instanceClass "r6g.16xlarge" (outside t4g.small, t4g.medium, t4g.large, r6g.large, r7g.large)',
    ],
  ])(
    'a request outside the catalog rules (%j) needs an approver: refused from a requester, nothing written',
    async (extra, reason) => {
      const request = { tenantId: 'initrode', model: 'silo', ...extra };
      const refused = begin(request);
      await expect(refused).rejects.toThrow(beginning.ApprovalRequired);
      await expect(begin(request)).rejects.toThrow(`onboard request: tenant "initrode" asks for ${reason}`);
      expect(await moto.get('initrode')).toBeUndefined();
      await begin(request, EXEC_A, 'onboard', true);
      expect(await moto.get('initrode')).toMatchObject({
        status: 'provisioning',
        lock: EXEC_A,
        requestedBy: `${OPS} (approver)`,
      });
    },
  );

  test('a new tenant must name its first administrator', async () => {
    await expect(
      beginning.beginOnboarding(
        { tenantId: 'initrode', model: 'pool' },
        { execution: EXEC_A, requestedBy: OPS, approver: false },
      ),
    ).rejects.toThrow(
      `"adminEmail" is undefined: give the email address of the tenant's first administrator`,
    );
    await expect(begin({ tenantId: 'initrode', model: 'pool', adminEmail: 'not-an-email' })).rejects.toThrow(
      '"adminEmail" is "not-an-email"',
    );
    expect(await moto.get('initrode')).toBeUndefined();
  });

  test.each([
    [{ tenantId: "x'; drop", model: 'pool' }, 'onboard request refused: the request: field "id"'],
    [
      { tenantId: 'initrode', model: 'silo', settings: { backupRetentionDays: 1 } },
      'settings.backupRetentionDays" is 1',
    ],
    [{ tenantId: 'initrode', model: 'hybrid' }, 'field "model" is "hybrid"'],
    [
      { tenantId: 'initrode', model: 'silo', settings: { vpcCidr: '10.0.8.0/22' } },
      'overlaps the shared pool VPC',
    ],
  ])('rejects %j with nothing written', async (request, message) => {
    await expect(begin(request)).rejects.toThrow(steps.RequestRejected);
    await expect(begin(request)).rejects.toThrow(message);
    expect(await moto.get('initrode')).toBeUndefined();
  });

  test('a duplicate request is refused while the first holds the tenant', async () => {
    await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    await expect(begin({ tenantId: 'initrode', model: 'pool' }, EXEC_B)).rejects.toThrow(
      `tenant "initrode" is being changed by another request (${EXEC_A}): nothing was changed`,
    );
    expect(await moto.get('initrode')).toMatchObject({ lock: EXEC_A, status: 'provisioning' });
  });

  test('two requests that both pass validation: the conditional write admits one, refuses the other', async () => {
    // Both read the registry (no item: both pass validation) before either writes. The writes then reach moto one
    // at a time: DynamoDB serializes writes to one item, but moto's threaded server does not, and two conditional
    // writes it ran at once could both succeed (that made this test flaky, not the code).
    const send = DynamoDBClient.prototype.send;
    let reads = 0;
    let bothRead!: () => void;
    const readBoth = new Promise<void>((resolve) => (bothRead = resolve));
    let writes: Promise<unknown> = Promise.resolve();
    const spy = jest.spyOn(DynamoDBClient.prototype, 'send').mockImplementation(async function (
      this: DynamoDBClient,
      command: unknown,
    ) {
      const call = () => (send as (c: unknown) => Promise<unknown>).call(this, command);
      if (command instanceof GetItemCommand) {
        const out = await call();
        if (++reads === 2) bothRead();
        return out;
      }
      if (command instanceof UpdateItemCommand) {
        await readBoth;
        const turn = writes.then(call);
        writes = turn.catch(() => undefined);
        return turn;
      }
      return call();
    } as never);
    let results;
    try {
      results = await Promise.allSettled([
        begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A),
        begin({ tenantId: 'initrode', model: 'pool' }, EXEC_B),
      ]);
    } finally {
      spy.mockRestore();
    }
    expect(reads).toBe(2);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(steps.RequestRejected);
    const item = await moto.get('initrode');
    expect([EXEC_A, EXEC_B]).toContain(item!.lock);
  });

  test('an active tenant cannot be onboarded again', async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active' });
    await expect(begin({ tenantId: 'acme', model: 'pool' })).rejects.toThrow(
      'tenant "acme" already exists (model pool, status active)',
    );
  });

  test('a failed first onboarding can be retried in the same model', async () => {
    await moto.put({ tenantId: 'initrode', model: 'pool', status: 'failed', failureReason: 'deploy failed' });
    await begin({ tenantId: 'initrode', model: 'pool' });
    const item = await moto.get('initrode');
    expect(item).toMatchObject({ status: 'provisioning', lock: EXEC_A });
    expect(item!.failureReason).toBeUndefined();
  });

  test('a retired id is refused unless the request asks to restore that tenant, whose kept data comes back', async () => {
    await moto.put({
      tenantId: 'northwind',
      model: 'silo',
      status: 'offboarded',
      name: 'Northwind Traders',
      dataRetained: true,
      finalSnapshotId: 'northwind-final-20261127100000',
    });
    await expect(begin({ tenantId: 'northwind', model: 'silo' })).rejects.toThrow(
      'tenant id "northwind" belonged to a tenant that was offboarded, and ids are never reused for a new customer',
    );
    expect(await moto.get('northwind')).toMatchObject({ status: 'offboarded' });
    const r = await begin({ tenantId: 'northwind', model: 'silo', restore: true });
    expect(r.restore).toBe(true);
    expect(JSON.parse(r.tenantRequest as string)).toMatchObject({
      id: 'northwind',
      // The request named none: the tenant comes back with its own display name, not its id.
      name: 'Northwind Traders',
      restore: true,
      settings: { restoredFromSnapshot: 'northwind-final-20261127100000' },
    });
    // What the registry keeps is the tenant's definition (its database now comes from that snapshot, for good),
    // not this one request's restore.
    const kept = JSON.parse((await moto.get('northwind'))!.request!);
    expect(kept).not.toHaveProperty('restore');
    expect(kept.settings).toEqual({ restoredFromSnapshot: 'northwind-final-20261127100000' });
  });

  test('a final snapshot comes back only into the engine it was taken of (an Aurora cluster snapshot needs its profile)', async () => {
    await moto.put({
      tenantId: 'northwind',
      model: 'silo',
      status: 'offboarded',
      dataRetained: true,
      finalSnapshotId: 'northwind-final-20261127100000',
      request: JSON.stringify({
        id: 'northwind',
        name: 'N',
        model: 'silo',
        settings: { profile: 'idle-friendly' },
      }),
    });
    await expect(begin({ tenantId: 'northwind', model: 'silo', restore: true })).rejects.toThrow(
      'tenant "northwind" is restored from northwind-final-20261127100000, a snapshot of its Aurora cluster (profile "idle-friendly"), which the requested profile "standard" cannot restore: ask for "settings": { "profile": "idle-friendly" }; nothing was changed',
    );
    expect(await moto.get('northwind')).toMatchObject({ status: 'offboarded' });
    // idle-friendly is not highly available: an approver asks for it (as for a single-AZ database).
    const asked = {
      tenantId: 'northwind',
      model: 'silo',
      restore: true,
      settings: { profile: 'idle-friendly' },
    };
    await expect(begin(asked)).rejects.toThrow('only an approver may request it');
    const r = await begin(asked, EXEC_A, 'onboard', true);
    expect(JSON.parse(r.tenantRequest as string).settings).toEqual({
      profile: 'idle-friendly',
      restoredFromSnapshot: 'northwind-final-20261127100000',
    });
  });

  test('a disposable tenant whose data was deleted cannot be restored', async () => {
    await moto.put({ tenantId: 'initech-qa', model: 'silo', status: 'offboarded', dataRetained: false });
    await expect(begin({ tenantId: 'initech-qa', model: 'silo', restore: true })).rejects.toThrow(
      'it was disposable and its data was deleted',
    );
  });

  test('a silo range overlapping a silo the registry already holds is refused', async () => {
    await moto.put({
      tenantId: 'northwind',
      model: 'silo',
      status: 'active',
      request: JSON.stringify({
        id: 'northwind',
        name: 'N',
        model: 'silo',
        settings: { vpcCidr: '10.16.0.0/20' },
      }),
    });
    await expect(
      begin({ tenantId: 'initrode', model: 'silo', settings: { vpcCidr: '10.16.8.0/22' } }),
    ).rejects.toThrow('overlaps tenant "northwind" (10.16.0.0/20)');
    await expect(
      begin({ tenantId: 'initrode', model: 'silo', settings: { vpcCidr: '10.17.0.0/20' } }),
    ).resolves.toMatchObject({
      tenantId: 'initrode',
    });
  });

  test('so is one overlapping the silo a move out of it kept (its range is in use until a purge)', async () => {
    await moto.put({
      tenantId: 'globex',
      model: 'pool',
      status: 'active',
      keptCopy: 'silo',
      request: JSON.stringify({
        id: 'globex',
        name: 'G',
        model: 'pool',
        firstModel: 'silo',
        settings: { deletionPolicy: 'retain' },
        keptSilo: { id: 'globex', name: 'G', model: 'silo', settings: { vpcCidr: '10.18.0.0/20' } },
      }),
    });
    await expect(
      begin({ tenantId: 'hooli-2', model: 'silo', settings: { vpcCidr: '10.18.4.0/22' } }),
    ).rejects.toThrow('overlaps tenant "globex" (10.18.0.0/20)');
  });
});

describe('begin: a new tenant started from an archive (restoreFrom)', () => {
  const ARCHIVE = 'tenants/acme/20261128T030405Z-1a2b3c4d.tfa';

  test("only an approver may ask (the archive may be another customer's); the registry records it with the lock", async () => {
    const request = { tenantId: 'acme-eu', model: 'pool', restoreFrom: ARCHIVE };
    await expect(begin(request)).rejects.toThrow(beginning.ApprovalRequired);
    await expect(begin(request)).rejects.toThrow(
      `onboard request: tenant "acme-eu" asks for "restoreFrom" ${ARCHIVE} (the tenant starts with that archive's data)`,
    );
    expect(await moto.get('acme-eu')).toBeUndefined();
    const r = await begin(request, EXEC_A, 'onboard', true);
    expect(r).toMatchObject({ tenantId: 'acme-eu', model: 'pool', restore: false, restoreArchive: ARCHIVE });
    // The deploy job's request is the tenant's definition only: the archive is the workflow's business.
    expect(JSON.parse(r.tenantRequest as string)).not.toHaveProperty('restoreFrom');
    expect(await moto.get('acme-eu')).toMatchObject({
      status: 'provisioning',
      lock: EXEC_A,
      restoreArchive: ARCHIVE,
      requestedBy: `${OPS} (approver)`,
    });
    // accept hands it to the workflow from the registry, never from the execution's input.
    expect(
      await steps.handler({
        step: 'accept',
        execution: EXEC_A,
        input: { tenant: { ...r, restoreArchive: 'tenants/globex/forged.tfa' } },
      } as never),
    ).toMatchObject({ tenantId: 'acme-eu', action: 'onboard', restoreArchive: ARCHIVE });
    // Its last status change releases the lock and forgets the archive with it.
    await steps.handler({
      step: 'setStatus',
      tenantId: 'acme-eu',
      execution: EXEC_A,
      status: 'active',
      release: true,
    });
    const item = await moto.get('acme-eu');
    expect(item).toMatchObject({ status: 'active' });
    expect(item!.lock).toBeUndefined();
    expect(item!.restoreArchive).toBeUndefined();
  });

  test('an execution without restoreFrom is admitted without an archive, even after a failed one that had one', async () => {
    await moto.put({
      tenantId: 'acme-eu',
      model: 'pool',
      status: 'failed',
      failedDuring: 'onboarding',
      restoreArchive: ARCHIVE,
    });
    const r = await begin({ tenantId: 'acme-eu', model: 'pool' }, EXEC_B);
    expect(r).not.toHaveProperty('restoreArchive');
    expect((await moto.get('acme-eu'))!.restoreArchive).toBeUndefined();
    expect(
      await steps.handler({ step: 'accept', execution: EXEC_B, input: { tenant: r } } as never),
    ).not.toHaveProperty('restoreArchive');
  });

  test.each([
    [
      { model: 'pool', restoreFrom: '../../etc/passwd' },
      "give the key of an archive in the cell's archive bucket",
    ],
    [{ model: 'pool', restoreFrom: 42 }, '"restoreFrom" is 42'],
    [
      { model: 'silo', restoreFrom: ARCHIVE },
      "a new silo's archive bucket is its own, and holds no archive yet: name the shared cell",
    ],
    [
      { model: 'pool', restoreFrom: ARCHIVE, restore: true },
      '"restore": true brings back the tenant\'s own kept data, "restoreFrom" starts a new tenant from an archive',
    ],
  ])(
    'a bad restoreFrom (%j) is refused with the fix, even from an approver, and nothing is written',
    async (extra, why) => {
      await expect(begin({ tenantId: 'acme-eu', ...extra }, EXEC_A, 'onboard', true)).rejects.toThrow(why);
      expect(await moto.get('acme-eu')).toBeUndefined();
    },
  );

  test('a silo held with an archive (written by anything but the entry) is refused by accept', async () => {
    await moto.put({
      tenantId: 'northwind',
      model: 'silo',
      status: 'provisioning',
      lock: EXEC_A,
      restoreArchive: ARCHIVE,
    });
    await expect(
      steps.handler({
        step: 'accept',
        execution: EXEC_A,
        input: { tenant: { tenantId: 'northwind', model: 'silo' } },
      } as never),
    ).rejects.toThrow(
      `tenant "northwind" is a silo, which starts from a pool or bridge cell's archive only (restoreArchive ${ARCHIVE} names no cell)`,
    );
  });

  test('a reconciled execution forgets the archive with its lock', async () => {
    const r = await begin(
      { tenantId: 'acme-eu', model: 'bridge', restoreFrom: ARCHIVE },
      EXEC_A,
      'onboard',
      true,
    );
    sfn.on(DescribeExecutionCommand).resolves({ status: 'TIMED_OUT' });
    await steps.handler({
      step: 'reconcile',
      executionArn: EXEC_A,
      status: 'TIMED_OUT',
      input: JSON.stringify({ tenant: r }),
    });
    const item = await moto.get('acme-eu');
    expect(item).toMatchObject({ status: 'failed', failedDuring: 'onboarding' });
    expect(item!.lock).toBeUndefined();
    expect(item!.restoreArchive).toBeUndefined();
  });
});

describe('begin: offboarding', () => {
  test('takes the lock of an active tenant and returns what destroying its stack needs', async () => {
    await moto.put({
      tenantId: 'acme',
      model: 'pool',
      status: 'active',
      deletionPolicy: 'retain',
      request: '{"id":"acme"}',
    });
    expect(await begin({ tenantId: 'acme' }, EXEC_A, 'offboard')).toEqual({
      tenantId: 'acme',
      model: 'pool',
      stackName: 'Tenant-acme',
      tenantRequest: '{"id":"acme"}',
      deletionPolicy: 'retain',
      dataRetained: true,
    });
    expect(await moto.get('acme')).toMatchObject({ status: 'offboarding', lock: EXEC_A });
  });

  test('refuses an unknown tenant, an offboarded one, and one being onboarded', async () => {
    await expect(begin({ tenantId: 'nobody' }, EXEC_A, 'offboard')).rejects.toThrow(
      'tenant "nobody" is unknown',
    );
    await moto.put({ tenantId: 'gone', model: 'pool', status: 'offboarded' });
    await expect(begin({ tenantId: 'gone' }, EXEC_A, 'offboard')).rejects.toThrow('already offboarded');
    await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    await expect(begin({ tenantId: 'initrode' }, EXEC_B, 'offboard')).rejects.toThrow(
      `is being changed by another request (${EXEC_A})`,
    );
    expect(await moto.get('initrode')).toMatchObject({ status: 'provisioning', lock: EXEC_A });
  });
});

describe('accept: the first step admits only an execution the entry locked the tenant for', () => {
  const accept = (execution: string, input: Record<string, unknown>) =>
    steps.handler({ step: 'accept', execution, input } as never);

  test('an execution holding the lock is admitted, with what it does taken from the registry', async () => {
    const tenant = await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    const r = await accept(EXEC_A, { action: 'onboard', tenant });
    expect(r).toEqual({
      tenantId: 'initrode',
      model: 'pool',
      action: 'onboard',
      stackName: 'Tenant-initrode',
      hostname: 'initrode',
      tenantRequest: tenant.tenantRequest,
      restore: false,
      deletionPolicy: 'retain',
      dataRetained: true,
    });
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: '{"id":"acme"}' });
    const leaving = await begin({ tenantId: 'acme' }, EXEC_B, 'offboard');
    expect(await accept(EXEC_B, { tenant: leaving })).toMatchObject({
      tenantId: 'acme',
      action: 'offboard',
      tenantRequest: '{"id":"acme"}',
    });
  });

  test('a StartExecution from anyone else (forged input, another execution, no lock) changes nothing', async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: '{"id":"acme"}' });
    const before = await moto.get('acme');
    // Straight to the state machine, bypassing the entry: nothing holds acme for this execution.
    await expect(
      accept(EXEC_A, { action: 'offboard', tenant: { tenantId: 'acme', model: 'pool' } }),
    ).rejects.toThrow(
      `execution ${EXEC_A} does not hold tenant "acme" (it was not accepted by the onboarding entry): nothing was changed`,
    );
    await expect(accept(EXEC_A, { action: 'onboard', request: { tenantId: 'acme' } })).rejects.toThrow(
      'this execution was not started by the onboarding entry',
    );
    await expect(accept(EXEC_A, { tenant: { tenantId: "acme'; --", model: 'pool' } })).rejects.toThrow(
      steps.RequestRejected,
    );
    // Another execution's lock is refused; the holder's forged fields are ignored (all from the registry).
    const tenant = await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    await expect(accept(EXEC_B, { tenant })).rejects.toThrow(`execution ${EXEC_B} does not hold`);
    const forged = {
      ...tenant,
      tenantRequest: '{"id":"initrode","model":"pool","settings":{"x":1}}',
      adminEmail: 'attacker@evil.example',
      restore: true,
    };
    const admitted = await accept(EXEC_A, { tenant: forged });
    expect(admitted).toMatchObject({ tenantRequest: tenant.tenantRequest, restore: false });
    expect(admitted).not.toHaveProperty('adminEmail');
    expect(await moto.get('acme')).toEqual(before);
  });
});

describe("a tenant's users (Cognito's API, moto)", () => {
  const invite = (tenantId: string, execution = EXEC_A) =>
    steps.handler({ step: 'inviteAdmin', tenantId, execution });
  const activate = (tenantId: string, execution = EXEC_A) =>
    steps.handler({ step: 'setStatus', tenantId, execution, status: 'active', release: true });

  test('onboarding invites the administrator its request named, with the tenant claim set by the platform', async () => {
    await begin({ tenantId: 'initrode', model: 'pool', adminEmail: 'boss@initrode.example' });
    expect(await invite('initrode')).toEqual({ invited: 'boss@initrode.example' });
    const user = await moto.user(userPoolId, 'boss@initrode.example');
    expect(user).toMatchObject({ enabled: true, attributes: { 'custom:tenant_id': 'initrode' } });
    // A retried step finds its own user and carries on.
    await expect(invite('initrode')).resolves.toEqual({ invited: 'boss@initrode.example' });
  });

  test('invoked directly, the steps change nothing for a tenant the execution does not hold', async () => {
    // The event names only a tenant and an execution; the address, and the right to act, come from the registry.
    await expect(
      steps.handler({
        step: 'inviteAdmin',
        tenantId: 'initrode',
        execution: EXEC_A,
        tenant: { adminEmail: 'attacker@evil.example' },
      } as never),
    ).rejects.toThrow(steps.LockLost);
    await begin({ tenantId: 'acme', model: 'pool', adminEmail: 'a@acme.example' });
    await invite('acme');
    await activate('acme');
    await expect(invite('acme')).rejects.toThrow(
      `tenant "acme" is not held by execution ${EXEC_A} while provisioning: nothing was changed`,
    );
    await expect(
      steps.handler({ step: 'disableUsers', tenantId: 'acme', execution: EXEC_B }),
    ).rejects.toThrow(steps.LockLost);
    await expect(
      steps.handler({ step: 'finalSnapshot', tenantId: 'acme', execution: EXEC_B }),
    ).rejects.toThrow(steps.LockLost);
    expect(await moto.user(userPoolId, 'attacker@evil.example')).toBeUndefined();
    expect((await moto.user(userPoolId, 'a@acme.example'))!.enabled).toBe(true);
    expect(rds.calls()).toHaveLength(0);
  });

  test("an email that is already another tenant's user is refused, and that user is untouched", async () => {
    await begin({ tenantId: 'acme', model: 'pool', adminEmail: 'shared@example.com' });
    await invite('acme');
    await begin({ tenantId: 'initrode', model: 'pool', adminEmail: 'shared@example.com' }, EXEC_B);
    await expect(invite('initrode', EXEC_B)).rejects.toThrow(
      'shared@example.com is already a user of another tenant',
    );
    expect((await moto.user(userPoolId, 'shared@example.com'))!.attributes['custom:tenant_id']).toBe('acme');
  });

  test("offboarding disables every user of the tenant and no other tenant's; a restore enables them", async () => {
    for (const [tenantId, adminEmail] of [
      ['umbrella', 'a@umbrella.example'],
      ['hooli', 'a@hooli.example'],
    ]) {
      await begin({ tenantId, model: 'bridge', adminEmail });
      await invite(tenantId);
      await activate(tenantId);
    }
    await begin({ tenantId: 'umbrella' }, EXEC_B, 'offboard');
    expect(await steps.handler({ step: 'disableUsers', tenantId: 'umbrella', execution: EXEC_B })).toEqual({
      disabled: 1,
    });
    expect((await moto.user(userPoolId, 'a@umbrella.example'))!.enabled).toBe(false);
    expect((await moto.user(userPoolId, 'a@hooli.example'))!.enabled).toBe(true);
    await steps.handler({
      step: 'setStatus',
      tenantId: 'umbrella',
      execution: EXEC_B,
      status: 'offboarded',
      release: true,
      dataRetained: true,
    });
    // A restore names no administrator: the tenant's own users come back.
    await begin({ tenantId: 'umbrella', model: 'bridge', restore: true, adminEmail: undefined });
    expect(await invite('umbrella')).toEqual({ enabled: 1 });
    expect((await moto.user(userPoolId, 'a@umbrella.example'))!.enabled).toBe(true);
  });
});

describe('retries and failures cannot hand a tenant to someone else', () => {
  test('a retried onboarding keeps the administrator its first request named', async () => {
    await begin({ tenantId: 'initrode', model: 'pool', adminEmail: 'boss@initrode.example' });
    await steps.handler({
      step: 'setStatus',
      tenantId: 'initrode',
      execution: EXEC_A,
      status: 'failed',
      release: true,
    });
    await expect(
      begin({ tenantId: 'initrode', model: 'pool', adminEmail: 'attacker@evil.example' }, EXEC_B),
    ).rejects.toThrow(
      'tenant "initrode" was requested with administrator boss@initrode.example; a retry or restore cannot name another (attacker@evil.example)',
    );
    const retried = await begin({ tenantId: 'initrode', model: 'pool', adminEmail: undefined }, EXEC_B);
    expect(retried.adminEmail).toBe('boss@initrode.example');
  });

  test('a tenant whose offboarding failed can only be offboarded again, never onboarded', async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: '{"id":"acme"}' });
    await begin({ tenantId: 'acme' }, EXEC_A, 'offboard');
    await steps.handler({
      step: 'setStatus',
      tenantId: 'acme',
      execution: EXEC_A,
      status: 'failed',
      release: true,
    });
    expect(await moto.get('acme')).toMatchObject({ status: 'failed', failedDuring: 'offboarding' });
    await expect(begin({ tenantId: 'acme', model: 'pool' }, EXEC_B)).rejects.toThrow(
      'tenant "acme" failed while it was being offboarded',
    );
    await expect(begin({ tenantId: 'acme' }, EXEC_B, 'offboard')).resolves.toMatchObject({
      tenantId: 'acme',
    });
  });

  test("a request cannot name a snapshot to restore from (it could be another tenant's)", async () => {
    await expect(
      begin({
        tenantId: 'evil',
        model: 'silo',
        settings: { restoredFromSnapshot: 'northwind-final-20261127100000' },
      }),
    ).rejects.toThrow('settings.restoredFromSnapshot is set by the platform when it restores a tenant');
    expect(await moto.get('evil')).toBeUndefined();
  });
});

describe('setStatus and reconcile', () => {
  test('status changes need the lock; the last one releases it and clears an old failure', async () => {
    await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    await expect(
      steps.handler({
        step: 'setStatus',
        tenantId: 'initrode',
        execution: EXEC_B,
        status: 'active',
        release: true,
      }),
    ).rejects.toThrow(steps.LockLost);
    expect(await moto.get('initrode')).toMatchObject({ status: 'provisioning', lock: EXEC_A });
    await steps.handler({
      step: 'setStatus',
      tenantId: 'initrode',
      execution: EXEC_A,
      status: 'active',
      release: true,
    });
    const item = await moto.get('initrode');
    expect(item).toMatchObject({ status: 'active' });
    expect(item!.lock).toBeUndefined();
    // The same last write again (its answer was lost and Step Functions retried it) finds its work done.
    const again = { step: 'setStatus', tenantId: 'initrode', execution: EXEC_A, release: true } as const;
    await expect(steps.handler({ ...again, status: 'active' })).resolves.toMatchObject({ already: true });
    // Another execution's same write is not: the release was not its own.
    await expect(steps.handler({ ...again, execution: EXEC_B, status: 'active' })).rejects.toThrow(
      steps.LockLost,
    );
    // Anything else still needs the lock: another status, or no release.
    await expect(steps.handler({ ...again, status: 'failed' })).rejects.toThrow(steps.LockLost);
    await expect(
      steps.handler({ step: 'setStatus', tenantId: 'initrode', execution: EXEC_A, status: 'active' }),
    ).rejects.toThrow(steps.LockLost);
    expect(await moto.get('initrode')).toMatchObject({ status: 'active' });
  });

  test('records a failure with its reason and what the tenant was going through', async () => {
    await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    await steps.handler({
      step: 'setStatus',
      tenantId: 'initrode',
      execution: EXEC_A,
      status: 'failed',
      release: true,
      reason: 'Tenant-initrode: Tenant (Custom::PoolTenant) CREATE_FAILED: boom',
    });
    expect(await moto.get('initrode')).toMatchObject({
      status: 'failed',
      failedDuring: 'onboarding',
      failureReason: 'Tenant-initrode: Tenant (Custom::PoolTenant) CREATE_FAILED: boom',
    });
  });

  const ended = { tenant: { tenantId: 'initrode', model: 'pool' } };

  test('an execution that timed out holding its tenant leaves it failed with the reason, never provisioning', async () => {
    await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    sfn.on(DescribeExecutionCommand, { executionArn: EXEC_A }).resolves({ status: 'TIMED_OUT' } as never);
    const r = await steps.handler({
      step: 'reconcile',
      executionArn: EXEC_A,
      status: 'TIMED_OUT',
      input: JSON.stringify({ action: 'onboard', ...ended }),
    });
    expect(r).toEqual({ reconciled: true, tenantId: 'initrode' });
    const item = await moto.get('initrode');
    expect(item).toMatchObject({ status: 'failed', failedDuring: 'onboarding' });
    expect(item!.failureReason).toContain(`the workflow execution ${EXEC_A} ended TIMED_OUT`);
    expect(item!.lock).toBeUndefined();
  });

  test('a reconcile event for an execution that is still running (a forged one) changes nothing', async () => {
    await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    sfn.on(DescribeExecutionCommand, { executionArn: EXEC_A }).resolves({ status: 'RUNNING' } as never);
    const r = await steps.handler({
      step: 'reconcile',
      executionArn: EXEC_A,
      status: 'ABORTED',
      input: JSON.stringify(ended),
    });
    expect(r).toMatchObject({ reconciled: false, why: `${EXEC_A} is still running` });
    expect(await moto.get('initrode')).toMatchObject({ status: 'provisioning', lock: EXEC_A });
  });

  test('reconciling an execution that already recorded its end changes nothing', async () => {
    await begin({ tenantId: 'initrode', model: 'pool' }, EXEC_A);
    await steps.handler({
      step: 'setStatus',
      tenantId: 'initrode',
      execution: EXEC_A,
      status: 'active',
      release: true,
    });
    sfn.on(DescribeExecutionCommand).resolves({ status: 'FAILED' } as never);
    const r = await steps.handler({
      step: 'reconcile',
      executionArn: EXEC_A,
      status: 'FAILED',
      input: JSON.stringify(ended),
    });
    expect(r).toEqual({ reconciled: false, tenantId: 'initrode' });
    expect(await moto.get('initrode')).toMatchObject({ status: 'active' });
  });
});

describe('failureReason', () => {
  test("reports CloudFormation's first real failure, not the cancellations that follow it", async () => {
    cfn.on(DescribeStackEventsCommand, { StackName: 'Tenant-acme' }).resolves({
      StackEvents: [
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
    expect(await steps.handler({ step: 'failureReason', tenantId: 'acme' })).toEqual({
      reason:
        'Tenant-acme: Tenant (Custom::PoolTenant) CREATE_FAILED: Custom::PoolTenant Create for tenant "acme" failed: connection refused',
    });
  });

  test("falls back to the workflow's error when the stack was never created", async () => {
    cfn.on(DescribeStackEventsCommand).rejects(new Error('Stack with id Tenant-acme does not exist'));
    expect(
      await steps.handler({
        step: 'failureReason',
        tenantId: 'acme',
        error: { Error: 'States.TaskFailed', Cause: JSON.stringify({ Build: { BuildStatus: 'FAILED' } }) },
      }),
    ).toEqual({ reason: 'Tenant-acme: States.TaskFailed: build FAILED' });
  });
});

describe('finalSnapshot', () => {
  test("snapshots the silo tenant's database, tagged, and modifies nothing (the stack lifts its own protection)", async () => {
    cfn.on(ListStackResourcesCommand, { StackName: 'Tenant-northwind' }).resolves({
      StackResourceSummaries: [
        {
          LogicalResourceId: 'CellDatabaseInstance',
          PhysicalResourceId: 'tenant-northwind-db',
          ResourceType: 'AWS::RDS::DBInstance',
          ResourceStatus: 'CREATE_COMPLETE',
          LastUpdatedTimestamp: new Date(),
        },
      ],
    });
    rds.on(CreateDBSnapshotCommand).resolves({});
    await moto.put({ tenantId: 'northwind', model: 'silo', status: 'offboarding', lock: EXEC_A });
    const r = await steps.handler({ step: 'finalSnapshot', tenantId: 'northwind', execution: EXEC_A });
    expect(r.snapshotId).toMatch(/^northwind-final-\d{14}$/);
    expect(rds.commandCalls(CreateDBSnapshotCommand)[0].args[0].input).toEqual({
      DBInstanceIdentifier: 'tenant-northwind-db',
      DBSnapshotIdentifier: r.snapshotId,
      Tags: [
        { Key: 'tenant-id', Value: 'northwind' },
        { Key: 'purpose', Value: 'offboarding-final-snapshot' },
      ],
    });
    expect(rds.calls().map((c) => c.args[0].constructor.name)).toEqual(['CreateDBSnapshotCommand']);

    rds.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [{ Status: 'creating' }] });
    expect(await steps.handler({ step: 'snapshotStatus', snapshotId: r.snapshotId as string })).toMatchObject(
      {
        available: false,
      },
    );
    rds.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [{ Status: 'available' }] });
    expect(await steps.handler({ step: 'snapshotStatus', snapshotId: r.snapshotId as string })).toMatchObject(
      {
        available: true,
      },
    );
  });
});

describe('finalSnapshot of an Aurora silo (the idle-friendly profile)', () => {
  test('snapshots the cluster, not its writer instance, tagged the same way, and watches the cluster snapshot', async () => {
    cfn.on(ListStackResourcesCommand, { StackName: 'Tenant-northwind' }).resolves({
      StackResourceSummaries: [
        {
          LogicalResourceId: 'CellDatabaseClusterWriter',
          PhysicalResourceId: 'tenant-northwind-writer',
          ResourceType: 'AWS::RDS::DBInstance',
          ResourceStatus: 'CREATE_COMPLETE',
          LastUpdatedTimestamp: new Date(),
        },
        {
          LogicalResourceId: 'CellDatabaseCluster',
          PhysicalResourceId: 'tenant-northwind-cluster',
          ResourceType: 'AWS::RDS::DBCluster',
          ResourceStatus: 'CREATE_COMPLETE',
          LastUpdatedTimestamp: new Date(),
        },
      ],
    });
    rds.on(CreateDBClusterSnapshotCommand).resolves({});
    await moto.put({ tenantId: 'northwind', model: 'silo', status: 'offboarding', lock: EXEC_A });
    const r = await steps.handler({ step: 'finalSnapshot', tenantId: 'northwind', execution: EXEC_A });
    expect(r).toMatchObject({ kind: 'cluster', dbClusterId: 'tenant-northwind-cluster' });
    expect(r.snapshotId).toMatch(/^northwind-final-\d{14}$/);
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)[0].args[0].input).toEqual({
      DBClusterIdentifier: 'tenant-northwind-cluster',
      DBClusterSnapshotIdentifier: r.snapshotId,
      Tags: [
        { Key: 'tenant-id', Value: 'northwind' },
        { Key: 'purpose', Value: 'offboarding-final-snapshot' },
      ],
    });
    expect(rds.calls().map((c) => c.args[0].constructor.name)).toEqual(['CreateDBClusterSnapshotCommand']);

    const status = () =>
      steps.handler({ step: 'snapshotStatus', snapshotId: r.snapshotId as string, kind: 'cluster' });
    rds.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [{ Status: 'creating' }] });
    expect(await status()).toMatchObject({ available: false, status: 'creating' });
    rds.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [{ Status: 'available' }] });
    expect(await status()).toMatchObject({ available: true });
    rds.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [{ Status: 'failed' }] });
    await expect(status()).rejects.toThrow(`final snapshot ${r.snapshotId as string} failed`);
    expect(rds.commandCalls(DescribeDBSnapshotsCommand)).toHaveLength(0);
  });

  test("finds the database past the first 100 of the stack's resources (a silo's stack has 110): every page is read", async () => {
    const filler = Array.from({ length: 100 }, (_, i) => ({
      LogicalResourceId: `R${i}`,
      ResourceType: 'AWS::EC2::Route',
      ResourceStatus: 'CREATE_COMPLETE' as const,
      LastUpdatedTimestamp: new Date(),
    }));
    cfn
      .on(ListStackResourcesCommand, { StackName: 'Tenant-northwind', NextToken: undefined })
      .resolves({ StackResourceSummaries: filler, NextToken: 'page-2' });
    cfn.on(ListStackResourcesCommand, { StackName: 'Tenant-northwind', NextToken: 'page-2' }).resolves({
      StackResourceSummaries: [
        {
          LogicalResourceId: 'CellDatabaseInstance',
          PhysicalResourceId: 'tenant-northwind-db',
          ResourceType: 'AWS::RDS::DBInstance',
          ResourceStatus: 'CREATE_COMPLETE',
          LastUpdatedTimestamp: new Date(),
        },
      ],
    });
    rds.on(CreateDBSnapshotCommand).resolves({});
    await moto.put({ tenantId: 'northwind', model: 'silo', status: 'offboarding', lock: EXEC_A });
    await expect(
      steps.handler({ step: 'finalSnapshot', tenantId: 'northwind', execution: EXEC_A }),
    ).resolves.toMatchObject({ kind: 'instance' });
    expect(rds.commandCalls(CreateDBSnapshotCommand)[0].args[0].input.DBInstanceIdentifier).toBe(
      'tenant-northwind-db',
    );
  });

  test('a stack with no database is an error naming the stack', async () => {
    cfn
      .on(ListStackResourcesCommand, { StackName: 'Tenant-northwind' })
      .resolves({ StackResourceSummaries: [] });
    await moto.put({ tenantId: 'northwind', model: 'silo', status: 'offboarding', lock: EXEC_A });
    await expect(
      steps.handler({ step: 'finalSnapshot', tenantId: 'northwind', execution: EXEC_A }),
    ).rejects.toThrow('Tenant-northwind has no database (RDS instance or Aurora cluster) to snapshot');
  });
});

describe('checkReady', () => {
  const service = {
    cluster: 'pool-cluster',
    service: 'pool-api',
    targetGroupArn: 'arn:aws:elasticloadbalancing:tg/api',
  };
  const ready = () => steps.handler({ step: 'checkReady', tenantId: 'acme', model: 'pool' });

  test("decides from AWS's own view of the service: steady deployment and a healthy target", async () => {
    ssm.on(GetParameterCommand).rejects(new Error('ParameterNotFound'));
    await expect(ready()).rejects.toThrow(steps.NotReady);
    ssm
      .on(GetParameterCommand, { Name: '/tenantforge/pool/api-service' })
      .resolves({ Parameter: { Value: JSON.stringify(service) } });
    const describe = (rolloutState: string, runningCount: number) =>
      ecs.on(DescribeServicesCommand, { cluster: 'pool-cluster', services: ['pool-api'] }).resolves({
        services: [
          {
            desiredCount: 2,
            runningCount,
            deployments: [{ status: 'PRIMARY', rolloutState: rolloutState as never }],
          },
        ],
      });
    describe('IN_PROGRESS', 1);
    await expect(ready()).rejects.toThrow('deployment IN_PROGRESS, 1 of 2 tasks running');
    describe('COMPLETED', 2);
    elb
      .on(DescribeTargetHealthCommand)
      .resolves({ TargetHealthDescriptions: [{ TargetHealth: { State: 'initial' } }] });
    await expect(ready()).rejects.toThrow('no healthy load balancer target yet (initial)');
    elb.on(DescribeTargetHealthCommand).resolves({
      TargetHealthDescriptions: [
        { TargetHealth: { State: 'healthy' } },
        { TargetHealth: { State: 'healthy' } },
      ],
    });
    await expect(ready()).resolves.toEqual({ ready: true, runningTasks: 2, healthyTargets: 2 });
  });

  test('a failed deployment is not retried as not-ready', async () => {
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: JSON.stringify(service) } });
    ecs.on(DescribeServicesCommand).resolves({
      services: [
        {
          desiredCount: 2,
          runningCount: 0,
          deployments: [{ status: 'PRIMARY', rolloutState: 'FAILED', rolloutStateReason: 'circuit breaker' }],
        },
      ],
    });
    await expect(ready()).rejects.toThrow(steps.DeploymentFailed);
    await expect(ready()).rejects.toThrow('its deployment failed: circuit breaker');
  });

  test('with a DNS name, readiness is its /ready over verified TLS', async () => {
    await expect(
      steps.handler({ step: 'checkReady', tenantId: 'acme', model: 'pool', host: 'acme.invalid' }),
    ).rejects.toThrow('https://acme.invalid/ready did not answer');
  });
});

describe('bundles', () => {
  test.each(['onboarding', 'onboarding-entry', 'tenant-provisioner'])(
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

describe('a move between the pool and bridge cells: accept, the switch, reconcile', () => {
  const kept = JSON.stringify({
    id: 'acme',
    name: 'Acme',
    model: 'pool',
    settings: { deletionPolicy: 'retain', hostname: 'ac' },
  });
  const beginMove = async (execution = EXEC_A) => {
    await moto.put({
      tenantId: 'acme',
      model: 'pool',
      status: 'active',
      schema: 'pool',
      schemaVersion: 3,
      request: kept,
    });
    return beginning.beginMove(
      { tenantId: 'acme', to: 'bridge' },
      { execution, requestedBy: OPS, approver: true },
    );
  };

  test('accept gives the deploys the request as it is, with its place in the other cell added, and as moved', async () => {
    const tenant = await beginMove();
    const accepted = await steps.handler({ step: 'accept', execution: EXEC_A, input: { tenant } });
    const moved = JSON.stringify({
      id: 'acme',
      name: 'Acme',
      model: 'bridge',
      firstModel: 'pool',
      settings: { deletionPolicy: 'retain', hostname: 'ac' },
    });
    expect(accepted).toEqual({
      tenantId: 'acme',
      model: 'pool',
      movingTo: 'bridge',
      action: 'move',
      stackName: 'Tenant-acme',
      hostname: 'ac',
      tenantRequest: kept,
      moveRequest: JSON.stringify({ ...JSON.parse(kept), movingTo: 'bridge' }),
      movedRequest: moved,
    });
    // Another execution is refused, with nothing changed.
    await expect(steps.handler({ step: 'accept', execution: EXEC_B, input: { tenant } })).rejects.toThrow(
      `execution ${EXEC_B} does not hold tenant "acme"`,
    );
  });

  test('the switch needs the lock: served by the other cell, its old place kept, released; a retry finds it done', async () => {
    await beginMove();
    const switched = { step: 'switchModel', tenantId: 'acme', schemaVersion: 4 } as const;
    await expect(steps.handler({ ...switched, execution: EXEC_B })).rejects.toThrow(steps.LockLost);
    expect(await moto.get('acme')).toMatchObject({ status: 'moving', model: 'pool', lock: EXEC_A });
    await expect(steps.handler({ ...switched, execution: EXEC_A })).resolves.toEqual({
      tenantId: 'acme',
      model: 'bridge',
      keptCopy: 'pool',
    });
    const item = await moto.get('acme');
    expect(item).toMatchObject({
      status: 'active',
      model: 'bridge',
      schema: 't_acme',
      schemaVersion: 4,
      keptCopy: 'pool',
      releasedBy: EXEC_A,
      request: JSON.stringify({
        id: 'acme',
        name: 'Acme',
        model: 'bridge',
        firstModel: 'pool',
        settings: { deletionPolicy: 'retain', hostname: 'ac' },
      }),
    });
    expect(item!.lock).toBeUndefined();
    expect(item!.movingTo).toBeUndefined();
    // Its answer lost, the same switch again finds its own work done; another execution's does not.
    await expect(steps.handler({ ...switched, execution: EXEC_A })).resolves.toMatchObject({ already: true });
    await expect(steps.handler({ ...switched, execution: EXEC_B })).rejects.toThrow(steps.LockLost);
    expect(await moto.get('acme')).toEqual(item);
  });

  test('a rollback is marked only by the execution that holds the move, never after its switch; the release clears it', async () => {
    await beginMove();
    const abort = { step: 'abortMove', tenantId: 'acme' } as const;
    await expect(steps.handler({ ...abort, execution: EXEC_B })).rejects.toThrow(steps.LockLost);
    expect((await moto.get('acme'))!.moveAborted).toBeUndefined();
    await expect(steps.handler({ ...abort, execution: EXEC_A })).resolves.toEqual({
      tenantId: 'acme',
      moveAborted: true,
      moveSilo: 'none',
    });
    expect(await moto.get('acme')).toMatchObject({ status: 'moving', moveAborted: true, lock: EXEC_A });
    await steps.handler({
      step: 'setStatus',
      tenantId: 'acme',
      execution: EXEC_A,
      status: 'active',
      release: true,
    });
    expect((await moto.get('acme'))!.moveAborted).toBeUndefined();
    // Switched: nothing to roll back.
    await beginMove(EXEC_B);
    await steps.handler({ step: 'switchModel', tenantId: 'acme', execution: EXEC_B });
    await expect(steps.handler({ ...abort, execution: EXEC_B })).rejects.toThrow(steps.LockLost);
    expect((await moto.get('acme'))!.moveAborted).toBeUndefined();
  });

  test('a move into a silo of a named profile: checked, recorded, built and switched with it; a move sent again keeps it', async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', schema: 'pool', request: kept });
    const approver = (execution: string) => ({ execution, requestedBy: OPS, approver: true });
    const before = await moto.get('acme');
    for (const [request, message] of [
      [{ to: 'bridge', profile: 'production' }, '"profile" is "production", but a profile is a silo\'s'],
      [
        { to: 'silo', profile: 'cheap' },
        '"profile" is "cheap": use one of standard, production, idle-friendly',
      ],
    ] as const) {
      await expect(beginning.beginMove({ tenantId: 'acme', ...request }, approver(EXEC_A))).rejects.toThrow(
        message,
      );
    }
    expect(await moto.get('acme')).toEqual(before);
    const tenant = await beginning.beginMove(
      { tenantId: 'acme', to: 'silo', profile: 'idle-friendly' },
      approver(EXEC_A),
    );
    expect(await moto.get('acme')).toMatchObject({
      status: 'moving',
      movingTo: 'silo',
      moveProfile: 'idle-friendly',
    });
    const accepted = await steps.handler({ step: 'accept', execution: EXEC_A, input: { tenant } });
    const moved = JSON.stringify({
      id: 'acme',
      name: 'Acme',
      model: 'silo',
      firstModel: 'pool',
      settings: {
        deletionPolicy: 'retain',
        hostname: 'ac',
        profile: 'idle-friendly',
        backupRetentionDays: 14,
      },
    });
    expect(accepted).toMatchObject({
      moveRequest: JSON.stringify({ ...JSON.parse(kept), movingTo: 'silo', movingProfile: 'idle-friendly' }),
      movedRequest: moved,
    });
    // Its rollback failed: a move sent again finishes it into the same profile's silo, and only that.
    await steps.handler({
      step: 'setStatus',
      tenantId: 'acme',
      execution: EXEC_A,
      status: 'moving',
      release: true,
    });
    expect((await moto.get('acme'))!.moveProfile).toBe('idle-friendly');
    for (const profile of [undefined, 'production']) {
      await expect(
        beginning.beginMove(
          { tenantId: 'acme', to: 'silo', ...(profile ? { profile } : {}) },
          approver(EXEC_B),
        ),
      ).rejects.toThrow('send the same move again with --profile idle-friendly to finish it');
    }
    await beginning.beginMove({ tenantId: 'acme', to: 'silo', profile: 'idle-friendly' }, approver(EXEC_B));
    await steps.handler({ step: 'switchModel', tenantId: 'acme', execution: EXEC_B, schemaVersion: 4 });
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'silo', request: moved });
    expect(item!.moveProfile).toBeUndefined();
  });

  test("a move's profile goes with a rollback that serves the tenant again; a fresh move forgets an old silo's stage", async () => {
    // Served again after a rollback whose record of its silo was not cleared: that silo is gone (it serves only
    // once the rollback's deploy removed it), and a new move builds from nothing.
    await moto.put({
      tenantId: 'acme',
      model: 'pool',
      status: 'active',
      schema: 'pool',
      request: kept,
      moveSilo: 'filled',
    });
    await beginning.beginMove(
      { tenantId: 'acme', to: 'silo', profile: 'production' },
      { execution: EXEC_A, requestedBy: OPS, approver: true },
    );
    expect((await moto.get('acme'))!.moveSilo).toBeUndefined();
    await steps.handler({
      step: 'setStatus',
      tenantId: 'acme',
      execution: EXEC_A,
      status: 'active',
      release: true,
    });
    const item = await moto.get('acme');
    for (const gone of ['movingTo', 'moveProfile', 'lock'] as const) expect(item![gone]).toBeUndefined();
  });

  test('a move into a silo records how far it built the silo, with the lock, never lowered; the abort reads it; the switch clears it', async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', schema: 'pool', request: kept });
    await beginning.beginMove(
      { tenantId: 'acme', to: 'silo' },
      { execution: EXEC_A, requestedBy: OPS, approver: true },
    );
    const mark = (stage: 'sealed' | 'filled' | 'removed', execution = EXEC_A) =>
      steps.handler({ step: 'markMoveSilo', tenantId: 'acme', execution, stage });
    await expect(mark('sealed', EXEC_B)).rejects.toThrow(steps.LockLost);
    expect((await moto.get('acme'))!.moveSilo).toBeUndefined();
    await expect(mark('sealed')).resolves.toEqual({ tenantId: 'acme', moveSilo: 'sealed' });
    await expect(mark('filled')).resolves.toEqual({ tenantId: 'acme', moveSilo: 'filled' });
    // A seal after a fill (a move sent again meets the silo its previous execution filled) keeps `filled`.
    await expect(mark('sealed')).resolves.toEqual({ tenantId: 'acme', moveSilo: 'filled' });
    await expect(mark('sealed', EXEC_B)).rejects.toThrow(steps.LockLost);
    await expect(
      steps.handler({ step: 'markMoveSilo', tenantId: 'acme', execution: EXEC_A, stage: 'built' as never }),
    ).rejects.toThrow('stage "built" is not sealed, filled or removed');
    await expect(steps.handler({ step: 'abortMove', tenantId: 'acme', execution: EXEC_A })).resolves.toEqual({
      tenantId: 'acme',
      moveAborted: true,
      moveSilo: 'filled',
    });
    // Left moving after a failed rollback, the same move sent again keeps it; the silo may still be there.
    await steps.handler({
      step: 'setStatus',
      tenantId: 'acme',
      execution: EXEC_A,
      status: 'moving',
      release: true,
    });
    await beginning.beginMove(
      { tenantId: 'acme', to: 'silo' },
      { execution: EXEC_B, requestedBy: OPS, approver: true },
    );
    expect(await moto.get('acme')).toMatchObject({ status: 'moving', lock: EXEC_B, moveSilo: 'filled' });
    await expect(mark('removed', EXEC_B)).resolves.toEqual({ tenantId: 'acme', moveSilo: 'removed' });
    expect((await moto.get('acme'))!.moveSilo).toBeUndefined();
    await mark('filled', EXEC_B);
    await steps.handler({ step: 'switchModel', tenantId: 'acme', execution: EXEC_B, schemaVersion: 4 });
    expect(await moto.get('acme')).toMatchObject({ status: 'active', model: 'silo' });
    expect((await moto.get('acme'))!.moveSilo).toBeUndefined();
  });

  test('a purge that died releases the tenant, still active where it is, with the reason; never failed', async () => {
    await moto.put({ tenantId: 'acme', model: 'bridge', status: 'active', keptCopy: 'pool', request: kept });
    await beginning.beginPurge({ tenantId: 'acme' }, { execution: EXEC_A, requestedBy: OPS, approver: true });
    sfn.on(DescribeExecutionCommand, { executionArn: EXEC_A }).resolves({ status: 'TIMED_OUT' } as never);
    const r = await steps.handler({
      step: 'reconcile',
      executionArn: EXEC_A,
      status: 'TIMED_OUT',
      input: JSON.stringify({ action: 'purge', tenant: { tenantId: 'acme' } }),
    });
    expect(r).toEqual({ reconciled: true, tenantId: 'acme' });
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'bridge', keptCopy: 'pool' });
    expect(item!.failureReason).toContain('request the purge again to finish it');
    for (const gone of ['lock', 'purgeCopy', 'failedDuring'] as const) expect(item![gone]).toBeUndefined();
  });

  test('a move that died leaves the tenant moving (503) with how to finish it, unlocked', async () => {
    await beginMove();
    sfn.on(DescribeExecutionCommand, { executionArn: EXEC_A }).resolves({ status: 'FAILED' } as never);
    const r = await steps.handler({
      step: 'reconcile',
      executionArn: EXEC_A,
      status: 'FAILED',
      input: JSON.stringify({ action: 'move', tenant: { tenantId: 'acme' } }),
    });
    expect(r).toEqual({ reconciled: true, tenantId: 'acme' });
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'moving', model: 'pool', movingTo: 'bridge' });
    expect(item!.failureReason).toContain(
      'the tenant may still be frozen: request the move again to finish it (npm run request -- move --tenant acme --to bridge)',
    );
    expect(item!.lock).toBeUndefined();
  });
});
