import { mockClient } from 'aws-sdk-client-mock';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { sql } from '../../db/sql';
import { Moto, startMoto } from '../helpers/moto';
import {
  ONBOARDING_WORKFLOW,
  RunnerCell,
  startRunnerCell,
  WORKFLOW_EXECUTIONS,
} from '../helpers/runner-cell';

// A new tenant of one shared cell started from an archive of the other (lambda/tenant-provisioner/
// mobility-handover.ts): both cells' runners run for real, each against its own database on the embedded
// PostgreSQL and its own bucket in moto's S3, with its own archive signing key; the registry is moto's DynamoDB, and
// the digest is recorded by the onboarding workflow's real step (lambda/onboarding). The vouching runner's link is
// presigned by the SDK and fetched over HTTP from moto. Secrets Manager and Step Functions are stubbed at the SDK
// boundary.
const secrets = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);

let moto: Moto;
let pool: RunnerCell;
let bridge: RunnerCell;
let steps: typeof import('../../lambda/onboarding');

const invoices = async (cell: RunnerCell, tenant: string) =>
  (
    await cell.tenants
      .forTenant(tenant)
      .run<{ customer: string }>(sql`SELECT customer FROM invoices ORDER BY customer`)
  ).rows.map((r) => r.customer);

const addInvoices = (cell: RunnerCell, tenant: string, n: number) =>
  cell.tenants.forTenant(tenant).run(
    sql`WITH i AS (INSERT INTO invoices (customer) SELECT ${tenant} || ' customer ' || g FROM generate_series(1, ${n}::integer) g RETURNING id)
        INSERT INTO invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
        SELECT id, 1, 'Consulting', 2, 5000 FROM i`,
  );

/** What the onboarding entry writes for an approver's request, and Step Functions says of its execution. */
async function requested(
  tenantId: string,
  model: 'pool' | 'bridge',
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
  steps = await import('../../lambda/onboarding');
  await pool.onboard('wonka');
  await addInvoices(pool, 'wonka', 25);
  await bridge.onboard('dursley');
  await addInvoices(bridge, 'dursley', 15);
});

afterAll(async () => {
  await pool?.db.drop();
  await bridge?.db.drop();
  await moto?.stop();
});

describe("a new tenant from the other shared cell's archive", () => {
  test('pool -> bridge: vouched for by the pool runner, its digest recorded, restored by the bridge runner', async () => {
    const exported = await pool.run({ action: 'export', tenantId: 'wonka' });
    const archive = exported.archive;
    const execution = `${WORKFLOW_EXECUTIONS}onboard-wonka-b-1`;
    await requested('wonka-b', 'bridge', archive, 'pool', execution);
    await bridge.onboard('wonka-b');

    // The pool runner vouches: the archive verified with the pool's key, its digest and a link to it.
    const vouched = await pool.run({ action: 'vouch', tenantId: 'wonka-b', archive, execution });
    expect(vouched).toMatchObject({
      action: 'vouch',
      model: 'pool',
      archive,
      archiveTenantId: 'wonka',
      rows: { invoices: 25, invoice_items: 25 },
    });
    expect(vouched.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(vouched.handover).toContain('X-Amz-Signature=');
    expect(vouched.handover).toContain('X-Amz-Expires=900');
    const handover = vouched.handover!;

    // Before the workflow records the digest, the bridge runner restores nothing.
    const restore = (fields: Record<string, unknown> = {}) =>
      bridge.run({ action: 'restore', tenantId: 'wonka-b', archive, execution, handover, ...fields });
    await expect(restore()).rejects.toThrow(
      `tenant "wonka-b" is being onboarded from ${archive} of the pool cell, but the registry records no digest vouched for it`,
    );
    // The workflow's step records it, for the execution that holds the tenant and that archive only.
    await expect(
      steps.handler({
        step: 'recordArchiveDigest',
        tenantId: 'wonka-b',
        execution: `${execution}-other`,
        archive,
        sha256: vouched.sha256!,
      }),
    ).rejects.toThrow(`tenant "wonka-b" is not held by execution ${execution}-other while provisioning`);
    await expect(
      steps.handler({
        step: 'recordArchiveDigest',
        tenantId: 'wonka-b',
        execution,
        archive: 'tenants/wonka/other.tfa',
        sha256: vouched.sha256!,
      }),
    ).rejects.toThrow(`tenant "wonka-b" is not being onboarded from tenants/wonka/other.tfa of another cell`);
    await steps.handler({
      step: 'recordArchiveDigest',
      tenantId: 'wonka-b',
      execution,
      archive,
      sha256: vouched.sha256!,
    });
    expect(await moto.get('wonka-b')).toMatchObject({ restoreArchiveSha256: vouched.sha256 });

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
  });

  test('bridge -> pool the same way', async () => {
    const exported = await bridge.run({ action: 'export', tenantId: 'dursley' });
    const execution = `${WORKFLOW_EXECUTIONS}onboard-dursley-p-1`;
    await requested('dursley-p', 'pool', exported.archive, 'bridge', execution);
    await pool.onboard('dursley-p');
    const vouched = await bridge.run({
      action: 'vouch',
      tenantId: 'dursley-p',
      archive: exported.archive,
      execution,
    });
    await steps.handler({
      step: 'recordArchiveDigest',
      tenantId: 'dursley-p',
      execution,
      archive: exported.archive,
      sha256: vouched.sha256!,
    });
    const restored = await pool.run({
      action: 'restore',
      tenantId: 'dursley-p',
      archive: exported.archive,
      execution,
      handover: vouched.handover,
    });
    expect(restored).toMatchObject({ model: 'pool', rows: { invoices: 15 }, checksums: exported.checksums });
    expect(await invoices(pool, 'dursley-p')).toEqual(await invoices(bridge, 'dursley'));
  });

  test('refused, with nothing written: the wrong runner, the wrong request, other bytes, a destroyed source', async () => {
    const exported = await pool.run({ action: 'export', tenantId: 'wonka' });
    const archive = exported.archive;
    const execution = `${WORKFLOW_EXECUTIONS}onboard-wonka-c-1`;
    await requested('wonka-c', 'bridge', archive, 'pool', execution);
    await bridge.onboard('wonka-c');
    const nothing = `nothing was written`;

    // Only the archive's own cell vouches, and only for the workflow.
    await expect(bridge.run({ action: 'vouch', tenantId: 'wonka-c', archive, execution })).rejects.toThrow(
      `it is a bridge tenant, not a pool tenant started from this bridge cell's archive; ${nothing}`,
    );
    await expect(pool.run({ action: 'vouch', tenantId: 'wonka-c', archive })).rejects.toThrow(
      'mobility event field "execution" is undefined: "vouch" is the onboarding workflow\'s',
    );
    // The execution must have been started for this archive of this cell.
    sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves({
      status: 'RUNNING',
      stateMachineArn: ONBOARDING_WORKFLOW,
      input: JSON.stringify({
        action: 'onboard',
        tenant: { tenantId: 'wonka-c', model: 'bridge', restoreArchive: archive },
      }),
    });
    await expect(pool.run({ action: 'vouch', tenantId: 'wonka-c', archive, execution })).rejects.toThrow(
      `the execution was not started to onboard this tenant in this model from this archive of the pool cell; ${nothing}`,
    );
    await requested('wonka-c', 'bridge', archive, 'pool', execution);
    const vouched = await pool.run({ action: 'vouch', tenantId: 'wonka-c', archive, execution });
    const handover = vouched.handover!;
    const restore = (fields: Record<string, unknown> = {}) =>
      bridge.run({ action: 'restore', tenantId: 'wonka-c', archive, execution, handover, ...fields });

    // A link anywhere but S3, or a handover an operator asks for: refused before anything is fetched.
    await expect(restore({ handover: 'http://169.254.169.254/latest/meta-data/' })).rejects.toThrow(
      'mobility event field "handover" is "http://169.254.169.254/latest/meta-data/": the presigned link',
    );
    await expect(restore({ execution: undefined })).rejects.toThrow('mobility event field "handover"');
    // A digest that is not the one vouched for (the registry written by someone else): the bytes do not match.
    await moto.put({
      ...(await moto.get('wonka-c')),
      restoreArchiveSha256: 'ab'.repeat(32),
    });
    await expect(restore()).rejects.toThrow(
      `has SHA-256 ${vouched.sha256}, not ${'ab'.repeat(32)} as the pool cell's runner vouched for`,
    );
    // Other bytes under the same key since (the link reads the current object): they do not give the digest.
    await moto.put({ ...(await moto.get('wonka-c')), restoreArchiveSha256: vouched.sha256 });
    const original = await pool.s3.send(
      new GetObjectCommand({ Bucket: 'pool-handover-archives', Key: archive }),
    );
    const bytes = Buffer.from(await original.Body!.transformToByteArray());
    const altered = Buffer.from(bytes);
    altered[altered.length - 5] ^= 1;
    await pool.s3.send(
      new PutObjectCommand({ Bucket: 'pool-handover-archives', Key: archive, Body: altered }),
    );
    await expect(restore()).rejects.toThrow(`as the pool cell's runner vouched for and the registry records`);
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
});
