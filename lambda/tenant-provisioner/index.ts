/**
 * Custom-resource handler of the tenant provisioner (one per cell, behind `custom_resources.Provider`).
 *
 * Resources it serves, by the cell's MODEL:
 *   Custom::DatabaseBootstrap  any model  roles, bookkeeping, PUBLIC revoked; pool: the shared tables
 *   Custom::PoolTenant         pool       registers the tenant (its rows can exist only once registered)
 *   Custom::BridgeTenant       bridge     the tenant's role and schema, migrated to SchemaVersion
 *   Custom::SiloTenant         silo       the silo database's application schema at SchemaVersion
 *
 * Properties are validated before any AWS call or SQL. Every request is idempotent. A failure throws with its
 * reason (the provider framework fails the resource at once, so the stack fails fast) after recording it in
 * the tenant registry. Delete keeps tenant data unless DeletionPolicy is "destroy".
 */
import type { CloudFormationCustomResourceEvent, CloudFormationCustomResourceResponse } from 'aws-lambda';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Client, ClientConfig } from 'pg';
import {
  ISOLATION_MODELS,
  IsolationModel,
  PROVISIONER_RESOURCE_TYPES,
  RegistryItem,
  registryUpdate,
} from '../../contracts';
import { tenantIdProblem } from '../../db/naming';
import { MIGRATIONS } from '../../db/migrations';
import { bootstrapDatabase } from '../../db/bootstrap';
import { dataModel } from '../../db/models';

export const RESOURCE_TYPES = PROVISIONER_RESOURCE_TYPES;

type Result = Pick<CloudFormationCustomResourceResponse, 'PhysicalResourceId' | 'Data'>;

/** A request that cannot be carried out as written: nothing was attempted. */
export class ProvisioningInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProvisioningInputError';
  }
}

interface Request {
  kind: 'bootstrap' | 'tenant';
  model: IsolationModel;
  tenantId?: string;
  name?: string;
  deletionPolicy: 'retain' | 'destroy';
  schemaVersion: number;
  physicalId: string;
}

interface Env {
  model: IsolationModel;
  host: string;
  port: number;
  database: string;
  secretArn: string;
  registryTable: string;
  sslMode: 'verify-full' | 'disable';
}

let secrets: SecretsManagerClient | undefined;
let dynamo: DynamoDBClient | undefined;

export async function handler(event: CloudFormationCustomResourceEvent): Promise<Result> {
  const env = readEnv();
  let request: Request;
  try {
    request = parseRequest(event, env.model);
  } catch (e) {
    if (event.RequestType === 'Delete' && e instanceof ProvisioningInputError) {
      // A resource whose Create was refused created nothing; its rollback Delete must not fail as well.
      log('delete of an invalid resource: nothing to remove', { reason: e.message });
      return { PhysicalResourceId: event.PhysicalResourceId };
    }
    throw e;
  }

  const tenantLabel = request.tenantId ? ` for tenant "${request.tenantId}"` : '';
  log('request', { requestType: event.RequestType, resourceType: event.ResourceType, ...request });
  if (request.kind === 'tenant' && event.RequestType !== 'Delete') {
    await recordTenant(env, request, { status: 'provisioning' });
  }
  let client: Client | undefined;
  try {
    client = await connect(env);
    const data = await carryOut(client, event.RequestType, request);
    if (request.kind === 'tenant') {
      await recordTenant(env, request, {
        status: event.RequestType === 'Delete' ? 'offboarded' : 'active',
        schema: data.Schema,
        dataRetained: event.RequestType === 'Delete' ? request.deletionPolicy === 'retain' : undefined,
      });
    }
    log('done', { physicalId: request.physicalId, ...data });
    return { PhysicalResourceId: request.physicalId, Data: data };
  } catch (e) {
    const reason = (e as Error).message;
    if (request.kind === 'tenant') {
      await recordTenant(env, request, {
        status: 'failed',
        failureReason: `${event.RequestType}: ${reason}`,
      }).catch((recordError) =>
        log('could not record the failure in the registry', { error: String(recordError) }),
      );
    }
    throw new Error(`${event.ResourceType} ${event.RequestType}${tenantLabel} failed: ${reason}`, {
      cause: e,
    });
  } finally {
    await client?.end().catch(() => undefined);
  }
}

async function carryOut(
  client: Client,
  requestType: CloudFormationCustomResourceEvent['RequestType'],
  r: Request,
): Promise<Record<string, string>> {
  const version = r.schemaVersion;
  if (r.kind === 'bootstrap') {
    // Deleting the bootstrap resource never drops roles or data: tenant data outlives the cell's stack.
    if (requestType !== 'Delete') await bootstrapDatabase(client, r.model, { version });
    return { Model: r.model, SchemaVersion: String(version) };
  }
  const id = r.tenantId!;
  const model = dataModel(r.model);
  if (requestType === 'Delete') {
    await model.offboard(client, id, r.deletionPolicy, {});
    return { TenantId: id, Schema: model.schemaOf(id, {}) };
  }
  const done = await model.provision(client, { id, name: r.name! }, { version });
  return {
    TenantId: id,
    Schema: done.schema,
    SchemaVersion: String(done.version),
    FromVersion: String(done.fromVersion),
  };
}

/** Validates the event against this cell's model. Throws ProvisioningInputError naming the property and fix. */
export function parseRequest(event: CloudFormationCustomResourceEvent, model: IsolationModel): Request {
  const p = event.ResourceProperties as Record<string, unknown>;
  const where = `${event.ResourceType} ${event.LogicalResourceId}`;
  const fail = (msg: string) => {
    throw new ProvisioningInputError(`${where}: ${msg}`);
  };
  const kind =
    event.ResourceType === RESOURCE_TYPES.bootstrap
      ? 'bootstrap'
      : event.ResourceType === RESOURCE_TYPES[model]
        ? 'tenant'
        : fail(
            `this is the ${model} provisioner; it handles ${RESOURCE_TYPES.bootstrap} and ${RESOURCE_TYPES[model]} only: point the resource at its model's provisioner`,
          );
  if (p.Model !== model) {
    fail(`property Model is ${JSON.stringify(p.Model)}, but this provisioner serves "${model}" tenants`);
  }
  const versions = MIGRATIONS.map((m) => m.version);
  const schemaVersion = Number(p.SchemaVersion);
  if (!versions.includes(schemaVersion)) {
    fail(`property SchemaVersion is ${JSON.stringify(p.SchemaVersion)}: use one of ${versions.join(', ')}`);
  }
  const deletionPolicy = p.DeletionPolicy ?? 'retain';
  if (deletionPolicy !== 'retain' && deletionPolicy !== 'destroy') {
    fail(`property DeletionPolicy is ${JSON.stringify(p.DeletionPolicy)}: use "retain" or "destroy"`);
  }
  if (kind === 'bootstrap') {
    return {
      kind,
      model,
      deletionPolicy: 'retain',
      schemaVersion,
      physicalId: `${model}-database-bootstrap`,
    };
  }
  const idProblem = tenantIdProblem(p.TenantId);
  if (idProblem) fail(`property TenantId: tenant id ${idProblem}`);
  if (typeof p.Name !== 'string' || p.Name.length === 0)
    fail('property Name must be the tenant display name');
  const tenantId = p.TenantId as string;
  return {
    kind,
    model,
    tenantId,
    name: p.Name as string,
    deletionPolicy: deletionPolicy as 'retain' | 'destroy',
    schemaVersion,
    // Stable per tenant: the same tenant always maps to the same physical resource.
    physicalId: `tenant-${model}-${tenantId}`,
  };
}

function readEnv(): Env {
  const e = process.env;
  const missing = ['MODEL', 'DB_HOST', 'DB_SECRET_ARN', 'REGISTRY_TABLE'].filter((k) => !e[k]);
  if (missing.length > 0) {
    throw new Error(
      `tenant provisioner misconfigured: environment ${missing.join(', ')} not set (the CDK construct sets them)`,
    );
  }
  if (!ISOLATION_MODELS.includes(e.MODEL as IsolationModel)) {
    throw new Error(`tenant provisioner misconfigured: MODEL is ${JSON.stringify(e.MODEL)}`);
  }
  const sslMode = (e.DB_SSL_MODE ?? 'verify-full') as Env['sslMode'];
  if (sslMode !== 'verify-full' && sslMode !== 'disable') {
    throw new Error(
      `tenant provisioner misconfigured: DB_SSL_MODE is ${JSON.stringify(e.DB_SSL_MODE)}: use verify-full`,
    );
  }
  return {
    model: e.MODEL as IsolationModel,
    host: e.DB_HOST!,
    port: Number(e.DB_PORT ?? '5432'),
    database: e.DB_NAME ?? 'saas',
    secretArn: e.DB_SECRET_ARN!,
    registryTable: e.REGISTRY_TABLE!,
    sslMode,
  };
}

/**
 * The connection settings. TLS with certificate and host-name verification is the default; the RDS CA bundle is
 * trusted through NODE_EXTRA_CA_CERTS. `DB_SSL_MODE=disable` exists for the local platform and tests only.
 */
export function connectionConfig(env: Env, user: string, password: string): ClientConfig {
  return {
    host: env.host,
    port: env.port,
    database: env.database,
    user,
    password,
    ssl: env.sslMode === 'disable' ? false : { rejectUnauthorized: true, servername: env.host },
    connectionTimeoutMillis: 10000,
    statement_timeout: 120000,
    application_name: 'tenant-provisioner',
  };
}

async function connect(env: Env): Promise<Client> {
  secrets ??= new SecretsManagerClient({});
  const secret = await secrets.send(new GetSecretValueCommand({ SecretId: env.secretArn }));
  let creds: { username?: string; password?: string };
  try {
    creds = JSON.parse(secret.SecretString ?? '');
  } catch {
    throw new Error(`the database secret ${env.secretArn} is not JSON with username and password`);
  }
  if (!creds.username || !creds.password) {
    throw new Error(`the database secret ${env.secretArn} has no username or password`);
  }
  const client = new Client(connectionConfig(env, creds.username, creds.password));
  client.on('error', (e) => log('database connection error', { error: e.message }));
  await client.connect();
  return client;
}

async function recordTenant(
  env: Env,
  r: Request,
  fields: Pick<RegistryItem, 'status'> &
    Partial<Pick<RegistryItem, 'schema' | 'failureReason' | 'dataRetained'>>,
): Promise<void> {
  dynamo ??= new DynamoDBClient({});
  const update = registryUpdate(
    r.tenantId!,
    {
      model: r.model,
      name: r.name ?? r.tenantId!,
      deletionPolicy: r.deletionPolicy,
      schemaVersion: r.schemaVersion,
      ...fields,
    },
    fields.failureReason ? [] : ['failureReason'],
  );
  await dynamo.send(new UpdateItemCommand({ TableName: env.registryTable, ...update }));
}

function log(message: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level: 'info', message, ...fields }));
}
