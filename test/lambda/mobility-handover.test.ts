import { mockClient } from 'aws-sdk-client-mock';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient } from '@aws-sdk/client-sfn';
import { vouchStateName } from '../../contracts';
import { Moto, startMoto } from '../helpers/moto';
import {
  answerTasks,
  ONBOARDING_WORKFLOW,
  RunnerCell,
  startRunnerCell,
  WORKFLOW_EXECUTIONS,
} from '../helpers/runner-cell';

// A new tenant of one shared cell started from an archive of the other (lambda/tenant-provisioner/
// mobility-handover.ts): both cells' runners run for real, each against its own database on the embedded
// PostgreSQL and its own bucket in moto's S3, with its own archive signing key; the registry is moto's DynamoDB. The
// vouching runner's link is presigned by the SDK and fetched over HTTP from moto. Secrets Manager and Step
// Functions are stubbed at the SDK boundary: the vouch task's token (SendTaskSuccess) and the execution's history
// (GetExecutionHistory) as Step Functions would keep them.
const secrets = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);

let moto: Moto;
let pool: RunnerCell;
let bridge: RunnerCell;
let silo: RunnerCell;
/** What the runners sent Step Functions for each task token (SendTaskSuccess output, or the failure). */

const invoices = (cell: RunnerCell, tenant: string) => cell.invoices(tenant);
const addInvoices = (cell: RunnerCell, tenant: string, n: number) => cell.addInvoices(tenant, n);

/** What the onboarding entry writes for an approver's request, and Step Functions says of its execution. */
async function requested(
  tenantId: string,
  model: 'pool' | 'bridge' | 'silo',
  archive: string,
  from: 'pool' | 'bridge',
  execution: string,
): Promise<void> {
  await moto.put({
    tenantId,
    model,
    status: 'provisioning',
    lock: execution,
    restoreArchive: archive,
    restoreArchiveModel: from,
  });
  sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
    status: 'RUNNING',
    stateMachineArn: ONBOARDING_WORKFLOW,
    input: JSON.stringify({
      action: 'onboard',
      tenant: { tenantId, model, restoreArchive: archive, restoreArchiveModel: from },
    }),
  });
}

/** Step Functions as it answers the runners' vouch tasks (runner-cell.ts answerTasks). */
const { tokens, answered } = answerTasks(sfn);

/** The execution's history after its vouch task of `from` for `to` succeeded with `output` (or none yet). */
function history(
  execution: string,
  from: 'pool' | 'bridge',
  to: 'pool' | 'bridge' | 'silo',
  output?: string,
): void {
  const vouched = output ? JSON.parse(output) : undefined;
  sfn.on(GetExecutionHistoryCommand, { executionArn: execution }).resolves({
    events: vouched
      ? [
          {
            type: 'TaskStateExited',
            id: 12,
            timestamp: new Date(),
            stateExitedEventDetails: {
              name: vouchStateName(from, to),
              // As the vouch state's ResultSelector and ResultPath leave the state (from-archive.ts).
              output: JSON.stringify({
                tenant: {},
                vouched: {
                  sha256: vouched.sha256,
                  handover: vouched.handover,
                  execution: vouched.execution,
                  tenantId: vouched.tenantId,
                  archive: vouched.archive,
                },
              }),
            },
          },
        ]
      : [],
  });
}

beforeAll(async () => {
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  moto = await startMoto();
  await moto.resetRegistry();
  pool = await startRunnerCell({
    model: 'pool',
    database: 'handover_pool',
    bucket: 'pool-handover-archives',
    archiveKeyHex: 'c1'.repeat(32),
    moto,
    secrets,
  });
  bridge = await startRunnerCell({
    model: 'bridge',
    database: 'handover_bridge',
    bucket: 'bridge-handover-archives',
    archiveKeyHex: 'c2'.repeat(32),
    moto,
    secrets,
  });
  await pool.onboard('wonka');
  await addInvoices(pool, 'wonka', 25);
  await bridge.onboard('dursley');
  await addInvoices(bridge, 'dursley', 15);
  // A new silo's own cell: its database, bucket and key, for its one tenant.
  silo = await startRunnerCell({
    model: 'silo',
    siloTenant: 'wonka-s',
    database: 'handover_silo',
    bucket: 'silo-handover-archives',
    archiveKeyHex: 'c3'.repeat(32),
    moto,
    secrets,
  });
});

afterAll(async () => {
  await pool?.db.drop();
  await bridge?.db.drop();
  await silo?.db.drop();
  await moto?.stop();
});

describe("a new tenant from the other shared cell's archive", () => {
  test('pool -> bridge: vouched for by the pool runner to the workflow only, restored by the bridge runner', async () => {
    const exported = await pool.run({ action: 'export', tenantId: 'wonka' });
    const archive = exported.archive;
    const execution = `${WORKFLOW_EXECUTIONS}onboard-wonka-b-1`;
    await requested('wonka-b', 'bridge', archive, 'pool', execution);
    await bridge.onboard('wonka-b');

    // The pool runner vouches: the archive verified with the pool's key; its digest and a link to it go to the
    // workflow's task by its token. Whoever invoked the runner gets the digest, never the link.
    tokens.add('token-1');
    const vouched = await pool.run({
      action: 'vouch',
      tenantId: 'wonka-b',
      archive,
      execution,
      taskToken: 'token-1',
    });
    expect(vouched).toMatchObject({
      action: 'vouch',
      model: 'pool',
      archive,
      archiveTenantId: 'wonka',
      rows: { invoices: 25, invoice_items: 25 },
    });
    expect(JSON.stringify(vouched)).not.toContain('X-Amz-Signature');
    const output = answered.get('token-1')!.output!;
    const { sha256, handover } = JSON.parse(output) as { sha256: string; handover: string };
    expect(sha256).toBe(vouched.sha256);
    expect(handover).toContain('X-Amz-Signature=');
    expect(handover).toContain('X-Amz-Expires=300');

    // Before the execution's history holds the vouch task's answer, the bridge runner restores nothing.
    const restore = (fields: Record<string, unknown> = {}) =>
      bridge.run({ action: 'restore', tenantId: 'wonka-b', archive, execution, handover, ...fields });
    history(execution, 'pool', 'bridge');
    await expect(restore()).rejects.toThrow(
      `tenant "wonka-b" is being onboarded from ${archive} of the pool cell, but the execution's history has no digest from its VouchPoolArchiveForBridge task`,
    );
    history(execution, 'pool', 'bridge', output);
    const restored = await restore();
    expect(restored).toMatchObject({
      action: 'restore',
      tenantId: 'wonka-b',
      model: 'bridge',
      archiveTenantId: 'wonka',
      rows: { invoices: 25, invoice_items: 25 },
      checksums: exported.checksums,
    });
    expect(await invoices(bridge, 'wonka-b')).toEqual(await invoices(pool, 'wonka'));
    // Run again after a lost answer: the rows are there, nothing is written twice.
    expect(await restore()).toMatchObject({ alreadyThere: true });
    expect((await invoices(bridge, 'wonka-b')).length).toBe(25);
    // The runners' logs name a link and a token as present, never their values.
    const logged = (console.log as jest.Mock).mock.calls.map((c) => String(c[0])).join('\n');
    expect(logged).toContain('(a link, not logged)');
    expect(logged).not.toContain('X-Amz-Signature');
    expect(logged).not.toContain('token-1');
  });

  test('bridge -> pool the same way', async () => {
    const exported = await bridge.run({ action: 'export', tenantId: 'dursley' });
    const execution = `${WORKFLOW_EXECUTIONS}onboard-dursley-p-1`;
    await requested('dursley-p', 'pool', exported.archive, 'bridge', execution);
    await pool.onboard('dursley-p');
    tokens.add('token-2');
    await bridge.run({
      action: 'vouch',
      tenantId: 'dursley-p',
      archive: exported.archive,
      execution,
      taskToken: 'token-2',
    });
    const output = answered.get('token-2')!.output!;
    history(execution, 'bridge', 'pool', output);
    const restored = await pool.run({
      action: 'restore',
      tenantId: 'dursley-p',
      archive: exported.archive,
      execution,
      handover: JSON.parse(output).handover,
    });
    expect(restored).toMatchObject({ model: 'pool', rows: { invoices: 15 }, checksums: exported.checksums });
    expect(await invoices(pool, 'dursley-p')).toEqual(await invoices(bridge, 'dursley'));
  });

  test("pool -> a new silo: handed over into the silo's own runner, which vouches for nothing", async () => {
    const exported = await pool.run({ action: 'export', tenantId: 'wonka' });
    const execution = `${WORKFLOW_EXECUTIONS}onboard-wonka-s-1`;
    await requested('wonka-s', 'silo', exported.archive, 'pool', execution);
    await silo.onboard('wonka-s');
    tokens.add('token-silo');
    await pool.run({
      action: 'vouch',
      tenantId: 'wonka-s',
      archive: exported.archive,
      execution,
      taskToken: 'token-silo',
    });
    const output = answered.get('token-silo')!.output!;
    history(execution, 'pool', 'silo', output);
    const restore = { action: 'restore', tenantId: 'wonka-s', archive: exported.archive, execution };
    const restored = await silo.run({ ...restore, handover: JSON.parse(output).handover });
    expect(restored).toMatchObject({ model: 'silo', rows: { invoices: 25 }, checksums: exported.checksums });
    expect(await invoices(silo, 'wonka-s')).toEqual(await invoices(pool, 'wonka'));
    // A silo's runner hands nothing over: its archives stay under its tenant's own key.
    tokens.add('token-silo-2');
    await expect(
      silo.run({
        action: 'vouch',
        tenantId: 'wonka-s',
        archive: 'tenants/wonka-s/x.tfa',
        execution,
        taskToken: 'token-silo-2',
      }),
    ).rejects.toThrow(
      "the runner of Tenant-wonka-s vouches for no archive: a silo's archives stay under its tenant's own key",
    );
    expect(answered.get('token-silo-2')).toMatchObject({ error: 'ProvisioningInputError' });
  });

  test('refused, with nothing written or handed out: the wrong runner, the wrong request or task, another link, other bytes, a destroyed source', async () => {
    const exported = await pool.run({ action: 'export', tenantId: 'wonka' });
    const archive = exported.archive;
    const execution = `${WORKFLOW_EXECUTIONS}onboard-wonka-c-1`;
    await requested('wonka-c', 'bridge', archive, 'pool', execution);
    await bridge.onboard('wonka-c');
    const nothing = `nothing was written`;
    const vouch = (runner: RunnerCell, taskToken: string | undefined) =>
      runner.run({ action: 'vouch', tenantId: 'wonka-c', archive, execution, taskToken });

    // Only the archive's own cell vouches (the task is failed with the reason, not left to time out), and only for
    // a task of the workflow.
    tokens.add('token-3');
    await expect(vouch(bridge, 'token-3')).rejects.toThrow(
      `it is a bridge tenant, not a pool tenant started from this bridge cell's archive; ${nothing}`,
    );
    expect(answered.get('token-3')).toMatchObject({ error: 'ProvisioningInputError' });
    await expect(vouch(pool, undefined)).rejects.toThrow(
      'mobility event field "taskToken" is undefined: the onboarding workflow\'s task token',
    );
    // An operator who can invoke the runner, with the execution the registry names but no token of the workflow's:
    // the archive is verified, but its link goes nowhere.
    const refused = await vouch(pool, 'forged-token').catch((e: Error) => e);
    expect(String(refused)).toContain(
      `Step Functions did not take the answer for this task token (TaskDoesNotExist: it is not a waiting task of the onboarding workflow, or the call failed): a link to ${archive} was not handed out`,
    );
    expect(String(refused)).not.toContain('X-Amz-Signature');
    // The execution must have been started for this archive of this cell.
    sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
      status: 'RUNNING',
      stateMachineArn: ONBOARDING_WORKFLOW,
      input: JSON.stringify({
        action: 'onboard',
        tenant: { tenantId: 'wonka-c', model: 'bridge', restoreArchive: archive },
      }),
    });
    tokens.add('token-4');
    await expect(vouch(pool, 'token-4')).rejects.toThrow(
      `the execution was not started to onboard this tenant in this model from this archive of the pool cell; ${nothing}`,
    );
    await requested('wonka-c', 'bridge', archive, 'pool', execution);
    // The archive's tenant leaving with its data destroyed: nothing is vouched for (a silo's runner, which reads its
    // own registry item only, relies on this check).
    const leaving = (await moto.get('wonka'))!;
    await moto.put({ ...leaving, deletionPolicy: 'destroy', status: 'offboarding' });
    tokens.add('token-destroyed');
    await expect(vouch(pool, 'token-destroyed')).rejects.toThrow(
      `tenant "wonka", whose archive ${archive} this is, is offboarding with its data destroyed`,
    );
    expect(answered.get('token-destroyed')).toMatchObject({ error: 'ProvisioningInputError' });
    await moto.put({ ...leaving });
    tokens.add('token-5');
    await vouch(pool, 'token-5');
    const output = answered.get('token-5')!.output!;
    const { sha256, handover } = JSON.parse(output) as { sha256: string; handover: string };
    history(execution, 'pool', 'bridge', output);
    const restore = (fields: Record<string, unknown> = {}) =>
      bridge.run({ action: 'restore', tenantId: 'wonka-c', archive, execution, handover, ...fields });

    // A link anywhere but S3, or a handover an operator asks for: refused before anything is fetched.
    await expect(restore({ handover: 'http://169.254.169.254/latest/meta-data/' })).rejects.toThrow(
      'mobility event field "handover" is (given, not shown): the presigned link',
    );
    await expect(restore({ execution: undefined })).rejects.toThrow('mobility event field "handover"');
    // A link of the invoker's own, to a forged archive in a bucket of theirs: not the link the pool cell's runner
    // handed to the execution, so nothing is fetched.
    await pool.s3.send(new CreateBucketCommand({ Bucket: 'attacker-bucket' }));
    await pool.s3.send(
      new PutObjectCommand({ Bucket: 'attacker-bucket', Key: archive, Body: Buffer.from('forged') }),
    );
    const forged = await getSignedUrl(
      pool.s3,
      new GetObjectCommand({ Bucket: 'attacker-bucket', Key: archive }),
    );
    await expect(restore({ handover: forged })).rejects.toThrow(
      `the link it names is not the one the pool cell's runner handed to the execution's VouchPoolArchiveForBridge task: ${nothing}`,
    );
    // The execution's vouch task answered for another request (a token of this execution's task, used by someone
    // who invoked the pool runner for another execution or archive): refused.
    for (const other of [
      { execution: `${execution}-other` },
      { archive: 'tenants/wonka/other.tfa' },
      { tenantId: 'x' },
    ]) {
      history(execution, 'pool', 'bridge', JSON.stringify({ ...JSON.parse(output), ...other }));
      await expect(restore()).rejects.toThrow(
        `the pool cell's runner answered the execution's VouchPoolArchiveForBridge task for another request`,
      );
    }
    // A link to another object, even one the history names (a vouching runner's fault): nothing is fetched.
    const elsewhere = await getSignedUrl(
      pool.s3,
      new GetObjectCommand({ Bucket: 'pool-handover-archives', Key: 'tenants/wonka/elsewhere.tfa' }),
    );
    history(execution, 'pool', 'bridge', JSON.stringify({ ...JSON.parse(output), handover: elsewhere }));
    await expect(restore({ handover: elsewhere })).rejects.toThrow(
      `the handed-over copy of ${archive} (from the pool cell's runner) is named by a link to another object; ${nothing}`,
    );
    history(execution, 'pool', 'bridge', output);
    // Other bytes under the vouched link since (it reads the key's current object): they do not give the digest.
    const original = await pool.s3.send(
      new GetObjectCommand({ Bucket: 'pool-handover-archives', Key: archive }),
    );
    const bytes = Buffer.from(await original.Body!.transformToByteArray());
    const altered = Buffer.from(bytes);
    altered[altered.length - 5] ^= 1;
    await pool.s3.send(
      new PutObjectCommand({ Bucket: 'pool-handover-archives', Key: archive, Body: altered }),
    );
    await expect(restore()).rejects.toThrow(
      `has SHA-256 ${(await import('crypto')).createHash('sha256').update(altered).digest('hex')}, not ${sha256} as the pool cell's runner vouched for`,
    );
    await pool.s3.send(new PutObjectCommand({ Bucket: 'pool-handover-archives', Key: archive, Body: bytes }));
    // The archive's tenant offboarded with its data destroyed meanwhile: no copy outlives the destroy.
    const wonka = await moto.get('wonka');
    await moto.put({ ...wonka, deletionPolicy: 'destroy', status: 'offboarding' });
    await expect(restore()).rejects.toThrow(
      `tenant "wonka", whose archive ${archive} this is, is offboarding with its data destroyed`,
    );
    await moto.put({ ...wonka });
    // A same-cell request (no restoreArchiveModel) takes no handover.
    const { restoreArchiveModel, ...sameCell } = (await moto.get('wonka-c'))!;
    expect(restoreArchiveModel).toBe('pool');
    await moto.put(sameCell);
    await expect(restore()).rejects.toThrow(`its request names an archive of the bridge cell; ${nothing}`);
    expect(await invoices(bridge, 'wonka-c')).toEqual([]);
  });

  test("the link's host must be this Region's S3 (as AWS presigns it), never anything else", async () => {
    const { parseMobilityEvent } = await import('../../lambda/tenant-provisioner/mobility-event');
    const { S3Client } = await import('@aws-sdk/client-s3');
    const emulator = process.env.AWS_ENDPOINT_URL_S3;
    delete process.env.AWS_ENDPOINT_URL_S3; // as in AWS: no emulator
    try {
      const event = (handover: string) => ({
        action: 'restore' as const,
        tenantId: 'wonka-b',
        archive: 'tenants/wonka/x.tfa',
        execution: `${WORKFLOW_EXECUTIONS}onboard-1`,
        handover,
      });
      for (const config of [
        { useDualstackEndpoint: true },
        { useDualstackEndpoint: true, forcePathStyle: true },
        {},
      ]) {
        const link = await getSignedUrl(
          new S3Client(config),
          new GetObjectCommand({ Bucket: 'pool-archives-1a2b', Key: 'tenants/wonka/x.tfa' }),
          { expiresIn: 300 },
        );
        expect(parseMobilityEvent(event(link)).handover?.href).toBe(new URL(link).href);
      }
      for (const bad of [
        'https://evil.example.com/tenants/wonka/x.tfa',
        'https://pool.s3.us-west-2.amazonaws.com/tenants/wonka/x.tfa',
        'https://s3.us-east-1.amazonaws.com.evil.example/x',
        'http://pool.s3.us-east-1.amazonaws.com/x',
        'https://user:pw@pool.s3.us-east-1.amazonaws.com/x',
        'https://pool.s3.us-east-1.amazonaws.com:8443/x',
      ]) {
        expect(() => parseMobilityEvent(event(bad))).toThrow(
          'mobility event field "handover" is (given, not shown)',
        );
      }
    } finally {
      process.env.AWS_ENDPOINT_URL_S3 = emulator;
    }
  });
});
