import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gunzipSync, gzipSync } from 'zlib';
import { mockClient } from 'aws-sdk-client-mock';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  GetObjectCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Signer } from '@aws-sdk/rds-signer';
import {
  DescribeExecutionCommand,
  ExecutionStatus,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { DescribeTasksCommand, ECSClient, RunTaskCommand } from '@aws-sdk/client-ecs';
import { runHandedEvent } from '../../lambda/tenant-provisioner/task-main';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import * as launcherEntry from '../../lambda/tenant-provisioner/launcher-entry';
import { LATEST_VERSION } from '../../db/migrations';
import { deleteTenantArchives } from '../../lambda/tenant-provisioner/archives';
import { ArchiveKey, endRestore, estimateTenantBytes, verifyArchive } from '../../db/mobility';
import { dataModel } from '../../db/models';
import { OWNER_ROLE } from '../../db/roles';
import { sql } from '../../db/sql';
import { TenantDatabase } from '../../db/tenant-context';
import { RUNTIME_PASSWORD, TestDatabase } from '../db/harness';
import { Moto, startMoto } from '../helpers/moto';
import {
  ONBOARDING_WORKFLOW,
  RunnerCell,
  startRunnerCell,
  WORKFLOW_EXECUTIONS,
} from '../helpers/runner-cell';

// The mobility runner (lambda/tenant-provisioner/mobility-entry.ts) runs for real against the embedded PostgreSQL
// server (exports as the runtime role app_pool, restores as the master user) and against moto's DynamoDB (the
// registry) and S3 (the cell's archive bucket); only Secrets Manager is stubbed, at the SDK boundary.
const secrets = mockClient(SecretsManagerClient);
// Step Functions (the onboarding workflow's executions) is stubbed at the SDK boundary too.
const sfn = mockClient(SFNClient);
// ECS (the cell's runner task, started by the function for a step too large for it) is stubbed at the SDK boundary;
// the task's own code then runs here, with the environment the task definition and the start give it.
const ecs = mockClient(ECSClient);
// The function asks the cell's launcher (a function of its own) to start the task: Lambda is stubbed at the SDK
// boundary, and the launcher's own code runs here with the environment the construct gives it.
const lambdaStub = mockClient(LambdaClient);
const LAUNCHER = 'pool-runner-launcher';
const launcherEnv = {
  RUNNER_TASK_CLUSTER: 'arn:aws:ecs:us-east-1:111122223333:cluster/pool-cell',
  RUNNER_TASK_DEFINITION: 'PoolCellMobilityTask',
  RUNNER_TASK_SUBNETS: 'subnet-a,subnet-b',
  RUNNER_TASK_SECURITY_GROUPS: 'sg-runner',
  RUNNER_TASK_PUBLIC_IP: 'false',
};
lambdaStub.on(InvokeCommand, { FunctionName: LAUNCHER }).callsFake(async (input: { Payload: Uint8Array }) => {
  const saved = { ...process.env };
  Object.assign(process.env, launcherEnv);
  try {
    const r = await launcherEntry.handler(JSON.parse(new TextDecoder().decode(input.Payload)));
    return { StatusCode: 200, Payload: new TextEncoder().encode(JSON.stringify(r)) };
  } catch (e) {
    return {
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: new TextEncoder().encode(JSON.stringify({ errorMessage: (e as Error).message })),
    };
  } finally {
    for (const k of Object.keys(launcherEnv)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
// CloudFormation says a tenant stack is being deleted (a tenant resource's Delete offboards only then).
const cloudformation = mockClient(CloudFormationClient);
cloudformation.on(DescribeStacksCommand).resolves({
  Stacks: [{ StackName: 'Tenant-x', StackStatus: 'DELETE_IN_PROGRESS', CreationTime: new Date() }],
});
const WORKFLOW = ONBOARDING_WORKFLOW;
const ARCHIVE_KEY_HEX = 'a7'.repeat(32);
const BUCKET = 'pool-cell-archives';
/** What the archive reader says of an archive changed after it was signed (db/mobility/archive-reader.ts). */
const ALTERED =
  'its signature does not match: it was altered, or it was made by another installation (another archive key); nothing was written';

let cell: RunnerCell;
let db: TestDatabase;
let moto: Moto;
let s3: S3Client;
let provisioner: RunnerCell['provisioner'];
let tenants: TenantDatabase;
const run = (event: Record<string, unknown>) => cell.run(event);

const stackId = (name: string) => `arn:aws:cloudformation:us-east-1:111122223333:stack/${name}/0a1b2c3d`;
let requestNo = 0;
const onboard = (id: string) => cell.onboard(id);

async function invoicesOf(tenant: string): Promise<string[]> {
  const r = await tenants
    .forTenant(tenant)
    .run<{ customer: string }>(sql`SELECT customer FROM pool.invoices ORDER BY customer`);
  return r.rows.map((row) => row.customer);
}

async function addInvoices(tenant: string, n: number): Promise<void> {
  await tenants.forTenant(tenant).run(
    sql`WITH i AS (INSERT INTO pool.invoices (customer) SELECT ${tenant} || ' customer ' || g FROM generate_series(1, ${n}::integer) g RETURNING id)
        INSERT INTO pool.invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
        SELECT id, 1, 'Consulting', 2, 5000 FROM i`,
  );
}

async function objectBytes(key: string): Promise<Buffer> {
  const o = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await o.Body!.transformToByteArray());
}

beforeAll(async () => {
  jest.spyOn(console, 'log').mockImplementation(() => undefined); // the runner's JSON log lines
  moto = await startMoto();
  await moto.resetRegistry();
  cell = await startRunnerCell({
    model: 'pool',
    database: 'mobility_runner',
    bucket: BUCKET,
    archiveKeyHex: ARCHIVE_KEY_HEX,
    moto,
    secrets,
  });
  ({ db, s3, provisioner, tenants } = cell);
  for (const id of ['acme', 'globex', 'initech', 'umbrella']) await onboard(id);
  await addInvoices('acme', 30);
  await addInvoices('globex', 50);
});

afterAll(async () => {
  await db.drop();
  await moto.stop();
});

describe('mobility runner: export and restore one tenant through the cell archive bucket', () => {
  let acmeArchive: string;

  test("export writes exactly the tenant's rows, signed, to its own prefix, read as the runtime role", async () => {
    const report = await run({ action: 'export', tenantId: 'acme' });
    expect(report).toMatchObject({
      action: 'export',
      tenantId: 'acme',
      model: 'pool',
      bucket: BUCKET,
      archiveTenantId: 'acme',
      schemaVersion: LATEST_VERSION,
      rows: { invoices: 30, invoice_items: 30 },
    });
    expect(report.archive).toMatch(/^tenants\/acme\/\d{8}T\d{6}Z-[0-9a-f]{8}\.tfa$/);
    acmeArchive = report.archive;
    // The object is the archive: it verifies with the cell's archive key and holds acme's rows only (globex has
    // 50 invoices in the same tables).
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: report.archive }));
    expect(head.ContentLength).toBe(report.bytes);
    expect(head.Metadata).toMatchObject({ 'tenant-id': 'acme', model: 'pool' });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'runner-')), 'a.tfa');
    fs.writeFileSync(file, await objectBytes(report.archive));
    const manifest = await verifyArchive(file, ArchiveKey.fromHex(ARCHIVE_KEY_HEX, 'test'));
    expect(manifest).toMatchObject({ tenantId: 'acme', rows: { invoices: 30, invoice_items: 30 } });
    expect(manifest.checksums).toEqual(report.checksums);
    // Nothing is left on the function's storage.
    expect(fs.readdirSync('/tmp/tenant-archives').filter((f) => f.startsWith('acme-'))).toEqual([]);
  });

  test('in AWS the runtime role signs in with an IAM token, never a stored password', async () => {
    // With RUNTIME_DB_AUTH=iam the password is a freshly signed RDS token for the login role the connection signs
    // in as, one of app_pool's slot roles (db/slots.ts; this test server does not accept it), even though a
    // password is set.
    process.env.RUNTIME_DB_AUTH = 'iam';
    const signed = jest.spyOn(Signer.prototype, 'getAuthToken');
    try {
      const refused = await run({ action: 'export', tenantId: 'acme' }).then(
        () => 'exported',
        (e: Error) => e.message,
      );
      const user = /password authentication failed for user "(app_pool_s[0-9]+)"/.exec(refused)?.[1];
      expect(user).toBeDefined();
      expect(signed).toHaveBeenCalled();
      expect((signed.mock.contexts[0] as { username?: string }).username).toBe(user);
    } finally {
      signed.mockRestore();
      delete process.env.RUNTIME_DB_AUTH;
    }
  });

  test('the export connects as the runtime role: with its password wrong, it cannot read at all', async () => {
    process.env.RUNTIME_DB_PASSWORD = 'wrong';
    try {
      await expect(run({ action: 'export', tenantId: 'acme' })).rejects.toThrow(
        /password authentication failed for user "app_pool_s[0-9]+"/,
      );
    } finally {
      process.env.RUNTIME_DB_PASSWORD = RUNTIME_PASSWORD;
    }
  });

  test("an archive goes into its own tenant only: never into another customer's, even one with no rows yet", async () => {
    await expect(run({ action: 'restore', tenantId: 'initech', archive: acmeArchive })).rejects.toThrow(
      `${acmeArchive} is tenant "acme"'s archive: an operator restores an archive into its own tenant only, never into "initech" (a new tenant starts from another's archive only through an approved onboard request with "restoreFrom"); nothing was written`,
    );
    expect(await invoicesOf('initech')).toEqual([]);
  });

  test('restore over a tenant that has data is refused with the way to do it, and writes nothing', async () => {
    await expect(run({ action: 'restore', tenantId: 'acme', archive: acmeArchive })).rejects.toThrow(
      'tenant "acme" already has rows in invoices: in AWS an archive is restored only into its tenant while it has no rows (over its data, restore on the local platform with --force); nothing was written',
    );
    expect(await invoicesOf('acme')).toHaveLength(30);
  });

  test('a tenant whose rows were deleted gets them back; an altered archive, or one filed under another tenant, writes nothing', async () => {
    const before = await invoicesOf('acme');
    await tenants.forTenant('acme').run(sql`DELETE FROM pool.invoices`);
    expect(await invoicesOf('acme')).toEqual([]);
    const bytes = await objectBytes(acmeArchive);
    // One value changed and the file compressed again: only the signature can tell.
    const text = gunzipSync(bytes).toString('utf8');
    expect(text).toContain('acme customer 1"');
    const altered = gzipSync(Buffer.from(text.replace('acme customer 1"', 'acme customer X"'), 'utf8'));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tenants/acme/altered.tfa', Body: altered }));
    await expect(
      run({ action: 'restore', tenantId: 'acme', archive: 'tenants/acme/altered.tfa' }),
    ).rejects.toThrow(ALTERED);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tenants/globex/copied.tfa', Body: bytes }));
    await expect(
      run({ action: 'restore', tenantId: 'globex', archive: 'tenants/globex/copied.tfa' }),
    ).rejects.toThrow(
      `tenants/globex/copied.tfa holds tenant "acme"'s data, not "globex"'s as its key says: refused, nothing was written`,
    );
    await expect(
      run({ action: 'restore', tenantId: 'acme', archive: 'tenants/acme/none.tfa' }),
    ).rejects.toThrow(`no archive tenants/acme/none.tfa in bucket ${BUCKET}`);
    expect(await invoicesOf('acme')).toEqual([]);
    expect(await invoicesOf('globex')).toHaveLength(50);

    const report = await run({ action: 'restore', tenantId: 'acme', archive: acmeArchive });
    expect(report).toMatchObject({
      action: 'restore',
      tenantId: 'acme',
      archiveTenantId: 'acme',
      rows: { invoices: 30, invoice_items: 30 },
    });
    expect(await invoicesOf('acme')).toEqual(before);
    expect(await invoicesOf('globex')).toHaveLength(50);
  });

  test('a tenant being onboarded from an archive gets it: only for the execution that holds it, only that archive', async () => {
    const execution = `${WORKFLOW_EXECUTIONS}onboard-acme-copy-1-0a1b2c3d`;
    // The execution as the entry started it: running, its input naming the tenant and the archive.
    const started = (
      tenantId: string,
      archive: string,
      status: ExecutionStatus = 'RUNNING',
      action = 'onboard',
      model = 'pool',
    ) => ({
      status,
      stateMachineArn: WORKFLOW,
      input: JSON.stringify({ action, tenant: { tenantId, model, restoreArchive: archive } }),
    });
    /** The registry as the entry writes it for the tenant: held by `lock`, to start from `archive`. */
    const hold = (lock: string, archive = acmeArchive) =>
      moto.put({
        tenantId: 'acme-copy',
        model: 'pool',
        status: 'provisioning',
        lock,
        restoreArchive: archive,
      });
    sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves(started('acme-copy', acmeArchive));
    // What the onboarding entry writes for an approver's request with restoreFrom, then the tenant's place (the
    // deploy job's Create): the provisioner leaves a tenant its workflow holds in `provisioning`.
    await moto.put({
      tenantId: 'acme-copy',
      model: 'pool',
      status: 'provisioning',
      lock: execution,
      restoreArchive: acmeArchive,
    });
    await onboard('acme-copy');
    expect(await moto.get('acme-copy')).toMatchObject({ status: 'provisioning', lock: execution });
    const restore = (fields: Record<string, unknown>) =>
      run({ action: 'restore', tenantId: 'acme-copy', archive: acmeArchive, execution, ...fields });

    // An operator's invoke without the execution, or with another one, or for another archive: refused.
    await expect(restore({ execution: undefined })).rejects.toThrow(
      `${acmeArchive} is tenant "acme"'s archive: an operator restores an archive into its own tenant only`,
    );
    const other = execution.replace('-0a1b2c3d', '-ffffffff');
    await expect(restore({ execution: other })).rejects.toThrow(
      `tenant "acme-copy" is not being onboarded from ${acmeArchive} by ${other}: it is held by ${execution}; nothing was written`,
    );
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'tenants/acme/second.tfa',
        Body: await objectBytes(acmeArchive),
      }),
    );
    await expect(restore({ archive: 'tenants/acme/second.tfa' })).rejects.toThrow(
      `tenant "acme-copy" is not being onboarded from tenants/acme/second.tfa by ${execution}: its onboard request names ${acmeArchive}; nothing was written`,
    );
    await expect(restore({ execution: 'not an arn' })).rejects.toThrow(
      'mobility event field "execution" is "not an arn": leave it out',
    );
    await expect(run({ action: 'export', tenantId: 'acme-copy', execution } as never)).rejects.toThrow(
      'mobility event field "execution"',
    );
    // Into a tenant that is not being onboarded, or that no execution holds: refused.
    await moto.put({ tenantId: 'globex-copy', model: 'pool', status: 'active', restoreArchive: acmeArchive });
    await expect(
      run({ action: 'restore', tenantId: 'globex-copy', archive: acmeArchive, execution }),
    ).rejects.toThrow(
      `tenant "globex-copy" is not being onboarded from ${acmeArchive} by ${execution}: it is active, not being onboarded; nothing was written`,
    );
    await moto.put({
      tenantId: 'globex-copy',
      model: 'pool',
      status: 'provisioning',
      restoreArchive: acmeArchive,
    });
    await expect(
      run({ action: 'restore', tenantId: 'globex-copy', archive: acmeArchive, execution }),
    ).rejects.toThrow('no execution holds it');
    await moto.put({ tenantId: 'globex-copy', model: 'bridge', status: 'provisioning', lock: execution });
    await expect(
      run({ action: 'restore', tenantId: 'globex-copy', archive: acmeArchive, execution }),
    ).rejects.toThrow("it is a bridge tenant and this is the pool cell's runner (Pool)");
    // The registry is not enough: Step Functions must say the execution is the onboarding workflow's, running,
    // and started to onboard this tenant in this model from this archive (a principal that can write the
    // registry could forge the rest).
    const refusedFor = async (lock: string, described: object | undefined, why: string) => {
      await hold(lock);
      if (described) sfn.on(DescribeExecutionCommand, { executionArn: lock }).resolves(described);
      await expect(restore({ execution: lock })).rejects.toThrow(`by ${lock}: ${why}; nothing was written`);
    };
    const NOT_THE_WORKFLOW = 'that is not an execution of the onboarding workflow';
    const NOT_FOR_THIS =
      'the execution was not started to onboard this tenant in this model from this archive';
    const elsewhere = 'arn:aws:states:us-east-1:111122223333:stateMachine:tenantforge-onboarding-x';
    await refusedFor(
      `${elsewhere.replace(':stateMachine:', ':execution:')}:run-1`,
      undefined,
      NOT_THE_WORKFLOW,
    );
    await refusedFor(
      'arn:aws:states:us-east-1:111122223333:execution:Other:run-1',
      undefined,
      NOT_THE_WORKFLOW,
    );
    await refusedFor(
      `${WORKFLOW_EXECUTIONS}run-2`,
      { ...started('acme-copy', acmeArchive), stateMachineArn: elsewhere },
      `Step Functions says it is an execution of ${elsewhere}, not the onboarding workflow`,
    );
    await refusedFor(
      `${WORKFLOW_EXECUTIONS}run-3`,
      started('acme-copy', acmeArchive, 'ABORTED'),
      'the execution is ABORTED',
    );
    await refusedFor(`${WORKFLOW_EXECUTIONS}run-4`, started('globex', acmeArchive), NOT_FOR_THIS);
    await refusedFor(
      `${WORKFLOW_EXECUTIONS}run-5`,
      started('acme-copy', 'tenants/acme/second.tfa'),
      NOT_FOR_THIS,
    );
    await refusedFor(
      `${WORKFLOW_EXECUTIONS}run-6`,
      started('acme-copy', acmeArchive, 'RUNNING', 'offboard'),
      NOT_FOR_THIS,
    );
    await refusedFor(
      `${WORKFLOW_EXECUTIONS}run-7`,
      started('acme-copy', acmeArchive, 'RUNNING', 'onboard', 'bridge'),
      NOT_FOR_THIS,
    );
    await refusedFor(
      `${WORKFLOW_EXECUTIONS}run-11`,
      { ...started('acme-copy', acmeArchive), redriveCount: 1 },
      'the execution was redriven, or started through a version or alias of the workflow',
    );
    expect(await invoicesOf('acme-copy')).toEqual([]);

    // An execution stopped while the restore ran: the last look rolls it all back. It is the transaction's last
    // step: every row is written (the restore holds its write locks) and the staging cleanup's last statement,
    // RESET ROLE, has run.
    const late = `${WORKFLOW_EXECUTIONS}run-8`;
    await hold(late);
    const master = await db.master();
    let looks = 0;
    let lastLookAfter = { rowsWritten: false, stagingDropped: false };
    sfn.on(DescribeExecutionCommand, { executionArn: late }).callsFake(async () => {
      if (++looks === 2) {
        const r = await master.query<{ written: number; cleaned: number }>(
          `SELECT (SELECT count(*)::int FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                    WHERE c.relname = 'invoice_items' AND l.mode = 'RowExclusiveLock'
                      AND l.pid <> pg_backend_pid()) AS written,
                  (SELECT count(*)::int FROM pg_stat_activity
                    WHERE state = 'idle in transaction' AND query = 'RESET ROLE') AS cleaned`,
        );
        lastLookAfter = { rowsWritten: r.rows[0].written > 0, stagingDropped: r.rows[0].cleaned > 0 };
      }
      return started('acme-copy', acmeArchive, looks === 1 ? 'RUNNING' : 'ABORTED');
    });
    await expect(restore({ execution: late })).rejects.toThrow(
      `by ${late}: the execution is ABORTED; nothing was written`,
    );
    expect(looks).toBe(2);
    expect(lastLookAfter).toEqual({ rowsWritten: true, stagingDropped: true });
    await master.end();
    expect(await invoicesOf('acme-copy')).toEqual([]);
    // The archive deleted while the restore ran (its tenant offboarded with its data destroyed): rolled back.
    const third = 'tenants/acme/third.tfa';
    const deleting = `${WORKFLOW_EXECUTIONS}run-9`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: third, Body: await objectBytes(acmeArchive) }));
    await hold(deleting, third);
    looks = 0;
    sfn.on(DescribeExecutionCommand, { executionArn: deleting }).callsFake(async () => {
      if (++looks === 2) await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: third }));
      return started('acme-copy', third);
    });
    await expect(restore({ execution: deleting, archive: third })).rejects.toThrow(
      `${third} was deleted while it was restored into tenant "acme-copy" (its tenant offboarded with its data destroyed?); nothing was written`,
    );
    expect(looks).toBe(2);
    await hold(execution);
    expect(await invoicesOf('acme-copy')).toEqual([]);

    const report = await restore({});
    expect(report).toMatchObject({
      action: 'restore',
      tenantId: 'acme-copy',
      archiveTenantId: 'acme',
      rows: { invoices: 30, invoice_items: 30 },
    });
    expect(await invoicesOf('acme-copy')).toEqual(await invoicesOf('acme'));
    expect(await invoicesOf('acme')).toHaveLength(30);
    expect(await invoicesOf('globex')).toHaveLength(50);
    expect(report).not.toHaveProperty('alreadyThere');
    // The workflow's invoke again (its answer lost): the rows it wrote are exactly the archive's, so it is done,
    // and nothing is written twice.
    expect(await restore({})).toMatchObject({ tenantId: 'acme-copy', alreadyThere: true });
    expect(await invoicesOf('acme-copy')).toEqual(await invoicesOf('acme'));
    // That "done" is checked last too: an execution stopped meanwhile does not get it.
    const rerun = `${WORKFLOW_EXECUTIONS}run-10`;
    await hold(rerun);
    looks = 0;
    sfn
      .on(DescribeExecutionCommand, { executionArn: rerun })
      .callsFake(async () => started('acme-copy', acmeArchive, ++looks === 1 ? 'RUNNING' : 'ABORTED'));
    await expect(restore({ execution: rerun })).rejects.toThrow('the execution is ABORTED');
    expect(looks).toBe(2);
    await hold(execution);
    // Other rows there (one more invoice): refused, nothing written.
    await addInvoices('acme-copy', 1);
    await expect(restore({})).rejects.toThrow('tenant "acme-copy" already has rows in invoices');
    expect(await invoicesOf('acme-copy')).toHaveLength(31);
  });

  test("a workflow step too large for the function goes to the cell's runner task, which does it and answers the step", async () => {
    sfn.resetHistory();
    // How a move out sizes its tenant (db/mobility/size.ts), as the runtime role sees it: its own rows only,
    // at the tables' average row size once analyzed (before, each tenant counts as the whole table: too high).
    const unanalyzed = await estimateTenantBytes(tenants.forTenant('acme'));
    const analyze = await db.master();
    await analyze.query(`SET ROLE ${OWNER_ROLE}; ANALYZE pool.invoices, pool.invoice_items`);
    await analyze.end();
    const [acmeBytes, globexBytes, umbrellaBytes] = await Promise.all(
      ['acme', 'globex', 'umbrella'].map((t) => estimateTenantBytes(tenants.forTenant(t))),
    );
    expect(acmeBytes).toBeGreaterThan(0);
    expect(unanalyzed).toBeGreaterThan(acmeBytes);
    expect(globexBytes / acmeBytes).toBeCloseTo(50 / 30, 0);
    expect(umbrellaBytes).toBe(0);
    // Counted only until it is past the budget: a few rows, not the tenant's every row.
    const early = await estimateTenantBytes(tenants.forTenant('globex'), 1);
    expect(early).toBeGreaterThan(1);
    expect(early).toBeLessThan(globexBytes / 10);
    const execution = `${WORKFLOW_EXECUTIONS}onboard-acme-big-1-0a1b2c3d`;
    /** A new tenant held by `onboarding` to start from acme's archive, as the entry and the deploy leave it. */
    const beingOnboarded = async (tenantId: string, onboarding: string) => {
      sfn.on(DescribeExecutionCommand, { executionArn: onboarding }).resolves({
        status: 'RUNNING',
        stateMachineArn: WORKFLOW,
        input: JSON.stringify({
          action: 'onboard',
          tenant: { tenantId, model: 'pool', restoreArchive: acmeArchive },
        }),
      });
      await moto.put({
        tenantId,
        model: 'pool',
        status: 'provisioning',
        lock: onboarding,
        restoreArchive: acmeArchive,
      });
      await onboard(tenantId);
    };
    await beingOnboarded('acme-big', execution);
    const archiveBytes = (await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: acmeArchive })))
      .ContentLength!;
    // What the construct sets on the function (lib/constructs/mobility-runner.ts).
    const taskEnv = {
      RUNNER_TASK_LAUNCHER: LAUNCHER,
      RUNNER_TASK_CLUSTER: 'arn:aws:ecs:us-east-1:111122223333:cluster/pool-cell',
      // This archive is one byte over the function's budget.
      RUNNER_TASK_ABOVE_BYTES: String(archiveBytes - 1),
    };
    Object.assign(process.env, taskEnv);
    sfn.on(SendTaskSuccessCommand).resolves({});
    sfn.on(SendTaskFailureCommand).resolves({});
    sfn.on(SendTaskHeartbeatCommand).resolves({});
    ecs
      .on(RunTaskCommand)
      .resolves({ tasks: [{ taskArn: 'arn:aws:ecs:us-east-1:111122223333:task/pool-cell/1' }] });
    const token = 'token-of-RestorePoolArchive';
    const step = {
      action: 'restore',
      tenantId: 'acme-big',
      archive: acmeArchive,
      execution,
      taskToken: token,
    };
    const events = async () =>
      (
        await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'runner-events/' }))
      ).Versions?.map((v) => v.Key) ?? [];
    try {
      // The function: sizes the step (the archive's bytes), hands it to a task, answers nothing itself.
      expect(await run(step)).toEqual({
        action: 'restore',
        tenantId: 'acme-big',
        handedToTask: 'arn:aws:ecs:us-east-1:111122223333:task/pool-cell/1',
        bytes: archiveBytes,
      });
      expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
      expect(await invoicesOf('acme-big')).toEqual([]);
      const [start] = ecs.commandCalls(RunTaskCommand);
      expect(start.args[0].input).toEqual({
        cluster: taskEnv.RUNNER_TASK_CLUSTER,
        taskDefinition: 'PoolCellMobilityTask',
        launchType: 'FARGATE',
        count: 1,
        networkConfiguration: {
          awsvpcConfiguration: {
            subnets: ['subnet-a', 'subnet-b'],
            securityGroups: ['sg-runner'],
            assignPublicIp: 'DISABLED',
          },
        },
        overrides: {
          containerOverrides: [
            { name: 'runner', environment: [{ name: 'MOBILITY_EVENT_KEY', value: expect.any(String) }] },
          ],
        },
        startedBy: 'tenant-mobility',
        // One task per hand-over, whatever the SDK retries: the event's own id.
        clientToken: expect.stringMatching(/^[0-9a-f-]{36}$/),
      });
      // The task gets a key, never the token: the event waits in the cell's bucket.
      const key = start.args[0].input.overrides!.containerOverrides![0].environment![0].value!;
      expect(JSON.stringify(start.args[0].input)).not.toContain(token);
      expect(await events()).toEqual([key]);

      // The task: the function's environment with RUNNER_IN_TASK, and the key it was started with.
      for (const name of Object.keys(taskEnv)) delete process.env[name];
      Object.assign(process.env, { RUNNER_IN_TASK: 'true', MOBILITY_EVENT_KEY: key });
      await runHandedEvent();
      expect(await invoicesOf('acme-big')).toEqual(await invoicesOf('acme'));
      const answers = sfn.commandCalls(SendTaskSuccessCommand);
      expect(answers).toHaveLength(1);
      expect(answers[0].args[0].input.taskToken).toBe(token);
      expect(JSON.parse(answers[0].args[0].input.output!)).toMatchObject({
        action: 'restore',
        tenantId: 'acme-big',
        archiveTenantId: 'acme',
        rows: { invoices: 30, invoice_items: 30 },
      });
      expect(sfn.commandCalls(SendTaskHeartbeatCommand).map((c) => c.args[0].input.taskToken)).toContain(
        token,
      );
      // Read once: its version is gone, and a task started again with it has nothing to do.
      expect(await events()).toEqual([]);
      await expect(runHandedEvent()).rejects.toThrow(/NoSuchKey|does not exist/);

      // A step the task cannot do fails the workflow's step with the reason, as the function's error would.
      await moto.put({
        tenantId: 'acme-big',
        model: 'pool',
        status: 'provisioning',
        lock: `${execution}-other`,
      });
      Object.assign(process.env, taskEnv);
      delete process.env.RUNNER_IN_TASK;
      ecs
        .on(RunTaskCommand)
        .resolves({ tasks: [{ taskArn: 'arn:aws:ecs:us-east-1:111122223333:task/pool-cell/2' }] });
      await run({ ...step, taskToken: 'token-2' });
      for (const name of Object.keys(taskEnv)) delete process.env[name];
      const second = ecs.commandCalls(RunTaskCommand)[1].args[0].input;
      Object.assign(process.env, {
        RUNNER_IN_TASK: 'true',
        MOBILITY_EVENT_KEY: second.overrides!.containerOverrides![0].environment![0].value,
      });
      await expect(runHandedEvent()).rejects.toThrow('is not being onboarded from');
      const [failure] = sfn.commandCalls(SendTaskFailureCommand);
      expect(failure.args[0].input).toMatchObject({ taskToken: 'token-2', error: 'ProvisioningInputError' });
      expect(JSON.parse(failure.args[0].input.cause!).errorMessage).toContain(
        'tenant "acme-big" is not being onboarded from',
      );
      expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(1);

      // ECS that starts no task: the step fails at once with ECS's reason, and no event is left behind.
      delete process.env.RUNNER_IN_TASK;
      delete process.env.MOBILITY_EVENT_KEY;
      Object.assign(process.env, taskEnv);
      await moto.put({ tenantId: 'acme-big', model: 'pool', status: 'provisioning', lock: execution });
      ecs.on(RunTaskCommand).resolves({ tasks: [], failures: [{ reason: 'RESOURCE:MEMORY' }] });
      await expect(run({ ...step, taskToken: 'token-3' })).rejects.toThrow(
        `the restore of tenant "acme-big" (about ${archiveBytes} bytes, more than this function's ${archiveBytes - 1}) needs the cell's runner task, and it did not start: ECS did not start it: RESOURCE:MEMORY`,
      );
      expect(sfn.commandCalls(SendTaskFailureCommand).map((c) => c.args[0].input.taskToken)).toContain(
        'token-3',
      );
      expect(await events()).toEqual([]);
      // A step the workflow no longer waits for (it timed out, or was retried under a new token) commits nothing:
      // the last look before the commit asks Step Functions, whose beat is refused.
      const lateExecution = `${WORKFLOW_EXECUTIONS}onboard-acme-late-1-0a1b2c3d`;
      await beingOnboarded('acme-late', lateExecution);
      for (const name of Object.keys(taskEnv)) delete process.env[name];
      let beats = 0;
      sfn.on(SendTaskHeartbeatCommand).callsFake(async () => {
        if (++beats > 1) throw Object.assign(new Error('Task Timed Out'), { name: 'TaskTimedOut' });
        return {};
      });
      await expect(
        run({ ...step, tenantId: 'acme-late', execution: lateExecution, taskToken: 'token-late' }),
      ).rejects.toThrow("the workflow's step no longer waits for this work (TaskTimedOut");
      expect(beats).toBe(2);
      expect(await invoicesOf('acme-late')).toEqual([]);
    } finally {
      for (const name of [...Object.keys(taskEnv), 'RUNNER_IN_TASK', 'MOBILITY_EVENT_KEY'])
        delete process.env[name];
      sfn.on(SendTaskHeartbeatCommand).resolves({});
      ecs.reset();
    }
  });

  test("an operator's export larger than the function goes to the runner task; the operator's polls get its report", async () => {
    const taskEnv = {
      RUNNER_TASK_LAUNCHER: LAUNCHER,
      RUNNER_TASK_CLUSTER: 'arn:aws:ecs:us-east-1:111122223333:cluster/pool-cell',
      RUNNER_TASK_ABOVE_BYTES: '0',
    };
    const taskArn = `arn:aws:ecs:us-east-1:111122223333:task/pool-cell/${'b2'.repeat(16)}`;
    Object.assign(process.env, taskEnv);
    ecs.on(RunTaskCommand).resolves({ tasks: [{ taskArn }] });
    ecs.on(DescribeTasksCommand).resolves({ tasks: [{ taskArn, lastStatus: 'RUNNING' }] });
    try {
      // Whoever invokes the function cannot name where a task's outcome goes.
      await expect(
        run({
          action: 'export',
          tenantId: 'globex',
          result: 'runner-events/out/0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f.result.json',
        }),
      ).rejects.toThrow('mobility event field "result" is set: leave it out');
      const handed = (await run({ action: 'export', tenantId: 'globex' })) as unknown as {
        handedToTask: string;
        result: string;
        bytes: number;
      };
      expect(handed).toMatchObject({ action: 'export', tenantId: 'globex', handedToTask: taskArn });
      expect(handed.bytes).toBeGreaterThan(0);
      // Started by the launcher, with its own settings (the function names only the event).
      expect(ecs.commandCalls(RunTaskCommand)[0].args[0].input.networkConfiguration).toEqual({
        awsvpcConfiguration: {
          subnets: ['subnet-a', 'subnet-b'],
          securityGroups: ['sg-runner'],
          assignPublicIp: 'DISABLED',
        },
      });
      expect(
        lambdaStub
          .commandCalls(InvokeCommand)
          .map((c) => JSON.parse(new TextDecoder().decode(c.args[0].input.Payload as Uint8Array)))
          .at(-1),
      ).toEqual({ eventKey: expect.stringMatching(/^runner-events\/in\/[0-9a-f-]{36}\.json$/) });
      const poll = { action: 'result', tenantId: 'globex', result: handed.result, task: taskArn };
      expect(await run(poll)).toEqual({
        action: 'result',
        tenantId: 'globex',
        pending: true,
        status: 'RUNNING',
      });
      // Another tenant's poll of this outcome is refused once there is one (a silo's runner serves one tenant).
      const key =
        ecs.commandCalls(RunTaskCommand)[0].args[0].input.overrides!.containerOverrides![0].environment![0]
          .value!;
      for (const name of Object.keys(taskEnv)) delete process.env[name];
      Object.assign(process.env, { RUNNER_IN_TASK: 'true', MOBILITY_EVENT_KEY: key });
      await runHandedEvent();
      delete process.env.RUNNER_IN_TASK;
      delete process.env.MOBILITY_EVENT_KEY;
      Object.assign(process.env, taskEnv);
      const report = await run(poll);
      expect(report).toMatchObject({
        action: 'export',
        tenantId: 'globex',
        rows: { invoices: 50, invoice_items: 50 },
      });
      expect(
        (await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: report.archive }))).ContentLength,
      ).toBe(report.bytes);
      await expect(run({ ...poll, tenantId: 'acme' })).rejects.toThrow(
        `${handed.result} is not the outcome of a step of tenant "acme"`,
      );
      // A task that stopped without leaving anything: its reason, and where to look.
      const lost = { ...poll, result: 'runner-events/out/0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f.result.json' };
      ecs.on(DescribeTasksCommand).resolves({
        tasks: [
          {
            taskArn,
            lastStatus: 'STOPPED',
            stoppedReason: 'Essential container in task exited',
            containers: [{ name: 'runner', exitCode: 137 }],
          },
        ],
      });
      await expect(run(lost)).rejects.toThrow(
        `the runner task ${taskArn} stopped without a result: Essential container in task exited (exit code 137); its log group holds what it did`,
      );
      expect(ecs.commandCalls(DescribeTasksCommand).map((c) => c.args[0].input)).toContainEqual({
        cluster: taskEnv.RUNNER_TASK_CLUSTER,
        tasks: [taskArn],
      });
    } finally {
      for (const name of [...Object.keys(taskEnv), 'RUNNER_IN_TASK', 'MOBILITY_EVENT_KEY'])
        delete process.env[name];
      ecs.reset();
    }
  });

  test("restore over a tenant's data (an approver's restore request): frozen, what it had kept in a safety archive, replaced in one transaction", async () => {
    const execution = `${WORKFLOW_EXECUTIONS}restore-acme-1-0a1b2c3d`;
    const started = (status: ExecutionStatus = 'RUNNING', action = 'restore', archive = acmeArchive) => ({
      status,
      stateMachineArn: WORKFLOW,
      input: JSON.stringify({ action, tenant: { tenantId: 'acme', model: 'pool', restoreArchive: archive } }),
    });
    /** The registry as the entry writes it for the request: acme `moving` within pool, held, with the archive. */
    const hold = (lock: string, fields: Record<string, unknown> = {}) =>
      moto.put({
        tenantId: 'acme',
        model: 'pool',
        status: 'moving',
        movingTo: 'pool',
        lock,
        restoreArchive: acmeArchive,
        ...fields,
      });
    const replace = (fields: Record<string, unknown> = {}) =>
      run({ action: 'replace', tenantId: 'acme', archive: acmeArchive, execution, ...fields });
    const archived = await invoicesOf('acme'); // what acmeArchive holds (30 invoices)
    expect(archived).toHaveLength(30);
    await addInvoices('acme', 5); // written after the archive was made: the replace takes them away
    const before = await invoicesOf('acme');
    const globex = await invoicesOf('globex');
    const writeAs = (tenant: string) => addInvoices(tenant, 1);
    try {
      // Refused before anything is read: only the workflow (an execution), only one of the tenant's own archives.
      await expect(replace({ execution: undefined })).rejects.toThrow(
        'mobility event field "execution" is undefined: "replace" is the onboarding workflow\'s, for an approver\'s restore request',
      );
      await expect(replace({ archive: 'tenants/globex/x.tfa' })).rejects.toThrow(
        'mobility event field "archive" is "tenants/globex/x.tfa": restore over tenant "acme"\'s data from one of its own archives only',
      );
      await moto.put({
        tenantId: 'acme',
        model: 'pool',
        status: 'active',
        lock: execution,
        restoreArchive: acmeArchive,
      });
      sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves(started());
      await expect(replace()).rejects.toThrow(
        `tenant "acme" is not being restored from ${acmeArchive} by ${execution}: it is active, not being restored; nothing was written`,
      );
      await hold(execution, { movingTo: 'bridge' });
      await expect(replace()).rejects.toThrow('it is moving to bridge, not being restored where it is');
      await hold(execution);
      sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves(started('RUNNING', 'onboard'));
      await expect(replace()).rejects.toThrow(
        'the execution was not started to restore this tenant in this model from this archive',
      );
      expect(await invoicesOf('acme')).toEqual(before);

      // While the runner works the tenant is frozen: its writes are refused, its reads and its neighbours' writes
      // go on. Looked at when the safety archive is uploaded.
      sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves(started());
      const seen: { acmeWrite?: string; acmeRows?: number; globexWrite?: string } = {};
      const send = S3Client.prototype.send;
      const spy = jest.spyOn(S3Client.prototype, 'send').mockImplementation(async function (
        this: S3Client,
        command: unknown,
        ...rest: unknown[]
      ) {
        if (command instanceof PutObjectCommand && command.input.Key?.startsWith('tenants/acme/')) {
          seen.acmeWrite = await writeAs('acme').then(
            () => 'written',
            (e: Error) => e.message,
          );
          seen.acmeRows = (await invoicesOf('acme')).length;
          seen.globexWrite = await writeAs('globex').then(
            () => 'written',
            (e: Error) => e.message,
          );
        }
        return (send as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
      } as never);
      let report: Awaited<ReturnType<typeof run>>;
      try {
        report = await replace();
      } finally {
        spy.mockRestore();
      }
      expect(seen.acmeWrite).not.toBe('written');
      expect(seen.acmeRows).toBe(35);
      expect(seen.globexWrite).toBe('written');
      expect(report).toMatchObject({
        action: 'replace',
        tenantId: 'acme',
        archive: acmeArchive,
        rows: { invoices: 30, invoice_items: 30 },
      });
      // acme holds exactly the archive's rows, and serves (writes) again; globex kept its rows (and its new one).
      expect(await invoicesOf('acme')).toEqual(archived);
      expect(await invoicesOf('globex')).toHaveLength(globex.length + 1);
      // What acme had just before is in the safety archive, in its own prefix, signed by the cell.
      expect(report.safetyArchive).toMatch(/^tenants\/acme\/before-restore-[0-9a-f]{24}\.tfa$/);
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'runner-')), 'safety.tfa');
      fs.writeFileSync(file, await objectBytes(report.safetyArchive!));
      const safety = await verifyArchive(file, ArchiveKey.fromHex(ARCHIVE_KEY_HEX, 'test'));
      expect(safety).toMatchObject({ tenantId: 'acme', rows: { invoices: 35, invoice_items: 35 } });
      // Had the replace's answer been lost, the workflow's thaw would find it done: exactly the archive's rows, and
      // the request's safety archive.
      expect(await run({ action: 'thaw', tenantId: 'acme', execution })).toMatchObject({
        action: 'thaw',
        restored: true,
        safetyArchive: report.safetyArchive,
      });
      expect(await invoicesOf('acme')).toEqual(archived);
      await writeAs('acme');
      expect(await invoicesOf('acme')).toHaveLength(31);

      // An execution stopped while it ran: its last look, inside the transaction, rolls the replace back, and the
      // freeze is lifted: acme keeps exactly what it had and serves.
      // (Its looks: before it starts, once it holds the tenant's lock, and just before it commits.)
      const had = await invoicesOf('acme');
      const stopped = `${WORKFLOW_EXECUTIONS}restore-acme-4`;
      await hold(stopped);
      let looks = 0;
      sfn
        .on(DescribeExecutionCommand, { executionArn: stopped })
        .callsFake(async () => started(++looks < 3 ? 'RUNNING' : 'ABORTED'));
      await expect(replace({ execution: stopped })).rejects.toThrow(
        `by ${stopped}: the execution is ABORTED; nothing was written`,
      );
      expect(looks).toBe(3);
      await hold(execution);
      expect(await invoicesOf('acme')).toEqual(had);
      await writeAs('acme');
      expect(await invoicesOf('acme')).toHaveLength(had.length + 1);
      // Its thaw says so: not restored (its rolled-back replace left no receipt).
      await hold(stopped);
      sfn.on(DescribeExecutionCommand, { executionArn: stopped }).resolves(started());
      expect(await run({ action: 'thaw', tenantId: 'acme', execution: stopped })).toMatchObject({
        restored: false,
        safetyArchive: '',
      });
      await hold(execution);
      sfn.on(DescribeExecutionCommand, { executionArn: execution }).resolves(started());
      expect(await invoicesOf('acme')).toHaveLength(had.length + 1);

      // A request ended while its replace ran (the lock lost with its connection, say): the replace's receipt, the
      // last write of its transaction, conflicts, and nothing is replaced. Ended when the safety archive is uploaded.
      const ending = `${WORKFLOW_EXECUTIONS}restore-acme-3`;
      await hold(ending);
      sfn.on(DescribeExecutionCommand, { executionArn: ending }).resolves(started());
      const before3 = await invoicesOf('acme');
      const endOnUpload = jest.spyOn(S3Client.prototype, 'send').mockImplementation(async function (
        this: S3Client,
        command: unknown,
        ...rest: unknown[]
      ) {
        if (command instanceof PutObjectCommand && command.input.Key?.includes('before-restore-')) {
          const m = await db.master();
          try {
            await endRestore(m, ending, 'acme');
          } finally {
            await m.end();
          }
        }
        return (send as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
      } as never);
      try {
        await expect(replace({ execution: ending })).rejects.toThrow(
          `the restore request ${ending} was already ended (or replaced) when its replace of tenant "acme" was about to commit: nothing was written`,
        );
      } finally {
        endOnUpload.mockRestore();
      }
      expect(await invoicesOf('acme')).toEqual(before3);
      await writeAs('acme');
      await hold(execution);

      // A thaw that gets the tenant's lock before its request's replace (which Step Functions reported failed while
      // it was still starting) ends the request: the replace then does nothing, and acme serves as it was.
      const late = `${WORKFLOW_EXECUTIONS}restore-acme-5`;
      await hold(late);
      sfn.on(DescribeExecutionCommand, { executionArn: late }).resolves(started());
      expect(await run({ action: 'thaw', tenantId: 'acme', execution: late })).toMatchObject({
        restored: false,
      });
      const now = await invoicesOf('acme');
      await expect(replace({ execution: late })).rejects.toThrow(
        `the restore request ${late} was ended by its thaw before this replace began: nothing was written`,
      );
      expect(await invoicesOf('acme')).toEqual(now);
      await writeAs('acme');
      // The receipts are the master user's: the runtime role can neither read nor forge them.
      await expect(
        tenants.forTenant('acme').run(sql`SELECT count(*) FROM tenancy.restore_receipts`),
      ).rejects.toThrow('permission denied');
      const m = await db.master();
      try {
        const r = await m.query<{ any: boolean }>(
          `SELECT has_table_privilege('app_pool', 'tenancy.restore_receipts', 'SELECT, INSERT, UPDATE, DELETE') AS any`,
        );
        expect(r.rows[0].any).toBe(false);
      } finally {
        await m.end();
      }
      await hold(execution);

      // The workflow's thaw (its replace died frozen): only for the execution that holds the tenant.
      const died = `${WORKFLOW_EXECUTIONS}restore-acme-6`;
      await hold(died);
      sfn.on(DescribeExecutionCommand, { executionArn: died }).resolves(started());
      const master = await db.master();
      try {
        await dataModel('pool').freeze(master, 'acme', {});
      } finally {
        await master.end();
      }
      await expect(writeAs('acme')).rejects.toThrow();
      const other = `${WORKFLOW_EXECUTIONS}restore-acme-2`;
      await expect(run({ action: 'thaw', tenantId: 'acme', execution: other })).rejects.toThrow(
        `by ${other}: it is held by ${died}; nothing was written`,
      );
      await expect(writeAs('acme')).rejects.toThrow();
      expect(await run({ action: 'thaw', tenantId: 'acme', execution: died })).toMatchObject({
        action: 'thaw',
        restored: false,
        safetyArchive: '',
      });
      await writeAs('acme');
      // Thawing a tenant that is not frozen changes nothing.
      expect(await run({ action: 'thaw', tenantId: 'acme', execution: died })).toMatchObject({
        restored: false,
      });
    } finally {
      await moto.put({ tenantId: 'acme', model: 'pool', status: 'active' });
    }
  });

  test('bad events name the field, its value and the fix, before any AWS call or SQL', async () => {
    await expect(run({ action: 'drop', tenantId: 'acme' })).rejects.toThrow(
      'mobility event field "action" is "drop": use "export" or "restore"',
    );
    await expect(run({ action: 'export', tenantId: "acme'; DROP TABLE x" })).rejects.toThrow(
      'mobility event field "tenantId"',
    );
    await expect(run({ action: 'restore', tenantId: 'umbrella', archive: '../etc/passwd' })).rejects.toThrow(
      'mobility event field "archive" is "../etc/passwd": the key of an archive in the cell\'s bucket',
    );
    await expect(run({ action: 'migrate-fleet' } as never)).rejects.toThrow(
      'the mobility runner accepts only mobility events',
    );
  });

  test('a tenant of another model, an offboarded one or an unknown one is refused', async () => {
    await moto.put({ tenantId: 'hooli', model: 'bridge', status: 'active' });
    await expect(run({ action: 'export', tenantId: 'hooli' })).rejects.toThrow(
      'tenant "hooli" is a bridge tenant; this is the pool cell\'s runner (Pool): invoke the runner of the tenant\'s own cell',
    );
    await moto.put({ tenantId: 'gone', model: 'pool', status: 'offboarded' });
    await expect(run({ action: 'export', tenantId: 'gone' })).rejects.toThrow(
      'tenant "gone" is offboarded: only an active tenant\'s data is exported or restored',
    );
    await expect(run({ action: 'export', tenantId: 'nobody' })).rejects.toThrow(
      'tenant "nobody" is not in the tenant registry',
    );
  });

  test("a silo's runner serves its own tenant only", async () => {
    Object.assign(process.env, { MODEL: 'silo', OWN_STACK: 'Tenant-acme' });
    try {
      await expect(run({ action: 'export', tenantId: 'globex' })).rejects.toThrow(
        'tenant "globex" is not this silo\'s: the runner of stack Tenant-acme serves tenant "acme" only',
      );
    } finally {
      Object.assign(process.env, { MODEL: 'pool', OWN_STACK: 'Pool' });
    }
  });

  test("offboarding a tenant with its data destroyed deletes every version of its archives, and no one else's", async () => {
    const put = (Key: string) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'x' }));
    await put('tenants/umbrella/one.tfa');
    await put('tenants/umbrella/one.tfa'); // a second version
    await put('tenants/umbrella/two.tfa');
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'tenants/umbrella/two.tfa' })); // a delete marker
    await put('tenants/umbrellas/other.tfa'); // another tenant whose id starts the same
    const versions = async (Prefix: string) => {
      const r = await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix }));
      return (r.Versions?.length ?? 0) + (r.DeleteMarkers?.length ?? 0);
    };
    expect(await versions('tenants/umbrella/')).toBe(4);
    const acmeBefore = await versions('tenants/acme/');
    await provisioner.handler({
      ServiceToken: 'arn:aws:lambda:us-east-1:111122223333:function:provider',
      ResponseURL: 'https://cloudformation-custom-resource-response.example/',
      StackId: stackId('Tenant-umbrella'),
      RequestId: `request-${++requestNo}`,
      LogicalResourceId: 'Tenant',
      ResourceType: 'Custom::PoolTenant',
      ResourceProperties: {
        ServiceToken: 'token',
        TenantId: 'umbrella',
        Name: 'umbrella Inc',
        Model: 'pool',
        DeletionPolicy: 'destroy',
        SchemaVersion: String(LATEST_VERSION),
      },
      RequestType: 'Delete',
      PhysicalResourceId: 'tenant-pool-umbrella',
    } as CloudFormationCustomResourceEvent);
    expect(await versions('tenants/umbrella/')).toBe(0);
    expect(await versions('tenants/umbrellas/')).toBe(1);
    expect(await versions('tenants/acme/')).toBe(acmeBefore);
  });

  test('the deletion pages through every version (one per page here)', async () => {
    for (const k of ['a', 'b', 'c']) {
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `tenants/paged/${k}.tfa`, Body: k }));
    }
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tenants/paged/a.tfa', Body: 'again' }));
    expect(await deleteTenantArchives(BUCKET, 'paged', s3, 1)).toBe(4);
    const left = await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'tenants/paged/' }));
    expect([...(left.Versions ?? []), ...(left.DeleteMarkers ?? [])]).toEqual([]);
  });

  test('an export whose tenant was offboarded while it ran deletes the archive it wrote, and says so', async () => {
    const versions = async () =>
      (await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'tenants/globex/' }))).Versions
        ?.length ?? 0;
    const before = await versions();
    const send = S3Client.prototype.send;
    const offboardDuringPut = jest.spyOn(S3Client.prototype, 'send').mockImplementation(async function (
      this: S3Client,
      command: unknown,
      ...rest: unknown[]
    ) {
      const r = await (send as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
      if (command instanceof PutObjectCommand && command.input.Key?.startsWith('tenants/globex/')) {
        await moto.put({ tenantId: 'globex', model: 'pool', status: 'offboarded' });
      }
      return r;
    } as never);
    try {
      await expect(run({ action: 'export', tenantId: 'globex' })).rejects.toThrow(
        'tenant "globex" is offboarded (pool) since this export began: its archive was deleted again',
      );
    } finally {
      offboardDuringPut.mockRestore();
      await moto.put({ tenantId: 'globex', model: 'pool', status: 'active' });
    }
    expect(await versions()).toBe(before);
  });
});
