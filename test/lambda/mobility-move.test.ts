import { mockClient } from 'aws-sdk-client-mock';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  CloudFormationClient,
  DescribeStacksCommand,
  type StackStatus,
} from '@aws-sdk/client-cloudformation';
import { ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient } from '@aws-sdk/client-sfn';
import { moveOutStateName } from '../../contracts';
import { LATEST_VERSION } from '../../db/migrations';
import { sqlstateOf } from '../db/harness';
import { Moto, startMoto } from '../helpers/moto';
import {
  answerTasks,
  ONBOARDING_WORKFLOW,
  RunnerCell,
  startRunnerCell,
  WORKFLOW_EXECUTIONS,
} from '../helpers/runner-cell';

// A tenant moved between the pool and bridge cells in AWS (lambda/tenant-provisioner/mobility-move.ts): both cells'
// runners and provisioners run for real, each against its own database on the embedded PostgreSQL and its own
// bucket in moto's S3, with its own archive signing key; the registry is moto's DynamoDB. The source runner's link
// is presigned by the SDK and fetched over HTTP from moto. Secrets Manager and Step Functions are stubbed at the SDK
// boundary: the moveOut task's token (SendTaskSuccess) and the execution's history as Step Functions keeps them.
const secrets = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);
const cfn = mockClient(CloudFormationClient);
/** A tenant stack as DescribeStacks states it, in `status`. */
const stackIn = (status: StackStatus) => ({
  StackName: 'Tenant-zorp',
  StackStatus: status,
  CreationTime: new Date(),
});

let moto: Moto;
let pool: RunnerCell;
let bridge: RunnerCell;
/** Step Functions as it answers the runners' moveOut tasks (runner-cell.ts answerTasks). */
const { tokens, answered } = answerTasks(sfn);

/** What the entry writes for an approver's move, and what Step Functions says of its execution. */
async function moving(
  tenantId: string,
  from: 'pool' | 'bridge' | 'silo',
  to: 'pool' | 'bridge' | 'silo',
  execution: string,
) {
  const item = (await moto.get(tenantId))!;
  await moto.put({ ...item, status: 'moving', movingTo: to, lock: execution });
  sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
    status: 'RUNNING',
    stateMachineArn: ONBOARDING_WORKFLOW,
    input: JSON.stringify({ action: 'move', tenant: { tenantId, model: from, movingTo: to } }),
  });
}

/** The execution's history once its moveOut task succeeded with `output`, as move.ts's ResultSelector leaves it. */
function history(
  execution: string,
  from: 'pool' | 'bridge' | 'silo',
  to: 'pool' | 'bridge' | 'silo',
  output?: string,
) {
  sfn.on(GetExecutionHistoryCommand, { executionArn: execution }).resolves({
    events: output
      ? [
          {
            type: 'TaskStateExited',
            id: 9,
            timestamp: new Date(),
            stateExitedEventDetails: {
              name: moveOutStateName(from, to),
              output: JSON.stringify({ tenant: {}, movedOut: JSON.parse(output) }),
            },
          },
        ]
      : [],
  });
}

/** The destination's place, as the move deploy's Custom::BridgeTenant (or PoolTenant) creates it. */
const place = (cell: RunnerCell, model: 'pool' | 'bridge', id: string) =>
  cell.create(
    model === 'pool' ? 'Custom::PoolTenant' : 'Custom::BridgeTenant',
    {
      TenantId: id,
      Name: `${id} Inc`,
      Model: model,
      DeletionPolicy: 'retain',
      SchemaVersion: String(LATEST_VERSION),
      Request: JSON.stringify({
        id,
        name: `${id} Inc`,
        model,
        firstModel: model === 'pool' ? 'bridge' : 'pool',
      }),
    },
    `Tenant-${id}`,
  );

beforeAll(async () => {
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  moto = await startMoto();
  await moto.resetRegistry();
  pool = await startRunnerCell({
    model: 'pool',
    database: 'move_pool',
    bucket: 'pool-move-archives',
    archiveKeyHex: 'd1'.repeat(32),
    moto,
    secrets,
  });
  bridge = await startRunnerCell({
    model: 'bridge',
    database: 'move_bridge',
    bucket: 'bridge-move-archives',
    archiveKeyHex: 'd2'.repeat(32),
    moto,
    secrets,
  });
});

afterAll(async () => {
  await pool?.db.drop();
  await bridge?.db.drop();
  await moto?.stop();
});

describe('a tenant moved between the pool and bridge cells', () => {
  test('pool -> bridge: frozen and handed over by the pool runner, restored by the bridge runner into its new place', async () => {
    await pool.onboard('gloop');
    await pool.addInvoices('gloop', 20);
    const execution = `${WORKFLOW_EXECUTIONS}move_bridge_gloop-1`;
    await moving('gloop', 'pool', 'bridge', execution);

    tokens.add('move-1');
    const out = await pool.run({ action: 'moveOut', tenantId: 'gloop', execution, taskToken: 'move-1' });
    expect(out).toMatchObject({
      action: 'moveOut',
      model: 'pool',
      rows: { invoices: 20, invoice_items: 20 },
    });
    // The invoker gets the digest; the link went to the workflow's task only.
    expect(JSON.stringify(out)).not.toContain('X-Amz-Signature');
    const output = answered.get('move-1')!.output!;
    const movedOut = JSON.parse(output) as Record<string, unknown>;
    expect(movedOut).toMatchObject({
      sha256: out.sha256,
      execution,
      tenantId: 'gloop',
      archive: out.archive,
      schemaVersion: out.schemaVersion,
    });
    expect(out.archive).toMatch(/^tenants\/gloop\/.+\.tfa$/);
    // Frozen where it is: reads answer, writes are refused by the database.
    expect((await pool.invoices('gloop')).length).toBe(20);
    expect(await sqlstateOf(pool.addInvoices('gloop', 1))).toBe('42501');

    // The move deploy builds its empty place in the bridge cell; the registry is not written.
    const before = await moto.get('gloop');
    await place(bridge, 'bridge', 'gloop');
    expect(await moto.get('gloop')).toEqual(before);

    const restore = (fields: Record<string, unknown> = {}) =>
      bridge.run({
        action: 'restore',
        tenantId: 'gloop',
        archive: out.archive,
        execution,
        handover: movedOut.handover,
        ...fields,
      });
    history(execution, 'pool', 'bridge');
    await expect(restore()).rejects.toThrow(
      'tenant "gloop" is moving into this bridge cell from pool, but the execution\'s history has no digest from its MoveOutPoolToBridge task',
    );
    history(execution, 'pool', 'bridge', output);
    const restored = await restore();
    expect(restored).toMatchObject({
      action: 'restore',
      tenantId: 'gloop',
      model: 'bridge',
      rows: { invoices: 20, invoice_items: 20 },
      checksums: out.checksums,
    });
    expect(await bridge.invoices('gloop')).toEqual(await pool.invoices('gloop'));
    // Run again after a lost answer: the rows are there, nothing is written twice.
    expect(await restore()).toMatchObject({ alreadyThere: true });
    expect((await bridge.invoices('gloop')).length).toBe(20);
    expect(await moto.get('gloop')).toEqual(before);
  });

  test('refused, with nothing written or handed out: the wrong runner or request, another link, a tenant not moving', async () => {
    await bridge.onboard('snozz');
    await bridge.addInvoices('snozz', 5);
    const execution = `${WORKFLOW_EXECUTIONS}move_pool_snozz-1`;
    await moving('snozz', 'bridge', 'pool', execution);
    const moveOut = (cell: RunnerCell, token: string, fields: Record<string, unknown> = {}) => {
      tokens.add(token);
      return cell.run({ action: 'moveOut', tenantId: 'snozz', execution, taskToken: token, ...fields });
    };
    // The destination's runner does not move the tenant out; its task is failed with the reason.
    await expect(moveOut(pool, 'wrong-side')).rejects.toThrow(
      `tenant "snozz" is not being moved out of this pool cell by ${execution}: it is moving from bridge to pool; nothing was written`,
    );
    expect(answered.get('wrong-side')).toMatchObject({ error: 'ProvisioningInputError' });
    // Another execution, and one Step Functions says was started for another move.
    const other = `${WORKFLOW_EXECUTIONS}move_pool_snozz-2`;
    await expect(moveOut(bridge, 'other-exec', { execution: other })).rejects.toThrow(
      `it is held by ${execution}`,
    );
    sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
      status: 'RUNNING',
      stateMachineArn: ONBOARDING_WORKFLOW,
      input: JSON.stringify({
        action: 'move',
        tenant: { tenantId: 'snozz', model: 'bridge', movingTo: 'silo' },
      }),
    });
    await expect(moveOut(bridge, 'other-input')).rejects.toThrow(
      'the execution was not started to move this tenant from bridge to pool',
    );
    // Nothing was frozen by any of them: the tenant still takes writes.
    await expect(bridge.addInvoices('snozz', 1)).resolves.toBeDefined();

    await moving('snozz', 'bridge', 'pool', execution);
    const out = await moveOut(bridge, 'move-2');
    const output = answered.get('move-2')!.output!;
    history(execution, 'bridge', 'pool', output);
    await place(pool, 'pool', 'snozz');
    const restore = (fields: Record<string, unknown>) =>
      pool.run({ action: 'restore', tenantId: 'snozz', archive: out.archive, execution, ...fields });
    const link = new URL(JSON.parse(output).handover as string);
    link.searchParams.set('X-Amz-Expires', '600');
    await expect(restore({ handover: link.toString() })).rejects.toThrow(
      "the link it names is not the one the bridge cell's runner handed to the execution's MoveOutBridgeToPool task",
    );
    // Not moving any more (the workflow's rollback served it again where it was): taken as what it would then be, a
    // handover into a new tenant, and refused as one.
    const item = (await moto.get('snozz'))!;
    await moto.put({ ...item, status: 'active', movingTo: undefined, lock: undefined });
    await expect(restore({ handover: JSON.parse(output).handover })).rejects.toThrow(
      `of the bridge cell by ${execution}: it is a bridge tenant and this is the pool cell's runner (Pool); nothing was written`,
    );
    expect(await pool.invoices('snozz')).toEqual([]);
  });

  test("the failure path's thaw: only the move's execution lifts the freeze, and the tenant takes writes again", async () => {
    await pool.onboard('vermicious');
    await pool.addInvoices('vermicious', 3);
    const execution = `${WORKFLOW_EXECUTIONS}move_bridge_vermicious-1`;
    await moving('vermicious', 'pool', 'bridge', execution);
    tokens.add('move-3');
    await pool.run({ action: 'moveOut', tenantId: 'vermicious', execution, taskToken: 'move-3' });
    expect(await sqlstateOf(pool.addInvoices('vermicious', 1))).toBe('42501');
    await expect(
      pool.run({
        action: 'thaw',
        tenantId: 'vermicious',
        execution: `${WORKFLOW_EXECUTIONS}move_bridge_vermicious-9`,
      }),
    ).rejects.toThrow(`it is held by ${execution}`);
    expect(await sqlstateOf(pool.addInvoices('vermicious', 1))).toBe('42501');
    await expect(pool.run({ action: 'thaw', tenantId: 'vermicious', execution })).resolves.toMatchObject({
      action: 'thaw',
      restored: false,
    });
    await expect(pool.addInvoices('vermicious', 1)).resolves.toBeDefined();
    expect((await pool.invoices('vermicious')).length).toBe(4);
  });
});

test("a rolled-back move: once the workflow marks it aborted, nothing more is restored and the destination's runner drops its copy", async () => {
  await bridge.onboard('wormwood');
  await bridge.addInvoices('wormwood', 4);
  const execution = `${WORKFLOW_EXECUTIONS}move_pool_wormwood-1`;
  await moving('wormwood', 'bridge', 'pool', execution);
  tokens.add('move-4');
  const out = await bridge.run({ action: 'moveOut', tenantId: 'wormwood', execution, taskToken: 'move-4' });
  const output = answered.get('move-4')!.output!;
  history(execution, 'bridge', 'pool', output);
  await place(pool, 'pool', 'wormwood');
  const restore = () =>
    pool.run({
      action: 'restore',
      tenantId: 'wormwood',
      archive: out.archive,
      execution,
      handover: JSON.parse(output).handover,
    });
  await restore();
  expect((await pool.invoices('wormwood')).length).toBe(4);
  // Not aborted: the destination's copy is not dropped.
  await expect(pool.run({ action: 'dropMovedIn', tenantId: 'wormwood', execution })).rejects.toThrow(
    'the move is not being rolled back',
  );
  await moto.put({ ...(await moto.get('wormwood'))!, moveAborted: true });
  await expect(restore()).rejects.toThrow('the move is being rolled back');
  // Another execution's drop is refused; the move's own removes the place (and again, idempotently).
  await expect(
    pool.run({
      action: 'dropMovedIn',
      tenantId: 'wormwood',
      execution: `${WORKFLOW_EXECUTIONS}move_pool_wormwood-2`,
    }),
  ).rejects.toThrow(`it is held by ${execution}`);
  await expect(pool.run({ action: 'dropMovedIn', tenantId: 'wormwood', execution })).resolves.toMatchObject({
    action: 'dropMovedIn',
  });
  await expect(pool.run({ action: 'dropMovedIn', tenantId: 'wormwood', execution })).resolves.toBeDefined();
  await expect(pool.invoices('wormwood')).rejects.toThrow();
  // The source still has everything, frozen until the workflow thaws it.
  expect((await bridge.invoices('wormwood')).length).toBe(4);
});

test("pool -> silo: the tenant's own silo runner restores it into its new silo; on a rollback, it drops that copy", async () => {
  const silo = await startRunnerCell({
    model: 'silo',
    siloTenant: 'flurp',
    database: 'move_silo',
    bucket: 'silo-move-archives',
    archiveKeyHex: 'd3'.repeat(32),
    moto,
    secrets,
  });
  try {
    await pool.onboard('flurp');
    await pool.addInvoices('flurp', 12);
    const execution = `${WORKFLOW_EXECUTIONS}move_silo_flurp-1`;
    await moving('flurp', 'pool', 'silo', execution);
    tokens.add('move-s');
    const out = await pool.run({ action: 'moveOut', tenantId: 'flurp', execution, taskToken: 'move-s' });
    const output = answered.get('move-s')!.output!;
    // The move deploy's Custom::SiloTenant, once the silo is up, builds its place; the registry is not written.
    const before = await moto.get('flurp');
    await silo.create(
      'Custom::SiloTenant',
      {
        TenantId: 'flurp',
        Name: 'flurp Inc',
        Model: 'silo',
        DeletionPolicy: 'retain',
        SchemaVersion: String(LATEST_VERSION),
        Request: JSON.stringify({ id: 'flurp', name: 'flurp Inc', model: 'silo', firstModel: 'pool' }),
      },
      'Tenant-flurp',
    );
    expect(await moto.get('flurp')).toEqual(before);
    const restore = (cell: RunnerCell) =>
      cell.run({
        action: 'restore',
        tenantId: 'flurp',
        archive: out.archive,
        execution,
        handover: JSON.parse(output).handover,
      });
    history(execution, 'pool', 'silo', output);
    // Only the destination's runner restores: the other shared cell's is refused.
    await expect(restore(bridge)).rejects.toThrow(
      `tenant "flurp" is not being moved into this bridge cell by ${execution}: it is moving from pool to silo`,
    );
    expect(await restore(silo)).toMatchObject({
      action: 'restore',
      tenantId: 'flurp',
      model: 'silo',
      rows: { invoices: 12, invoice_items: 12 },
      checksums: out.checksums,
    });
    expect(await silo.invoices('flurp')).toEqual(await pool.invoices('flurp'));
    expect(await moto.get('flurp')).toEqual(before);
    // Rolled back before the switch: the silo's runner drops its copy before the silo is removed.
    await expect(silo.run({ action: 'dropMovedIn', tenantId: 'flurp', execution })).rejects.toThrow(
      'the move is not being rolled back',
    );
    await moto.put({ ...(await moto.get('flurp'))!, moveAborted: true });
    await expect(silo.run({ action: 'dropMovedIn', tenantId: 'flurp', execution })).resolves.toMatchObject({
      action: 'dropMovedIn',
    });
    // Emptied, still provisioned: if the silo's removal fails, the same move sent again restores into it (its
    // unchanged Custom::SiloTenant is not run again by the next deploy).
    expect(await silo.invoices('flurp')).toEqual([]);
    await expect(silo.run({ action: 'dropMovedIn', tenantId: 'flurp', execution })).resolves.toBeDefined();
    expect((await pool.invoices('flurp')).length).toBe(12);
    const again = `${WORKFLOW_EXECUTIONS}move_silo_flurp-2`;
    // Its removal failed (the tenant stays moving, frozen); the same move is sent again.
    const { moveAborted, ...stuck } = (await moto.get('flurp'))!;
    expect(moveAborted).toBe(true);
    await moto.put(stuck);
    await moving('flurp', 'pool', 'silo', again);
    tokens.add('move-s2');
    const out2 = await pool.run({
      action: 'moveOut',
      tenantId: 'flurp',
      execution: again,
      taskToken: 'move-s2',
    });
    const output2 = answered.get('move-s2')!.output!;
    history(again, 'pool', 'silo', output2);
    expect(
      await silo.run({
        action: 'restore',
        tenantId: 'flurp',
        archive: out2.archive,
        execution: again,
        handover: JSON.parse(output2).handover,
      }),
    ).toMatchObject({ rows: { invoices: 12, invoice_items: 12 }, checksums: out.checksums });
    expect(await silo.invoices('flurp')).toEqual(await pool.invoices('flurp'));
  } finally {
    await silo.db.drop();
  }
});

test("silo -> pool: the silo's own runner freezes and hands it over, the pool's restores it; kept, a release leaves the silo as it is; its purge empties it", async () => {
  const silo = await startRunnerCell({
    model: 'silo',
    siloTenant: 'zorp',
    database: 'move_out_silo',
    bucket: 'silo-out-archives',
    archiveKeyHex: 'd4'.repeat(32),
    moto,
    secrets,
  });
  try {
    await silo.onboard('zorp');
    await silo.addInvoices('zorp', 9);
    const execution = `${WORKFLOW_EXECUTIONS}move_pool_zorp-1`;
    await moving('zorp', 'silo', 'pool', execution);
    tokens.add('move-o');
    const out = await silo.run({ action: 'moveOut', tenantId: 'zorp', execution, taskToken: 'move-o' });
    expect(out).toMatchObject({ action: 'moveOut', model: 'silo', rows: { invoices: 9, invoice_items: 9 } });
    expect(out.archive).toMatch(/^tenants\/zorp\/.+\.tfa$/);
    const output = answered.get('move-o')!.output!;
    // Frozen in its silo: reads answer, writes are refused by the database.
    expect((await silo.invoices('zorp')).length).toBe(9);
    expect(await sqlstateOf(silo.addInvoices('zorp', 1))).toBe('42501');
    await place(pool, 'pool', 'zorp');
    const restore = (cell: RunnerCell) =>
      cell.run({
        action: 'restore',
        tenantId: 'zorp',
        archive: out.archive,
        execution,
        handover: JSON.parse(output).handover,
      });
    history(execution, 'silo', 'pool', output);
    await expect(restore(bridge)).rejects.toThrow(
      `tenant "zorp" is not being moved into this bridge cell by ${execution}: it is moving from silo to pool`,
    );
    expect(await restore(pool)).toMatchObject({
      model: 'pool',
      rows: { invoices: 9, invoice_items: 9 },
      checksums: out.checksums,
    });
    expect(await pool.invoices('zorp')).toEqual(await silo.invoices('zorp'));
    // A rollback's thaw, by the silo's runner, for the move's execution only: the silo takes writes again.
    await expect(
      silo.run({ action: 'thaw', tenantId: 'zorp', execution: `${WORKFLOW_EXECUTIONS}move_pool_zorp-2` }),
    ).rejects.toThrow(`it is held by ${execution}`);
    await silo.run({ action: 'thaw', tenantId: 'zorp', execution });
    await silo.addInvoices('zorp', 1);
    expect((await silo.invoices('zorp')).length).toBe(10);

    // Switched (as the workflow's switch writes it): served by the pool, the silo kept in the tenant's stack.
    const switched = { ...(await moto.get('zorp'))!, model: 'pool', status: 'active', keptCopy: 'silo' };
    delete switched.lock;
    delete switched.movingTo;
    await moto.put(switched);
    // A release's update of the kept silo's resource (marked so by its stack; a new schema version) leaves it as it
    // is and writes nothing.
    const resource = {
      TenantId: 'zorp',
      Name: 'zorp Inc',
      Model: 'silo',
      DeletionPolicy: 'retain',
      Request: JSON.stringify({ id: 'zorp', name: 'zorp Inc', model: 'silo' }),
      SchemaVersion: String(LATEST_VERSION),
    };
    await expect(
      silo.update(
        'Custom::SiloTenant',
        { ...resource, KeptCopy: 'true', SchemaVersion: String(LATEST_VERSION) },
        { ...resource, KeptCopy: 'true', SchemaVersion: String(LATEST_VERSION - 1) },
        'Tenant-zorp',
      ),
    ).resolves.toMatchObject({ Data: { TenantId: 'zorp' } });
    expect(await moto.get('zorp')).toEqual(switched);
    // Unmarked (a stale catalog that still lists the tenant in its silo, its update going forward): refused, as for
    // any cell it left ...
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [stackIn('UPDATE_IN_PROGRESS')] });
    const unmark = () =>
      silo.update('Custom::SiloTenant', resource, { ...resource, KeptCopy: 'true' }, 'Tenant-zorp');
    await expect(unmark()).rejects.toThrow(
      'the registry places the tenant in another cell than this silo cell',
    );
    await expect(silo.update('Custom::SiloTenant', resource, resource, 'Tenant-zorp')).rejects.toThrow(
      'the registry places the tenant in another cell than this silo cell',
    );
    // ... but the rollback of a deploy that marked it (CloudFormation sends the old, unmarked properties back) is
    // left as it is too, or the stack would end UPDATE_ROLLBACK_FAILED.
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [stackIn('UPDATE_ROLLBACK_IN_PROGRESS')] });
    await expect(unmark()).resolves.toMatchObject({ Data: { TenantId: 'zorp' } });
    expect(await moto.get('zorp')).toEqual(switched);
    // ... and a marked one the registry does not record as kept (purged since) is refused too.
    await moto.put({ ...switched, keptCopy: undefined });
    await expect(
      silo.update('Custom::SiloTenant', { ...resource, KeptCopy: 'true' }, resource, 'Tenant-zorp'),
    ).rejects.toThrow('the registry places the tenant in another cell than this silo cell');
    await moto.put(switched);

    // The purge, for its own execution only: the silo's schema emptied and the tenant's archives in its bucket gone.
    const purge = `${WORKFLOW_EXECUTIONS}purge_x_zorp-1`;
    await moto.put({ ...switched, purgeCopy: 'silo', lock: purge });
    sfn.on(DescribeExecutionCommand, { executionArn: purge }).resolves({
      status: 'RUNNING',
      stateMachineArn: ONBOARDING_WORKFLOW,
      input: JSON.stringify({
        action: 'purge',
        tenant: { tenantId: 'zorp', model: 'pool', purgeCopy: 'silo' },
      }),
    });
    await expect(pool.run({ action: 'purge', tenantId: 'zorp', execution: purge })).rejects.toThrow(
      'its request purges silo, and its kept copy is silo',
    );
    const versions = async () =>
      (
        await silo.s3.send(
          new ListObjectVersionsCommand({ Bucket: 'silo-out-archives', Prefix: 'tenants/zorp/' }),
        )
      ).Versions?.length ?? 0;
    expect(await versions()).toBeGreaterThan(0);
    await expect(silo.run({ action: 'purge', tenantId: 'zorp', execution: purge })).resolves.toMatchObject({
      action: 'purge',
    });
    expect(await silo.invoices('zorp')).toEqual([]);
    expect(await versions()).toBe(0);
    expect((await pool.invoices('zorp')).length).toBe(9);
  } finally {
    await silo.db.drop();
  }
});

test("a restore over a silo's data: its own runner freezes it, keeps what it had in a safety archive, replaces it; a failed one is thawed", async () => {
  const silo = await startRunnerCell({
    model: 'silo',
    siloTenant: 'plugh',
    database: 'restore_silo',
    bucket: 'silo-restore-archives',
    archiveKeyHex: 'd5'.repeat(32),
    moto,
    secrets,
  });
  try {
    await silo.onboard('plugh');
    await silo.addInvoices('plugh', 4);
    const archive = (await silo.run({ action: 'export', tenantId: 'plugh' })).archive!;
    await silo.addInvoices('plugh', 3); // written after the archive: the restore takes them away
    const execution = `${WORKFLOW_EXECUTIONS}restore_x_plugh-1`;
    const active = (await moto.get('plugh'))!;
    // As the entry writes it for an approver's restore request, and as Step Functions says it started it.
    await moto.put({
      ...active,
      status: 'moving',
      movingTo: 'silo',
      lock: execution,
      restoreArchive: archive,
    });
    sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
      status: 'RUNNING',
      stateMachineArn: ONBOARDING_WORKFLOW,
      input: JSON.stringify({
        action: 'restore',
        tenant: { tenantId: 'plugh', model: 'silo', restoreArchive: archive },
      }),
    });
    // Only its own tenant: another silo's (or any) tenant id is refused before anything is read.
    await expect(
      silo.run({ action: 'replace', tenantId: 'xyzzy', archive: 'tenants/xyzzy/a.tfa', execution }),
    ).rejects.toThrow('tenant "xyzzy" is not this silo\'s');
    // Asked first whether it can carry the request out: for its execution, yes, changing nothing; for another, no.
    await expect(
      silo.run({ action: 'checkReplace', tenantId: 'plugh', archive, execution }),
    ).resolves.toMatchObject({ action: 'checkReplace', tenantId: 'plugh' });
    await expect(
      silo.run({ action: 'checkReplace', tenantId: 'plugh', archive, execution: `${execution}-other` }),
    ).rejects.toThrow(`it is held by ${execution}`);
    expect((await silo.invoices('plugh')).length).toBe(7);
    const report = await silo.run({ action: 'replace', tenantId: 'plugh', archive, execution });
    expect(report).toMatchObject({
      action: 'replace',
      model: 'silo',
      rows: { invoices: 4, invoice_items: 4 },
    });
    expect(report.safetyArchive).toMatch(/^tenants\/plugh\/before-restore-[0-9a-f]{24}\.tfa$/);
    expect((await silo.invoices('plugh')).length).toBe(4);
    // Served again: it takes writes. Its thaw (had the answer been lost) says the replace committed.
    await silo.addInvoices('plugh', 1);
    expect(await silo.run({ action: 'thaw', tenantId: 'plugh', execution })).toMatchObject({
      restored: true,
      safetyArchive: report.safetyArchive,
    });

    // A second request whose replace never ran: its thaw lifts the freeze, and says nothing was restored.
    const second = `${WORKFLOW_EXECUTIONS}restore_x_plugh-2`;
    await moto.put({ ...active, status: 'moving', movingTo: 'silo', lock: second, restoreArchive: archive });
    sfn.on(DescribeExecutionCommand, { executionArn: second }).resolves({
      status: 'RUNNING',
      stateMachineArn: ONBOARDING_WORKFLOW,
      input: JSON.stringify({
        action: 'restore',
        tenant: { tenantId: 'plugh', model: 'silo', restoreArchive: archive },
      }),
    });
    expect(await silo.run({ action: 'thaw', tenantId: 'plugh', execution: second })).toMatchObject({
      restored: false,
    });
    await silo.addInvoices('plugh', 1);
    expect((await silo.invoices('plugh')).length).toBe(6);
  } finally {
    await silo.db.drop();
  }
});

test("a purge removes the copy a move kept, and the tenant's archives in that cell, only for the purge's execution", async () => {
  // gloop moved to bridge (the first test): switched, its pool place kept, frozen and retired.
  const gloop = (await moto.get('gloop'))!;
  const execution = `${WORKFLOW_EXECUTIONS}purge_x_gloop-1`;
  await moto.put({
    ...gloop,
    model: 'bridge',
    status: 'active',
    movingTo: undefined,
    keptCopy: 'pool',
    purgeCopy: 'pool',
    lock: execution,
  });
  sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
    status: 'RUNNING',
    stateMachineArn: ONBOARDING_WORKFLOW,
    input: JSON.stringify({
      action: 'purge',
      tenant: { tenantId: 'gloop', model: 'bridge', purgeCopy: 'pool' },
    }),
  });
  const archives = async (cell: RunnerCell, bucket: string) =>
    (await cell.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'tenants/gloop/' }))).Versions
      ?.length ?? 0;
  expect(await archives(pool, 'pool-move-archives')).toBeGreaterThan(0);
  // Another tenant whose id starts the same keeps its archives.
  await pool.s3.send(
    new PutObjectCommand({ Bucket: 'pool-move-archives', Key: 'tenants/gloop-2/x.tfa', Body: 'x' }),
  );
  const bridgeBefore = await bridge.invoices('gloop');
  // The tenant's live cell never purges it; another execution does not either.
  await expect(bridge.run({ action: 'purge', tenantId: 'gloop', execution })).rejects.toThrow(
    'its request purges pool, and its kept copy is pool; nothing was removed',
  );
  await expect(
    pool.run({ action: 'purge', tenantId: 'gloop', execution: `${WORKFLOW_EXECUTIONS}purge_x_gloop-2` }),
  ).rejects.toThrow(`it is held by ${execution}`);
  // Nor where the registry says it is served, nor a copy it does not record as kept, nor for an execution started
  // for anything but this purge.
  const purging = (await moto.get('gloop'))!;
  for (const [change, why] of [
    [{ model: 'pool' }, 'it is active in pool'],
    [{ keptCopy: 'bridge' }, 'its request purges pool, and its kept copy is bridge'],
  ] as const) {
    await moto.put({ ...purging, ...change });
    await expect(pool.run({ action: 'purge', tenantId: 'gloop', execution })).rejects.toThrow(why);
  }
  await moto.put({ ...purging });
  for (const input of [
    { action: 'move', tenant: { tenantId: 'gloop', model: 'bridge', purgeCopy: 'pool' } },
    { action: 'purge', tenant: { tenantId: 'gloop-2', model: 'bridge', purgeCopy: 'pool' } },
    { action: 'purge', tenant: { tenantId: 'gloop', model: 'pool', purgeCopy: 'bridge' } },
  ]) {
    sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
      status: 'RUNNING',
      stateMachineArn: ONBOARDING_WORKFLOW,
      input: JSON.stringify(input),
    });
    await expect(pool.run({ action: 'purge', tenantId: 'gloop', execution })).rejects.toThrow(
      "the execution was not started to purge this tenant's pool copy",
    );
  }
  sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
    status: 'RUNNING',
    stateMachineArn: ONBOARDING_WORKFLOW,
    input: JSON.stringify({
      action: 'purge',
      tenant: { tenantId: 'gloop', model: 'bridge', purgeCopy: 'pool' },
    }),
  });
  expect(await archives(pool, 'pool-move-archives')).toBeGreaterThan(0);
  await expect(pool.run({ action: 'purge', tenantId: 'gloop', execution })).resolves.toMatchObject({
    action: 'purge',
    model: 'pool',
  });
  expect(await archives(pool, 'pool-move-archives')).toBe(0);
  const neighbour = await pool.s3.send(
    new ListObjectVersionsCommand({ Bucket: 'pool-move-archives', Prefix: 'tenants/gloop-2/' }),
  );
  expect(neighbour.Versions?.length).toBe(1);
  const master = await pool.db.master();
  try {
    await master.query('BEGIN; SET LOCAL ROLE tenant_owner');
    const left = await master.query("SELECT 1 FROM tenancy.pool_tenants WHERE tenant_id = 'gloop'");
    await master.query('ROLLBACK');
    expect(left.rowCount).toBe(0);
  } finally {
    await master.end();
  }
  // The tenant's data where it lives is untouched; a purge run again does nothing more.
  expect(await bridge.invoices('gloop')).toEqual(bridgeBefore);
  await expect(pool.run({ action: 'purge', tenantId: 'gloop', execution })).resolves.toBeDefined();
  // Offboarded from bridge with its data kept, its pool copy is purged too; while it is moving, not.
  const held = (await moto.get('gloop'))!;
  await moto.put({ ...held, status: 'offboarded' });
  await expect(pool.run({ action: 'purge', tenantId: 'gloop', execution })).resolves.toBeDefined();
  await moto.put({ ...held, status: 'moving', movingTo: 'pool' });
  await expect(pool.run({ action: 'purge', tenantId: 'gloop', execution })).rejects.toThrow(
    'it is moving in bridge; nothing was removed',
  );
});
