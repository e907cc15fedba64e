/** What the provisioner is asked to do: the custom resource event, validated before any AWS call or SQL. */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import {
  DeletionPolicy,
  ISOLATION_MODELS,
  IsolationModel,
  PROVISIONER_RESOURCE_TYPES,
  tenantStackName,
} from '../../contracts';
import { tenantIdProblem } from '../../db/naming';
import { parseSlots } from '../../db/slots';
import { MIGRATIONS } from '../../db/migrations';

export const RESOURCE_TYPES = PROVISIONER_RESOURCE_TYPES;

/** A request that cannot be carried out as written: nothing was attempted. */
export class ProvisioningInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProvisioningInputError';
  }
}

export interface Request {
  kind: 'bootstrap' | 'tenant';
  model: IsolationModel;
  tenantId?: string;
  name?: string;
  deletionPolicy: DeletionPolicy;
  schemaVersion: number;
  physicalId: string;
  /** An explicit restore of an offboarded tenant's kept data. */
  restore: boolean;
  /** The tenant's request as its stack states it (JSON), recorded in the registry. */
  tenantRequest?: string;
  /** The silo a move out of it kept (its stack marks that resource so): left as it is until a purge. */
  keptCopy?: boolean;
  /** The bootstrap of a shared cell: how many slot roles its runtime role has (db/slots.ts). */
  runtimeSlots?: number;
}

export interface Env {
  model: IsolationModel;
  /** The stack this provisioner belongs to: its bootstrap resource lives there. */
  ownStack: string;
  host: string;
  port: number;
  database: string;
  secretArn: string;
  /** The cell's tenant context key (a secret of 64 hex characters): the bootstrap installs it (db/context.ts). */
  contextKeySecretArn: string;
  registryTable: string;
  sslMode: 'verify-full' | 'disable';
  /** How long to keep trying to reach the database before failing the stack. */
  connectSeconds: number;
  /**
   * The longest one statement may run: 2 minutes for provisioning and migrations; the mobility runner sets more
   * (DB_STATEMENT_TIMEOUT_MS), as a large tenant's restore inserts each table in one statement.
   */
  statementTimeoutMs: number;
  /** The cell's archive bucket (mobility-runner construct): a tenant destroyed at offboarding loses its archives. */
  archiveBucket?: string;
}

/** The stack name in a CloudFormation stack id (`arn:aws:cloudformation:<region>:<account>:stack/<name>/<guid>`). */
function stackNameOf(stackId: string): string | undefined {
  return /:stack\/([^/]+)\//.exec(stackId)?.[1];
}

/**
 * Validates the event against this provisioner. Throws ProvisioningInputError naming the property and the fix.
 * A tenant resource is accepted only from that tenant's own stack, and the bootstrap only from the provisioner's
 * own stack: a stack that can reach this provisioner cannot provision, restore or destroy another tenant.
 */
export function parseRequest(
  event: CloudFormationCustomResourceEvent,
  env: Pick<Env, 'model' | 'ownStack'>,
): Request {
  const model = env.model;
  const p = event.ResourceProperties as Record<string, unknown>;
  const where = `${event.ResourceType} ${event.LogicalResourceId}`;
  const fail = (msg: string): never => {
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
  const callingStack = stackNameOf(event.StackId);
  if (kind === 'bootstrap') {
    if (callingStack !== env.ownStack) {
      fail(
        `the database bootstrap belongs to stack ${env.ownStack}; stack ${callingStack ?? event.StackId} may not run it`,
      );
    }
    let runtimeSlots: number | undefined;
    try {
      runtimeSlots = parseSlots(p.RuntimeSlots as string | undefined, 'property RuntimeSlots');
    } catch (e) {
      fail((e as Error).message.replace(/^configuration: /, ''));
    }
    return {
      kind,
      model,
      deletionPolicy: 'retain',
      schemaVersion,
      physicalId: `${model}-database-bootstrap`,
      restore: false,
      ...(runtimeSlots !== undefined ? { runtimeSlots } : {}),
    };
  }
  const idProblem = tenantIdProblem(p.TenantId);
  if (idProblem) fail(`property TenantId: tenant id ${idProblem}`);
  if (typeof p.Name !== 'string' || p.Name.length === 0)
    fail('property Name must be the tenant display name');
  const tenantId = p.TenantId as string;
  if (callingStack !== tenantStackName(tenantId)) {
    fail(
      `tenant "${tenantId}" can be provisioned only from its own stack ${tenantStackName(tenantId)}, not from ${callingStack ?? event.StackId}: nothing was changed`,
    );
  }
  if (p.Restore !== undefined && p.Restore !== 'true' && p.Restore !== 'false') {
    fail(`property Restore is ${JSON.stringify(p.Restore)}: use "true" or leave it out`);
  }
  if (p.Request !== undefined && typeof p.Request !== 'string')
    fail('property Request must be the tenant request as JSON');
  if (p.KeptCopy !== undefined && p.KeptCopy !== 'true') {
    fail(`property KeptCopy is ${JSON.stringify(p.KeptCopy)}: use "true" or leave it out`);
  }
  return {
    kind,
    model,
    tenantId,
    name: p.Name as string,
    deletionPolicy: deletionPolicy as DeletionPolicy,
    schemaVersion,
    // Stable per tenant: the same tenant always maps to the same physical resource.
    physicalId: `tenant-${model}-${tenantId}`,
    restore: p.Restore === 'true',
    tenantRequest: p.Request as string | undefined,
    ...(p.KeptCopy === 'true' ? { keptCopy: true } : {}),
  };
}

export function readEnv(): Env {
  const e = process.env;
  const missing = [
    'MODEL',
    'OWN_STACK',
    'DB_HOST',
    'DB_SECRET_ARN',
    'CONTEXT_KEY_SECRET_ARN',
    'REGISTRY_TABLE',
  ].filter((k) => !e[k]);
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
  const statementTimeoutMs = Number(e.DB_STATEMENT_TIMEOUT_MS ?? '120000');
  // A function runs 15 minutes at most; the runner task (RUNNER_IN_TASK) runs a data step for up to 4 hours.
  const ceiling = e.RUNNER_IN_TASK === 'true' ? 4 * 3600 * 1000 : 900000;
  if (!Number.isInteger(statementTimeoutMs) || statementTimeoutMs < 1 || statementTimeoutMs > ceiling) {
    // 0 or NaN would turn the timeout off (the driver sends only a truthy one).
    throw new Error(
      `tenant provisioner misconfigured: DB_STATEMENT_TIMEOUT_MS is ${JSON.stringify(e.DB_STATEMENT_TIMEOUT_MS)}: milliseconds from 1 to ${ceiling}`,
    );
  }
  return {
    model: e.MODEL as IsolationModel,
    ownStack: e.OWN_STACK!,
    host: e.DB_HOST!,
    port: Number(e.DB_PORT ?? '5432'),
    database: e.DB_NAME ?? 'saas',
    secretArn: e.DB_SECRET_ARN!,
    contextKeySecretArn: e.CONTEXT_KEY_SECRET_ARN!,
    registryTable: e.REGISTRY_TABLE!,
    sslMode,
    connectSeconds: Number(e.DB_CONNECT_SECONDS ?? '120'),
    statementTimeoutMs,
    archiveBucket: e.ARCHIVE_BUCKET || undefined,
  };
}
