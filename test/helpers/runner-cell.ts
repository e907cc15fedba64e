/**
 * A shared cell as its mobility runner sees it, for the runner's tests: a test database on the embedded PostgreSQL,
 * bootstrapped by the real provisioner; the cell's archive bucket in moto's S3 (versioned, as the construct makes
 * it); the runner's environment; the cell's secrets stubbed at the SDK boundary; and the runtime role's password
 * (in AWS it signs in with IAM tokens).
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CreateBucketCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { LATEST_VERSION } from '../../db/migrations';
import { RUNTIME_ROLES } from '../../db/roles';
import { sql } from '../../db/sql';
import { TenantDatabase } from '../../db/tenant-context';
import {
  createTestDatabase,
  MASTER_PASSWORD,
  MASTER_ROLE,
  RUNTIME_PASSWORD,
  serverUrl,
  setRuntimePassword,
  TestDatabase,
  TEST_CONTEXT_KEY,
} from '../db/harness';
import type { Moto } from './moto';

export const ONBOARDING_WORKFLOW =
  'arn:aws:states:us-east-1:111122223333:stateMachine:tenantforge-onboarding';
export const WORKFLOW_EXECUTIONS = 'arn:aws:states:us-east-1:111122223333:execution:tenantforge-onboarding:';

export interface RunnerCell {
  readonly db: TestDatabase;
  readonly s3: S3Client;
  /** The tenants' data as the API reads it (the runtime role, each tenant's verified context). */
  readonly tenants: TenantDatabase;
  readonly provisioner: typeof import('../../lambda/tenant-provisioner');
  /** The runner's handler. */
  run(
    event: Record<string, unknown>,
  ): Promise<import('../../lambda/tenant-provisioner/mobility').MobilityReport>;
  /** A custom resource Create from `stack`, through the real provisioner. */
  create(resourceType: string, properties: Record<string, unknown>, stack: string): Promise<unknown>;
  /** A custom resource Update from `stack` (its properties as they were, then as now). */
  update(
    resourceType: string,
    properties: Record<string, unknown>,
    old: Record<string, unknown>,
    stack: string,
  ): Promise<unknown>;
  /** A tenant of the cell's model, created by its own stack. */
  onboard(id: string): Promise<unknown>;
  /** The tenant's invoices' customers, in order, read as the API reads them. */
  invoices(tenant: string): Promise<string[]>;
  /** `n` invoices with an item each, written as the API writes them. */
  addInvoices(tenant: string, n: number): Promise<unknown>;
}

/** The environment of the cell that ran last (two cells in one process take turns). */
let activeCell: object | undefined;

export async function startRunnerCell(options: {
  /** silo: the cell of `siloTenant` (its own stack, database and bucket). */
  model: 'pool' | 'bridge' | 'silo';
  siloTenant?: string;
  database: string;
  bucket: string;
  archiveKeyHex: string;
  moto: Moto;
  secrets: AwsClientStub<SecretsManagerClient>;
}): Promise<RunnerCell> {
  const { model, moto, secrets } = options;
  const ownStack =
    model === 'pool' ? 'Pool' : model === 'bridge' ? 'Bridge' : `Tenant-${options.siloTenant!}`;
  const arn = (name: string) => `arn:aws:secretsmanager:us-east-1:111122223333:secret:${model}-${name}`;
  process.env.AWS_ENDPOINT_URL_S3 = moto.endpoint;
  const s3 = new S3Client({ forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: options.bucket }));
  await s3.send(
    new PutBucketVersioningCommand({
      Bucket: options.bucket,
      VersioningConfiguration: { Status: 'Enabled' },
    }),
  );
  const provisioner = await import('../../lambda/tenant-provisioner');
  const runner = await import('../../lambda/tenant-provisioner/mobility-entry');
  const db = await createTestDatabase(options.database);
  const url = serverUrl();
  const runtimeRole = RUNTIME_ROLES[model];
  // The cell's environment, applied again before each of its calls: a test may run two cells in one process.
  const cellEnv = {
    MODEL: model,
    OWN_STACK: ownStack,
    DB_HOST: url.hostname,
    DB_PORT: url.port,
    DB_NAME: db.name,
    DB_SECRET_ARN: arn('master'),
    CONTEXT_KEY_SECRET_ARN: arn('context-key'),
    DB_SSL_MODE: 'disable',
    DB_CONNECT_SECONDS: '2',
    ARCHIVE_BUCKET: options.bucket,
    ARCHIVE_KEY_SECRET_ARN: arn('archive-key'),
    RUNTIME_DB_USER: runtimeRole,
    RUNTIME_DB_PASSWORD: RUNTIME_PASSWORD,
    S3_FORCE_PATH_STYLE: 'true',
    ONBOARDING_STATE_MACHINE_ARN: ONBOARDING_WORKFLOW,
  };
  // Only when another cell ran since: a test may change a variable of its one cell for a call.
  const activate = (): true => {
    if (activeCell !== cellEnv) Object.assign(process.env, cellEnv);
    activeCell = cellEnv;
    return true;
  };
  activate();
  secrets
    .on(GetSecretValueCommand, { SecretId: arn('master') })
    .resolves({ SecretString: JSON.stringify({ username: MASTER_ROLE, password: MASTER_PASSWORD }) });
  secrets
    .on(GetSecretValueCommand, { SecretId: arn('context-key') })
    .resolves({ SecretString: '5e'.repeat(32) });
  secrets
    .on(GetSecretValueCommand, { SecretId: arn('archive-key') })
    .resolves({ SecretString: options.archiveKeyHex });
  let requestNo = 0;
  const create = (
    resourceType: string,
    properties: Record<string, unknown>,
    stack: string,
    old?: Record<string, unknown>,
  ) =>
    activate() &&
    provisioner.handler({
      ...(old
        ? {
            RequestType: 'Update',
            PhysicalResourceId: `tenant-${String(properties.TenantId)}`,
            OldResourceProperties: { ServiceToken: 'token', ...old },
          }
        : { RequestType: 'Create' }),
      ServiceToken: 'arn:aws:lambda:us-east-1:111122223333:function:provider',
      ResponseURL: 'https://cloudformation-custom-resource-response.example/',
      StackId: `arn:aws:cloudformation:us-east-1:111122223333:stack/${stack}/0a1b2c3d`,
      RequestId: `request-${++requestNo}`,
      LogicalResourceId: 'Tenant',
      ResourceType: resourceType,
      ResourceProperties: { ServiceToken: 'token', ...properties },
    } as CloudFormationCustomResourceEvent);
  const onboard = (id: string) =>
    create(
      model === 'pool'
        ? 'Custom::PoolTenant'
        : model === 'bridge'
          ? 'Custom::BridgeTenant'
          : 'Custom::SiloTenant',
      {
        TenantId: id,
        Name: `${id} Inc`,
        Model: model,
        DeletionPolicy: 'retain',
        SchemaVersion: String(LATEST_VERSION),
        Request: JSON.stringify({ id, name: `${id} Inc`, model }),
      },
      `Tenant-${id}`,
    );
  await create(
    'Custom::DatabaseBootstrap',
    { Model: model, SchemaVersion: String(LATEST_VERSION) },
    ownStack,
  );
  const master = await db.master();
  await setRuntimePassword(master, runtimeRole);
  await master.end();
  const tenants = new TenantDatabase({
    contextKey: TEST_CONTEXT_KEY,
    pool: db.poolAs(runtimeRole),
    model,
    ...(options.siloTenant ? { siloTenantId: options.siloTenant } : {}),
  });
  return {
    db,
    s3,
    tenants,
    provisioner,
    run: (event) => {
      activate();
      // A report: these cells start no runner task (no RUNNER_TASK_* in their environment).
      return runner.handler(event as never) as Promise<
        import('../../lambda/tenant-provisioner/mobility').MobilityReport
      >;
    },
    create: (resourceType, properties, stack) => create(resourceType, properties, stack),
    update: (resourceType, properties, old, stack) => create(resourceType, properties, stack, old),
    onboard,
    invoices: async (tenant) =>
      (
        await tenants
          .forTenant(tenant)
          .run<{ customer: string }>(sql`SELECT customer FROM invoices ORDER BY customer`)
      ).rows.map((r) => r.customer),
    addInvoices: (tenant, n) =>
      tenants.forTenant(tenant).run(
        sql`WITH i AS (INSERT INTO invoices (customer) SELECT ${tenant} || ' customer ' || g FROM generate_series(1, ${n}::integer) g RETURNING id)
            INSERT INTO invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
            SELECT id, 1, 'Consulting', 2, 5000 FROM i`,
      ),
  };
}

/** What the runners sent Step Functions for a task token: SendTaskSuccess's output, or the failure. */
export type TaskAnswer = { output?: string; error?: string; cause?: string };

/**
 * Step Functions as it answers the runners' callback tasks (stubbed at the SDK boundary): a token is valid while
 * `tokens` holds it and is answered once; `answered` keeps what each token got.
 */
export function answerTasks(sfn: AwsClientStub<SFNClient>): {
  tokens: Set<string>;
  answered: Map<string, TaskAnswer>;
} {
  const tokens = new Set<string>();
  const answered = new Map<string, TaskAnswer>();
  sfn.on(SendTaskSuccessCommand).callsFake(async (input: { taskToken: string; output: string }) => {
    if (!tokens.has(input.taskToken)) {
      throw Object.assign(new Error('Invalid Token'), { name: 'TaskDoesNotExist' });
    }
    tokens.delete(input.taskToken);
    answered.set(input.taskToken, { output: input.output });
    return {};
  });
  sfn
    .on(SendTaskFailureCommand)
    .callsFake(async (input: { taskToken: string; error: string; cause: string }) => {
      answered.set(input.taskToken, { error: input.error, cause: input.cause });
      return {};
    });
  return { tokens, answered };
}
