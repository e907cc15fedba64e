/**
 * Tenant naming rules: the single place where a tenant id becomes a PostgreSQL identifier.
 *
 * Everything that reaches SQL as an identifier (schema, role, database) is derived here from an id that
 * passed `validateTenantId`, and is still quoted by the caller with the driver's identifier escaping.
 * The id rule itself is a contract (contracts/tenant-id.ts); this module adds what PostgreSQL needs of it.
 */
import { createHmac } from 'crypto';
import { tenantIdRuleProblem } from '../contracts';

export { ISOLATION_MODELS } from '../contracts';
export type { IsolationModel } from '../contracts';

/** PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes; a truncated name could collide. */
export const MAX_PG_IDENTIFIER_BYTES = 63;

/** Why a tenant id was refused, or undefined when it is acceptable. */
export function tenantIdProblem(id: unknown): string | undefined {
  return tenantIdRuleProblem(id) ?? derivedNameProblem(id as string);
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
