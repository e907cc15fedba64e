import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { mockClient } from 'aws-sdk-client-mock';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { LATEST_VERSION } from '../../db/migrations';
import { ArchiveKey, verifyArchive } from '../../db/mobility';
import { sql } from '../../db/sql';
import { TenantDatabase } from '../../db/tenant-context';
import {
  createTestDatabase,
  MASTER_PASSWORD,
  MASTER_ROLE,
  RUNTIME_PASSWORD,
  serverUrl,
  TestDatabase,
  TEST_CONTEXT_KEY,
} from '../db/harness';
import { Moto, startMoto } from '../helpers/moto';

// The bridge cell's mobility runner restoring over a tenant's data (mobility-replace.ts), for real against the
// embedded PostgreSQL (a schema and a role per tenant: the freeze revokes the tenant's writes, the thaw grants them
// back inside the replace's transaction) and moto's DynamoDB and S3; Secrets Manager and Step Functions are stubbed
// at the SDK boundary. The pool cell's runner has the full suite of refusals in mobility-runner.test.ts.
const secrets = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);
const WORKFLOW = 'arn:aws:states:us-east-1:111122223333:stateMachine:tenantforge-onboarding';
const EXECUTION =
  'arn:aws:states:us-east-1:111122223333:execution:tenantforge-onboarding:restore-gringotts-1';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:rds!db-bridge';
const KEY_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:context-key-bridge';
const ARCHIVE_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:archive-key-bridge';
const ARCHIVE_KEY_HEX = 'b8'.repeat(32);
const BUCKET = 'bridge-cell-archives';

let db: TestDatabase;
let moto: Moto;
let s3: S3Client;
let provisioner: typeof import('../../lambda/tenant-provisioner');
let runner: typeof import('../../lambda/tenant-provisioner/mobility-entry');
let tenants: TenantDatabase;
const run = (event: Record<string, unknown>) => runner.handler(event as never);

let requestNo = 0;
function create(resourceType: string, properties: Record<string, unknown>, stack: string) {
  return provisioner.handler({
    ServiceToken: 'arn:aws:lambda:us-east-1:111122223333:function:provider',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/',
    StackId: `arn:aws:cloudformation:us-east-1:111122223333:stack/${stack}/0a1b2c3d`,
    RequestId: `request-${++requestNo}`,
    LogicalResourceId: 'Tenant',
    ResourceType: resourceType,
    ResourceProperties: { ServiceToken: 'token', ...properties },
    RequestType: 'Create',
  } as CloudFormationCustomResourceEvent);
}
const onboard = (id: string) =>
  create(
    'Custom::BridgeTenant',
    {
      TenantId: id,
      Name: `${id} Inc`,
      Model: 'bridge',
      DeletionPolicy: 'retain',
      SchemaVersion: String(LATEST_VERSION),
      Request: JSON.stringify({ id, name: `${id} Inc`, model: 'bridge' }),
    },
    `Tenant-${id}`,
  );

async function invoicesOf(tenant: string): Promise<string[]> {
  const r = await tenants
    .forTenant(tenant)
    .run<{ customer: string }>(sql`SELECT customer FROM invoices ORDER BY customer`);
  return r.rows.map((row) => row.customer);
}

const addInvoices = (tenant: string, n: number) =>
  tenants.forTenant(tenant).run(
    sql`WITH i AS (INSERT INTO invoices (customer) SELECT ${tenant} || ' customer ' || g FROM generate_series(1, ${n}::integer) g RETURNING id)
        INSERT INTO invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
        SELECT id, 1, 'Consulting', 2, 5000 FROM i`,
  );

beforeAll(async () => {
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  moto = await startMoto();
  process.env.AWS_ENDPOINT_URL_S3 = moto.endpoint;
  s3 = new S3Client({ forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await s3.send(
    new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }),
  );
  provisioner = await import('../../lambda/tenant-provisioner');
  runner = await import('../../lambda/tenant-provisioner/mobility-entry');
  db = await createTestDatabase('mobility_runner_bridge');
  const url = serverUrl();
  Object.assign(process.env, {
    MODEL: 'bridge',
    OWN_STACK: 'Bridge',
    DB_HOST: url.hostname,
    DB_PORT: url.port,
    DB_NAME: db.name,
    DB_SECRET_ARN: SECRET_ARN,
    CONTEXT_KEY_SECRET_ARN: KEY_SECRET_ARN,
    DB_SSL_MODE: 'disable',
    DB_CONNECT_SECONDS: '2',
    ARCHIVE_BUCKET: BUCKET,
    ARCHIVE_KEY_SECRET_ARN: ARCHIVE_SECRET_ARN,
    RUNTIME_DB_USER: 'app_bridge',
    RUNTIME_DB_PASSWORD: RUNTIME_PASSWORD,
    S3_FORCE_PATH_STYLE: 'true',
    ONBOARDING_STATE_MACHINE_ARN: WORKFLOW,
  });
  secrets
    .on(GetSecretValueCommand, { SecretId: SECRET_ARN })
    .resolves({ SecretString: JSON.stringify({ username: MASTER_ROLE, password: MASTER_PASSWORD }) });
  secrets.on(GetSecretValueCommand, { SecretId: KEY_SECRET_ARN }).resolves({ SecretString: '5e'.repeat(32) });
  secrets
    .on(GetSecretValueCommand, { SecretId: ARCHIVE_SECRET_ARN })
    .resolves({ SecretString: ARCHIVE_KEY_HEX });
  await moto.resetRegistry();
  await create(
    'Custom::DatabaseBootstrap',
    { Model: 'bridge', SchemaVersion: String(LATEST_VERSION) },
    'Bridge',
  );
  for (const id of ['gringotts', 'zorg']) await onboard(id);
  const master = await db.master();
  await master.query(`ALTER ROLE app_bridge PASSWORD '${RUNTIME_PASSWORD}'`);
  await master.end();
  tenants = new TenantDatabase({
    contextKey: TEST_CONTEXT_KEY,
    pool: db.poolAs('app_bridge'),
    model: 'bridge',
  });
  await addInvoices('gringotts', 20);
  await addInvoices('zorg', 40);
});

afterAll(async () => {
  await db.drop();
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
    stateMachineArn: WORKFLOW,
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
  const o = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: report.safetyArchive! }));
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
