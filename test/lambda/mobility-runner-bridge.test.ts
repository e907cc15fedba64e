import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { mockClient } from 'aws-sdk-client-mock';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { ArchiveKey, verifyArchive } from '../../db/mobility';
import { Moto, startMoto } from '../helpers/moto';
import {
  ONBOARDING_WORKFLOW,
  RunnerCell,
  startRunnerCell,
  WORKFLOW_EXECUTIONS,
} from '../helpers/runner-cell';

// The bridge cell's mobility runner restoring over a tenant's data (mobility-replace.ts), for real against the
// embedded PostgreSQL (a schema and a role per tenant: the freeze revokes the tenant's writes, the thaw grants them
// back inside the replace's transaction) and moto's DynamoDB and S3; Secrets Manager and Step Functions are stubbed
// at the SDK boundary. The pool cell's runner has the full suite of refusals in mobility-runner.test.ts.
const secrets = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);
const EXECUTION = `${WORKFLOW_EXECUTIONS}restore-gringotts-1`;
const ARCHIVE_KEY_HEX = 'b8'.repeat(32);
const BUCKET = 'bridge-cell-archives';

let cell: RunnerCell;
let moto: Moto;
const run = (event: Record<string, unknown>) => cell.run(event);

const invoicesOf = (tenant: string) => cell.invoices(tenant);
const addInvoices = (tenant: string, n: number) => cell.addInvoices(tenant, n);

beforeAll(async () => {
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  moto = await startMoto();
  await moto.resetRegistry();
  cell = await startRunnerCell({
    model: 'bridge',
    database: 'mobility_runner_bridge',
    bucket: BUCKET,
    archiveKeyHex: ARCHIVE_KEY_HEX,
    moto,
    secrets,
  });
  for (const id of ['gringotts', 'zorg']) await cell.onboard(id);
  await addInvoices('gringotts', 20);
  await addInvoices('zorg', 40);
});

afterAll(async () => {
  await cell.db.drop();
  await moto.stop();
});

test("a bridge tenant restored over its data: its schema frozen while it runs, what it had kept, then exactly the archive's rows", async () => {
  const exported = await run({ action: 'export', tenantId: 'gringotts' });
  const archived = await invoicesOf('gringotts');
  expect(archived).toHaveLength(20);
  await addInvoices('gringotts', 3);
  const zorg = await invoicesOf('zorg');
  // What the entry writes for an approver's restore request, and the execution as it started it.
  await moto.put({
    tenantId: 'gringotts',
    model: 'bridge',
    status: 'moving',
    movingTo: 'bridge',
    lock: EXECUTION,
    restoreArchive: exported.archive,
  });
  sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION }).resolves({
    status: 'RUNNING',
    stateMachineArn: ONBOARDING_WORKFLOW,
    input: JSON.stringify({
      action: 'restore',
      tenant: { tenantId: 'gringotts', model: 'bridge', restoreArchive: exported.archive },
    }),
  });
  // Looked at when the safety archive is uploaded: gringotts's writes are refused (its role lost them), its reads and
  // zorg's writes go on.
  const seen: { gringottsWrite?: string; gringottsRows?: number; zorgWrite?: string } = {};
  const send = S3Client.prototype.send;
  const spy = jest.spyOn(S3Client.prototype, 'send').mockImplementation(async function (
    this: S3Client,
    command: unknown,
    ...rest: unknown[]
  ) {
    if (command instanceof PutObjectCommand && command.input.Key?.includes('before-restore-')) {
      seen.gringottsWrite = await addInvoices('gringotts', 1).then(
        () => 'written',
        (e: Error) => e.message,
      );
      seen.gringottsRows = (await invoicesOf('gringotts')).length;
      seen.zorgWrite = await addInvoices('zorg', 1).then(
        () => 'written',
        (e: Error) => e.message,
      );
    }
    return (send as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
  } as never);
  let report: Awaited<ReturnType<typeof run>>;
  try {
    report = await run({
      action: 'replace',
      tenantId: 'gringotts',
      archive: exported.archive,
      execution: EXECUTION,
    });
  } finally {
    spy.mockRestore();
  }
  expect(seen).toEqual({
    gringottsWrite: expect.stringContaining('permission denied'),
    gringottsRows: 23,
    zorgWrite: 'written',
  });
  expect(report).toMatchObject({ action: 'replace', rows: { invoices: 20, invoice_items: 20 } });
  expect(await invoicesOf('gringotts')).toEqual(archived);
  expect(await invoicesOf('zorg')).toHaveLength(zorg.length + 1);
  // The safety archive holds the 23 gringotts had; gringotts writes again.
  const o = await cell.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: report.safetyArchive! }));
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-runner-')), 'safety.tfa');
  fs.writeFileSync(file, Buffer.from(await o.Body!.transformToByteArray()));
  expect(await verifyArchive(file, ArchiveKey.fromHex(ARCHIVE_KEY_HEX, 'test'))).toMatchObject({
    tenantId: 'gringotts',
    rows: { invoices: 23, invoice_items: 23 },
  });
  await addInvoices('gringotts', 1);
  expect(await invoicesOf('gringotts')).toHaveLength(21);
  // The workflow's thaw, had the answer been lost: done, with the safety archive; gringotts keeps its new row.
  expect(await run({ action: 'thaw', tenantId: 'gringotts', execution: EXECUTION })).toMatchObject({
    restored: true,
    safetyArchive: report.safetyArchive,
  });
  expect(await invoicesOf('gringotts')).toHaveLength(21);
});
