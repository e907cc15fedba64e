/**
 * The tenant id rule: the one definition of what a tenant id may be. Every runtime checks ids against it
 * (the catalog, the onboarding pipeline, the provisioner, the API's token claim, the local tools), so an id that
 * one accepts can never be refused, or worse misread, by another.
 */

export type IsolationModel = 'silo' | 'pool' | 'bridge';
export const ISOLATION_MODELS: readonly IsolationModel[] = ['silo', 'pool', 'bridge'];

export const TENANT_ID_MIN_LENGTH = 3;
export const TENANT_ID_MAX_LENGTH = 30;
export const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{1,28}[a-z0-9]$/;
export const TENANT_ID_RULE =
  'use 3-30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen';

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

/**
 * Why a tenant id is refused by the id rule, or undefined when the rule accepts it. The data plane adds one check
 * of its own (derived PostgreSQL names fit PostgreSQL's identifier limit): use `tenantIdProblem` from db/naming.
 */
export function tenantIdRuleProblem(id: unknown): string | undefined {
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
  return undefined;
}
