/**
 * Tenant naming rules: the single place where a tenant id becomes a PostgreSQL identifier.
 *
 * Everything that reaches SQL as an identifier (schema, role, database) is derived here from an id that
 * passed `validateTenantId`, and is still quoted by the caller with the driver's identifier escaping.
 * This module imports nothing but Node's crypto, so the CDK app, the Lambda handlers and the API can all
 * share it.
 */
import { createHmac } from 'crypto';

export const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{1,28}[a-z0-9]$/;
export const TENANT_ID_RULE =
  'use 3-30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen';

/** PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes; a truncated name could collide. */
export const MAX_PG_IDENTIFIER_BYTES = 63;

/** Ids that collide with names PostgreSQL, RDS or this product reserve for themselves. */
const RESERVED_IDS = new Set([
  'public',
  'postgres',
  'information-schema',
  'admin',
  'administrator',
  'root',
  'master',
  'template0',
  'template1',
  'default',
  'none',
  'all',
  'owner',
  'platform',
  'pool',
  'bridge',
  'silo',
  'shared',
  'system',
  'rds',
  'rdsadmin',
  'rdsrepladmin',
  'aws',
]);
/** Hyphens become underscores in PostgreSQL names, so `pg-` here is PostgreSQL's reserved `pg_` prefix. */
const RESERVED_PREFIXES = ['pg-', 'rds-', 'rdsadmin', 'aws-', 'app-'];

export type IsolationModel = 'silo' | 'pool' | 'bridge';
export const ISOLATION_MODELS: readonly IsolationModel[] = ['silo', 'pool', 'bridge'];

/** Why a tenant id was refused, or undefined when it is acceptable. */
export function tenantIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') {
    return `must be a string (got ${id === null ? 'null' : typeof id}): ${TENANT_ID_RULE}`;
  }
  if (!TENANT_ID_PATTERN.test(id)) {
    return `${JSON.stringify(id)} is invalid: ${TENANT_ID_RULE}`;
  }
  if (id.includes('--')) {
    return `${JSON.stringify(id)} is invalid: it contains "--", which reads as an SQL comment marker; ${TENANT_ID_RULE} with single hyphens`;
  }
  if (RESERVED_IDS.has(id) || RESERVED_PREFIXES.some((p) => id.startsWith(p))) {
    return `${JSON.stringify(id)} is reserved (it collides with a PostgreSQL, RDS or platform name such as public, postgres, information-schema, admin, rds, pg-*, rds-*, aws-*, app-*): choose another id`;
  }
  return derivedNameProblem(id);
}

/** Throws a TenantIdError when the id is not acceptable. `source` says where the id came from. */
export function validateTenantId(id: unknown, source: string): string {
  const problem = tenantIdProblem(id);
  if (problem) throw new TenantIdError(`${source}: tenant id ${problem}`);
  return id as string;
}

export class TenantIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TenantIdError';
  }
}

export interface TenantDbNames {
  /** Bridge: the tenant's schema. */
  readonly schema: string;
  /** Bridge: the tenant's NOLOGIN role, the only role with USAGE on `schema`. */
  readonly role: string;
  /** Silo on a shared server (the local platform): the tenant's database. */
  readonly database: string;
}

/**
 * The PostgreSQL names for a tenant. Hyphens become underscores; since ids cannot contain underscores the
 * mapping is one-to-one, so two tenants can never share a schema or role.
 *
 * Every role can list every schema and role name in the catalogs (B4). Where the tenant ids themselves are
 * confidential (they are often customer names), pass a `namingKey`: names become `t_` + 24 hex digits of an
 * HMAC of the id, which nobody without the key can map back to a customer, even by guessing names. The key
 * must never change once tenants exist (the provisioner and the API must use the same one).
 */
export function tenantDbNames(id: string, namingKey?: string): TenantDbNames {
  const base = namingKey
    ? createHmac('sha256', namingKey).update(id).digest('hex').slice(0, 24)
    : id.replace(/-/g, '_');
  return { schema: `t_${base}`, role: `t_${base}`, database: `silo_${base}` };
}

/**
 * Checks that every derived name fits PostgreSQL's identifier limit. With today's 30-character ids the names
 * stay far below it; the check stands so that a change to the id rule or the prefixes cannot silently produce
 * truncated (and so colliding) names.
 */
export function derivedNameProblem(id: string): string | undefined {
  for (const [kind, name] of Object.entries(tenantDbNames(id))) {
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > MAX_PG_IDENTIFIER_BYTES) {
      return `${JSON.stringify(id)} is too long: its PostgreSQL ${kind} name "${name}" would be ${bytes} bytes, over PostgreSQL's ${MAX_PG_IDENTIFIER_BYTES}; use a shorter id`;
    }
  }
  return undefined;
}

/** The CloudFormation stack that holds one tenant, whatever its model. */
export function tenantStackName(id: string): string {
  return `Tenant-${id}`;
}
