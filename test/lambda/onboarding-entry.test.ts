import { tenantMark } from '../../contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { FakePrincipal, fakeSts } from '../helpers/fake-sts';
import { Moto, startMoto } from '../helpers/moto';
import { entryRequestBody } from '../../scripts/request';

// The onboarding entry, the one way in: who may ask, what they may ask for, and what is recorded. The registry is
// DynamoDB's API for real (moto); Step Functions is stubbed at the SDK boundary.
const sfn = mockClient(SFNClient);

const ACCOUNT = '111122223333';
const STATE_MACHINE = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:Workflow`;
const REQUESTER_ROLE = `arn:aws:iam::${ACCOUNT}:role/pipelines/onboarding-pipeline`;
const APPROVER_USER = `arn:aws:iam::${ACCOUNT}:user/cfo`;
const session = (role: string, name = 'build-42') =>
  `arn:aws:sts::${ACCOUNT}:assumed-role/${role.split('/').pop()}/${name}`;

let moto: Moto;
let logged: string[] = [];
let entry: typeof import('../../lambda/onboarding-entry');
beforeAll(async () => {
  moto = await startMoto();
  Object.assign(process.env, {
    STATE_MACHINE_ARN: STATE_MACHINE,
    REQUESTERS: REQUESTER_ROLE,
    APPROVERS: APPROVER_USER,
    INSTANCE_CLASSES: 't4g.medium,t4g.large',
  });
  entry = await import('../../lambda/onboarding-entry');
});
afterAll(async () => {
  await moto.stop();
});
beforeEach(async () => {
  logged = [];
  jest.spyOn(console, 'log').mockImplementation((line: string) => void logged.push(line));
  jest.spyOn(global, 'fetch').mockImplementation(fakeSts([REQUESTER, APPROVER, DEVELOPER, INTRUDER]));
  sfn.reset();
  sfn.on(StartExecutionCommand).resolves({ executionArn: 'x', startDate: new Date() });
  await moto.resetRegistry();
});

const REQUESTER: FakePrincipal = {
  accessKeyId: 'AKIAREQUESTER0000001',
  secretAccessKey: 'requester-secret',
  arn: session(REQUESTER_ROLE),
};
const APPROVER: FakePrincipal = {
  accessKeyId: 'AKIAAPPROVER00000001',
  secretAccessKey: 'approver-secret',
  arn: APPROVER_USER,
};
const DEVELOPER: FakePrincipal = {
  accessKeyId: 'AKIADEVELOPER0000001',
  secretAccessKey: 'developer-secret',
  arn: session(`arn:aws:iam::${ACCOUNT}:role/developer`),
};
const INTRUDER: FakePrincipal = {
  accessKeyId: 'AKIAINTRUDER00000001',
  secretAccessKey: 'intruder-secret',
  arn: `arn:aws:iam::${ACCOUNT}:user/intruder`,
};

/**
 * A request as npm run request sends it, signed by `by`, delivered as a function URL event (which names the
 * signer in requestContext, unless `context` overrides it: a direct invocation can write anything there).
 */
async function call(
  by: FakePrincipal | undefined,
  payload: unknown,
  options: { method?: string; context?: string | null; proofPayload?: string; signedAt?: Date } = {},
) {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const body = by
    ? await entryRequestBody({
        payload: options.proofPayload ?? text,
        region: 'us-east-1',
        credentials: { accessKeyId: by.accessKeyId, secretAccessKey: by.secretAccessKey },
        now: options.signedAt,
      }).then((b) => JSON.stringify({ ...JSON.parse(b), payload: text }))
    : JSON.stringify({ payload: text });
  const signer = options.context === undefined ? by?.arn : (options.context ?? undefined);
  const event = {
    version: '2.0',
    rawPath: '/',
    headers: {},
    isBase64Encoded: false,
    body,
    requestContext: {
      http: { method: options.method ?? 'POST' },
      ...(signer ? { authorizer: { iam: { userArn: signer, accountId: ACCOUNT } } } : {}),
    },
  } as unknown as LambdaFunctionURLEvent;
  const r = await entry.handler(event);
  return { ...r, json: JSON.parse(r.body) };
}

const onboard = (request: Record<string, unknown>) => ({
  action: 'onboard',
  request: { adminEmail: 'admin@initrode.example', ...request },
});

describe('isNamed', () => {
  test('a named role admits its sessions; a user only itself; nothing else matches', () => {
    const named = [REQUESTER_ROLE, APPROVER_USER];
    expect(entry.isNamed(session(REQUESTER_ROLE), named)).toBe(true);
    expect(entry.isNamed(APPROVER_USER, named)).toBe(true);
    expect(entry.isNamed(session(`arn:aws:iam::${ACCOUNT}:role/onboarding-pipeline-2`), named)).toBe(false);
    expect(entry.isNamed(`arn:aws:sts::444455556666:assumed-role/onboarding-pipeline/x`, named)).toBe(false);
    expect(entry.isNamed(`arn:aws:iam::${ACCOUNT}:user/cfo2`, named)).toBe(false);
    expect(entry.isNamed(`arn:aws:iam::${ACCOUNT}:root`, named)).toBe(false);
    expect(entry.isNamed(session(REQUESTER_ROLE), [])).toBe(false);
  });
});

describe('who may ask', () => {
  test('a principal that is not named is refused and nothing changes', async () => {
    const r = await call(
      DEVELOPER,
      onboard({ tenantId: 'initrode', model: 'silo', settings: { instanceClass: 'r6g.16xlarge' } }),
    );
    expect(r.statusCode).toBe(403);
    expect(r.json.message).toContain('is neither a named requester nor a named approver');
    expect(await moto.get('initrode')).toBeUndefined();
    // Refused requests are recorded too, with who made them.
    expect(logged.map((l) => JSON.parse(l))).toContainEqual({
      level: 'info',
      message: 'refused: not a named principal',
      caller: DEVELOPER.arn,
    });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('a request without a caller proof is refused', async () => {
    const r = await call(undefined, onboard({ tenantId: 'initrode', model: 'pool' }));
    expect(r.statusCode).toBe(401);
    expect(r.json.message).toContain('the request carries no caller proof');
    expect(await moto.get('initrode')).toBeUndefined();
  });

  test('a direct invocation that writes a named principal into the event is refused: who asks comes from STS', async () => {
    // Anyone allowed lambda:InvokeFunction can write requestContext; only STS's answer counts.
    const forged = await call(DEVELOPER, onboard({ tenantId: 'initrode', model: 'pool' }), {
      context: APPROVER_USER,
    });
    expect(forged.statusCode).toBe(401);
    expect(forged.json.message).toBe(
      'the request was signed by one principal and its caller proof by another',
    );
    const noContext = await call(DEVELOPER, onboard({ tenantId: 'initrode', model: 'pool' }), {
      context: null,
    });
    expect(noContext.statusCode).toBe(403);
    expect(noContext.json.message).toContain(`${DEVELOPER.arn} is neither a named requester`);
    expect(await moto.get('initrode')).toBeUndefined();
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test.each([
    [
      "signed with a key that is not the principal's",
      async () => {
        const body = JSON.parse(
          await entryRequestBody({
            payload: JSON.stringify(onboard({ tenantId: 'initrode', model: 'pool' })),
            region: 'us-east-1',
            credentials: { accessKeyId: APPROVER.accessKeyId, secretAccessKey: 'guessed' },
          }),
        );
        return { body, expected: 'STS did not accept the caller proof (SignatureDoesNotMatch)' };
      },
    ],
    [
      'signed for another request',
      async () => {
        const body = JSON.parse(
          await entryRequestBody({
            payload: JSON.stringify({ action: 'offboard', request: { tenantId: 'acme' } }),
            region: 'us-east-1',
            credentials: APPROVER,
          }),
        );
        body.payload = JSON.stringify(onboard({ tenantId: 'initrode', model: 'pool' }));
        return { body, expected: 'the caller proof was signed for another request' };
      },
    ],
    [
      'addressed to a host that is not STS',
      async () => {
        const body = JSON.parse(
          await entryRequestBody({
            payload: JSON.stringify(onboard({ tenantId: 'initrode', model: 'pool' })),
            region: 'us-east-1',
            credentials: APPROVER,
          }),
        );
        body.proof.url = 'https://attacker.example/';
        return { body, expected: 'the caller proof is addressed to https://attacker.example/, not to STS' };
      },
    ],
    [
      'older than five minutes',
      async () => {
        const body = JSON.parse(
          await entryRequestBody({
            payload: JSON.stringify(onboard({ tenantId: 'initrode', model: 'pool' })),
            region: 'us-east-1',
            credentials: APPROVER,
            now: new Date(Date.now() - 10 * 60 * 1000),
          }),
        );
        return { body, expected: 'the caller proof is older than 5 minutes' };
      },
    ],
  ])('a caller proof %s is refused and nothing changes', async (_what, make) => {
    const { body, expected } = await make();
    const r = await entry.handler({
      body: JSON.stringify(body),
      isBase64Encoded: false,
      requestContext: { http: { method: 'POST' } },
    } as unknown as LambdaFunctionURLEvent);
    expect(r.statusCode).toBe(401);
    expect(JSON.parse(r.body).message).toContain(expected);
    expect(await moto.get('initrode')).toBeUndefined();
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('a named requester within the catalog rules is accepted, recorded and the workflow started', async () => {
    const caller = REQUESTER.arn;
    const r = await call(REQUESTER, onboard({ tenantId: 'initrode', model: 'pool' }));
    expect(r.statusCode).toBe(202);
    expect(r.json).toMatchObject({ tenantId: 'initrode', action: 'onboard', requestedBy: caller });
    const item = await moto.get('initrode');
    expect(item).toMatchObject({ status: 'provisioning', requestedBy: caller, lock: r.json.execution });
    const [start] = sfn.commandCalls(StartExecutionCommand);
    const input = start.args[0].input;
    expect(input.stateMachineArn).toBe(STATE_MACHINE);
    // The execution's ARN is the lock the entry took: the workflow's first step admits only that execution.
    expect(`${STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${input.name}`).toBe(item!.lock);
    // Named for its action, model and tenant (the runners' IAM patterns read these), within Step Functions' 80.
    expect(input.name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    expect(input.name).toMatch(
      new RegExp(`^onboard_pool_${tenantMark('initrode')}_initrode-\\d+-[0-9a-f]{8}$`),
    );
    expect(JSON.parse(input.input!)).toMatchObject({
      action: 'onboard',
      requestedBy: caller,
      tenant: { tenantId: 'initrode', model: 'pool', adminEmail: 'admin@initrode.example' },
    });
  });

  test('outside the catalog rules a requester is refused and an approver accepted', async () => {
    const big = onboard({ tenantId: 'initrode', model: 'silo', settings: { instanceClass: 'r6g.large' } });
    const refused = await call(REQUESTER, big);
    expect(refused.statusCode).toBe(403);
    expect(refused.json).toMatchObject({ error: 'approval_required' });
    expect(refused.json.message).toContain(
      'settings.instanceClass "r6g.large" (outside t4g.medium, t4g.large)',
    );
    expect(await moto.get('initrode')).toBeUndefined();
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);

    const accepted = await call(APPROVER, big);
    expect(accepted.statusCode).toBe(202);
    expect(await moto.get('initrode')).toMatchObject({ requestedBy: `${APPROVER_USER} (approver)` });
  });

  test('offboarding is a request like any other: an unnamed principal cannot offboard a tenant', async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: '{"id":"acme"}' });
    const before = await moto.get('acme');
    const r = await call(INTRUDER, {
      action: 'offboard',
      request: { tenantId: 'acme' },
    });
    expect(r.statusCode).toBe(403);
    expect(await moto.get('acme')).toEqual(before);
    const ok = await call(REQUESTER, { action: 'offboard', request: { tenantId: 'acme' } });
    expect(ok.statusCode).toBe(202);
    expect(await moto.get('acme')).toMatchObject({ status: 'offboarding', lock: ok.json.execution });
  });
});

describe('bad requests', () => {
  test.each([
    ['not json', 400, 'the payload is not JSON'],
    [
      { action: 'delete', request: { tenantId: 'acme' } },
      400,
      '"action" is "delete": use "onboard", "offboard", "restore", "move" or "purge"',
    ],
    [{ action: 'onboard' }, 400, '"request" must be an object'],
    [{ action: 'onboard', request: { tenantId: 'Bad Id', model: 'pool' } }, 400, 'field "id"'],
  ])('%j is refused (%d) with the reason, nothing written', async (body, status, message) => {
    const r = await call(REQUESTER, body);
    expect(r.statusCode).toBe(status);
    expect(r.json.message).toContain(message);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('only POST', async () => {
    const r = await call(REQUESTER, '', { method: 'GET' });
    expect(r.statusCode).toBe(405);
  });
});

test('a workflow that cannot be started leaves the tenant failed with the reason, and unlocked', async () => {
  sfn
    .on(StartExecutionCommand)
    .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
  const r = await call(REQUESTER, onboard({ tenantId: 'initrode', model: 'pool' }));
  expect(r.statusCode).toBe(502);
  expect(r.json.message).toBe('the onboarding workflow could not be started: Rate exceeded');
  const item = await moto.get('initrode');
  expect(item).toMatchObject({ status: 'failed', failureReason: r.json.message });
  expect(item!.lock).toBeUndefined();
  // A failed first onboarding can be asked for again.
  sfn.on(StartExecutionCommand).resolves({ executionArn: 'x', startDate: new Date() });
  expect((await call(REQUESTER, onboard({ tenantId: 'initrode', model: 'pool' }))).statusCode).toBe(202);
});

test('a workflow that cannot be started forgets the archive an approved request named, with the lock', async () => {
  sfn.on(StartExecutionCommand).rejects(new Error('Rate exceeded'));
  const archive = 'tenants/acme/20261128T030405Z-1a2b3c4d.tfa';
  const r = await call(APPROVER, onboard({ tenantId: 'acme-eu', model: 'pool', restoreFrom: archive }));
  expect(r.statusCode).toBe(502);
  const item = await moto.get('acme-eu');
  expect(item).toMatchObject({ status: 'failed' });
  expect(item!.lock).toBeUndefined();
  expect(item!.restoreArchive).toBeUndefined();
});

test('a restore whose workflow cannot be started leaves the tenant as it was (serving, or still frozen), with the reason', async () => {
  sfn.on(StartExecutionCommand).rejects(new Error('Rate exceeded'));
  const restore = (tenantId: string) => ({
    action: 'restore',
    request: { tenantId, from: `tenants/${tenantId}/20261128T030405Z-1a2b3c4d.tfa` },
  });
  await moto.put({ tenantId: 'acme', model: 'pool', status: 'active' });
  const r = await call(APPROVER, restore('acme'));
  expect(r.statusCode).toBe(502);
  let item = await moto.get('acme');
  expect(item).toMatchObject({ status: 'active', failureReason: r.json.message });
  for (const gone of ['lock', 'movingTo', 'restoreArchive'] as const) expect(item![gone]).toBeUndefined();
  // A tenant an earlier restore left frozen (`moving` within its model) stays so.
  await moto.put({ tenantId: 'globex', model: 'bridge', status: 'moving', movingTo: 'bridge' });
  expect((await call(APPROVER, restore('globex'))).statusCode).toBe(502);
  item = await moto.get('globex');
  expect(item).toMatchObject({ status: 'moving', movingTo: 'bridge' });
  expect(item!.lock).toBeUndefined();
  expect(item!.restoreArchive).toBeUndefined();
  // From a requester: refused before anything is written.
  sfn.on(StartExecutionCommand).resolves({ executionArn: 'x', startDate: new Date() });
  const asked = await call(REQUESTER, restore('acme'));
  expect(asked.statusCode).toBe(403);
  expect(asked.json.error).toBe('approval_required');
  expect((await moto.get('acme'))!.lock).toBeUndefined();
});

describe('a move between the pool and bridge cells', () => {
  const move = (tenantId: string, to: unknown) => ({ action: 'move', request: { tenantId, to } });
  const kept = (id: string, model: string) =>
    JSON.stringify({ id, name: id, model, settings: { deletionPolicy: 'retain' } });

  test("an approver's move sets the tenant moving to the other cell, locked for an execution named for that cell", async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: kept('acme', 'pool') });
    const asked = await call(REQUESTER, move('acme', 'bridge'));
    expect(asked.statusCode).toBe(403);
    expect(asked.json.error).toBe('approval_required');
    expect(await moto.get('acme')).toMatchObject({ status: 'active' });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);

    const r = await call(APPROVER, move('acme', 'bridge'));
    expect(r.statusCode).toBe(202);
    expect(await moto.get('acme')).toMatchObject({
      status: 'moving',
      model: 'pool',
      movingTo: 'bridge',
      lock: r.json.execution,
      requestedBy: `${APPROVER_USER} (approver)`,
    });
    const [start] = sfn.commandCalls(StartExecutionCommand);
    // The bridge cell's runner reads the history of moves into its cell only (its IAM pattern: move_bridge_*).
    expect(start.args[0].input.name).toMatch(
      new RegExp(`^move_bridge_${tenantMark('acme')}_acme-\\d+-[0-9a-f]{8}$`),
    );
    expect(JSON.parse(start.args[0].input.input!)).toMatchObject({
      action: 'move',
      tenant: { tenantId: 'acme', model: 'pool', movingTo: 'bridge' },
    });
  });

  test("an approver's move into a silo: moving to silo, for an execution the tenant's silo runner may read", async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: kept('acme', 'pool') });
    expect((await call(REQUESTER, move('acme', 'silo'))).statusCode).toBe(403);
    const r = await call(APPROVER, move('acme', 'silo'));
    expect(r.statusCode).toBe(202);
    expect(await moto.get('acme')).toMatchObject({
      status: 'moving',
      model: 'pool',
      movingTo: 'silo',
      lock: r.json.execution,
    });
    const [start] = sfn.commandCalls(StartExecutionCommand);
    // The silo's runner reads the history of moves of its own tenant into a silo only (move_silo_<mark>_*).
    expect(start.args[0].input.name).toMatch(
      new RegExp(`^move_silo_${tenantMark('acme')}_acme-\\d+-[0-9a-f]{8}$`),
    );
  });

  test("an approver's move out of a silo: moving to pool, for an execution the silo's runner may describe", async () => {
    await moto.put({ tenantId: 'zorp', model: 'silo', status: 'active', request: kept('zorp', 'silo') });
    expect((await call(REQUESTER, move('zorp', 'pool'))).statusCode).toBe(403);
    // A silo's profile goes with a move into a silo only.
    const profiled = await call(APPROVER, {
      action: 'move',
      request: { tenantId: 'zorp', to: 'pool', profile: 'production' },
    });
    expect(profiled.statusCode).toBe(400);
    const r = await call(APPROVER, move('zorp', 'pool'));
    expect(r.statusCode).toBe(202);
    expect(await moto.get('zorp')).toMatchObject({
      status: 'moving',
      model: 'silo',
      movingTo: 'pool',
      lock: r.json.execution,
    });
    const [start] = sfn.commandCalls(StartExecutionCommand);
    // Named for the cell it moves to (whose runner reads its history); the silo's runner describes it by its mark.
    expect(start.args[0].input.name).toMatch(
      new RegExp(`^move_pool_${tenantMark('zorp')}_zorp-\\d+-[0-9a-f]{8}$`),
    );
  });

  test.each([
    ['acme', 'shared', '"to" is "shared": use "pool", "bridge" or "silo"'],
    ['acme', 'pool', 'is already a pool tenant'],
    ['nobody', 'bridge', 'tenant "nobody" is unknown'],
    ['northwind', 'silo', 'is already a silo tenant'],
    ['kept', 'pool', 'still has the pool copy its last move kept'],
    // One kept copy a tenant at a time: a move into a silo would overwrite the record of the pool copy.
    ['kept', 'silo', 'still has the pool copy its last move kept (the registry records one kept copy'],
    ['norequest', 'bridge', 'has no request kept in the registry'],
    ['offboarded', 'bridge', 'is offboarded: only an active tenant is moved'],
    ['restoring', 'bridge', 'is moving to pool: only an active tenant is moved'],
  ])('a move of %s to %s is refused (400): %s; nothing written', async (tenantId, to, message) => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: kept('acme', 'pool') });
    await moto.put({
      tenantId: 'northwind',
      model: 'silo',
      status: 'active',
      request: kept('northwind', 'silo'),
    });
    await moto.put({
      tenantId: 'kept',
      model: 'bridge',
      status: 'active',
      keptCopy: 'pool',
      request: kept('kept', 'bridge'),
    });
    await moto.put({ tenantId: 'norequest', model: 'pool', status: 'active' });
    await moto.put({
      tenantId: 'offboarded',
      model: 'pool',
      status: 'offboarded',
      request: kept('offboarded', 'pool'),
    });
    // A restore over its data left it frozen within its cell.
    await moto.put({
      tenantId: 'restoring',
      model: 'pool',
      status: 'moving',
      movingTo: 'pool',
      request: kept('restoring', 'pool'),
    });
    const before = await moto.get(tenantId);
    const r = await call(APPROVER, move(tenantId, to));
    expect(r.statusCode).toBe(400);
    expect(r.json.message).toContain(message);
    expect(await moto.get(tenantId)).toEqual(before);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('a move whose rollback failed (moving, unlocked) is finished by a new request to the same cell only', async () => {
    await moto.put({
      tenantId: 'acme',
      model: 'pool',
      status: 'moving',
      movingTo: 'bridge',
      request: kept('acme', 'pool'),
      failureReason: 'the rollback failed',
    });
    const back = await call(APPROVER, move('acme', 'pool'));
    expect(back.statusCode).toBe(400);
    const r = await call(APPROVER, move('acme', 'bridge'));
    expect(r.statusCode).toBe(202);
    expect(await moto.get('acme')).toMatchObject({
      status: 'moving',
      movingTo: 'bridge',
      lock: r.json.execution,
      failureReason: 'the rollback failed',
    });
  });

  test('a move whose workflow cannot be started leaves the tenant as it was, with the reason', async () => {
    sfn.on(StartExecutionCommand).rejects(new Error('Rate exceeded'));
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', request: kept('acme', 'pool') });
    const r = await call(APPROVER, move('acme', 'bridge'));
    expect(r.statusCode).toBe(502);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'pool', failureReason: r.json.message });
    expect(item!.lock).toBeUndefined();
    expect(item!.movingTo).toBeUndefined();
    // One a failed rollback left moving stays so (still frozen).
    await moto.put({
      tenantId: 'globex',
      model: 'bridge',
      status: 'moving',
      movingTo: 'pool',
      request: kept('globex', 'bridge'),
    });
    expect((await call(APPROVER, move('globex', 'pool'))).statusCode).toBe(502);
    expect(await moto.get('globex')).toMatchObject({ status: 'moving', movingTo: 'pool' });
    expect((await moto.get('globex'))!.lock).toBeUndefined();
  });
});

describe('a purge of the copy a move kept', () => {
  const kept = (id: string, model: string) =>
    JSON.stringify({ id, name: id, model, settings: { deletionPolicy: 'destroy' } });
  beforeEach(async () => {
    await moto.put({
      tenantId: 'acme',
      model: 'bridge',
      status: 'active',
      keptCopy: 'pool',
      deletionPolicy: 'destroy',
      request: kept('acme', 'bridge'),
    });
  });

  test("an approver's purge locks the tenant, which serves on, for the copy it removes", async () => {
    const asked = await call(REQUESTER, { action: 'purge', request: { tenantId: 'acme' } });
    expect(asked.statusCode).toBe(403);
    expect(asked.json.error).toBe('approval_required');
    const r = await call(APPROVER, { action: 'purge', request: { tenantId: 'acme' } });
    expect(r.statusCode).toBe(202);
    expect(await moto.get('acme')).toMatchObject({
      status: 'active',
      model: 'bridge',
      keptCopy: 'pool',
      purgeCopy: 'pool',
      lock: r.json.execution,
    });
    const [start] = sfn.commandCalls(StartExecutionCommand);
    expect(JSON.parse(start.args[0].input.input!)).toMatchObject({
      action: 'purge',
      tenant: { tenantId: 'acme', model: 'bridge', purgeCopy: 'pool' },
    });
  });

  test('refused with nothing written: no kept copy, held, or not active; a workflow not started releases it', async () => {
    await moto.put({ tenantId: 'globex', model: 'pool', status: 'active', request: kept('globex', 'pool') });
    const none = await call(APPROVER, { action: 'purge', request: { tenantId: 'globex' } });
    expect(none.statusCode).toBe(400);
    expect(none.json.message).toContain('has no copy kept by a move: there is nothing to purge');
    await moto.put({ ...(await moto.get('acme'))!, lock: 'arn:aws:states:x' });
    const held = await call(APPROVER, { action: 'purge', request: { tenantId: 'acme' } });
    expect(held.json.message).toContain('is being changed by another request');
    await moto.put({ ...(await moto.get('acme'))!, lock: undefined });
    sfn.on(StartExecutionCommand).rejects(new Error('Rate exceeded'));
    const r = await call(APPROVER, { action: 'purge', request: { tenantId: 'acme' } });
    expect(r.statusCode).toBe(502);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', keptCopy: 'pool' });
    expect(item!.lock).toBeUndefined();
    expect(item!.purgeCopy).toBeUndefined();
  });

  test('refused with nothing written: a tenant moving, failed or onboarding, and a kept copy that is where it serves', async () => {
    const acme = (await moto.get('acme'))!;
    for (const [change, message] of [
      [{ status: 'moving', movingTo: 'pool' }, 'is moving: wait for the request in progress to end'],
      [{ status: 'failed' }, 'is failed: wait for the request in progress to end'],
      [{ status: 'provisioning' }, 'is provisioning: wait for the request in progress to end'],
      [{ keptCopy: 'bridge' }, 'has no copy kept by a move: there is nothing to purge'],
    ] as const) {
      await moto.put({ ...acme, ...change });
      const before = await moto.get('acme');
      const r = await call(APPROVER, { action: 'purge', request: { tenantId: 'acme' } });
      expect({ status: r.statusCode, message: r.json.message }).toEqual({
        status: 400,
        message: expect.stringContaining(message),
      });
      expect(await moto.get('acme')).toEqual(before);
    }
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  test('an offboarded tenant (its data kept) may have its kept copy purged; a workflow not started leaves it offboarded', async () => {
    await moto.put({ ...(await moto.get('acme'))!, status: 'offboarded' });
    const r = await call(APPROVER, { action: 'purge', request: { tenantId: 'acme' } });
    expect(r.statusCode).toBe(202);
    expect(await moto.get('acme')).toMatchObject({
      status: 'offboarded',
      purgeCopy: 'pool',
      lock: r.json.execution,
    });
    await moto.put({ ...(await moto.get('acme'))!, lock: undefined, purgeCopy: undefined });
    sfn.on(StartExecutionCommand).rejects(new Error('Rate exceeded'));
    const failed = await call(APPROVER, { action: 'purge', request: { tenantId: 'acme' } });
    expect(failed.statusCode).toBe(502);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'offboarded', keptCopy: 'pool' });
    expect(item!.failureReason).toContain('the onboarding workflow could not be started: Rate exceeded');
    for (const gone of ['lock', 'purgeCopy'] as const) expect(item![gone]).toBeUndefined();
  });

  test('offboarding with its data destroyed waits for the purge: the kept copy would outlive it', async () => {
    const r = await call(REQUESTER, { action: 'offboard', request: { tenantId: 'acme' } });
    expect(r.statusCode).toBe(400);
    expect(r.json.message).toContain(
      'the pool copy its move kept would outlive it: nothing was changed; purge that copy first (npm run request -- purge --tenant acme)',
    );
    expect((await moto.get('acme'))!.status).toBe('active');
  });
});
