import type { IsolationModel } from './naming';

/**
 * Database roles. The owner owns every tenant object and runs migrations; it cannot log in. The runtime login
 * roles are what the API connects as: not superuser, not BYPASSRLS, not owners, never granted TRUNCATE or
 * REFERENCES. The RDS master user only provisions.
 */
export const OWNER_ROLE = 'tenant_owner';

export const RUNTIME_ROLES: Readonly<Record<IsolationModel, string>> = {
  pool: 'app_pool',
  bridge: 'app_bridge',
  silo: 'app_silo',
};

/**
 * The database users a model's runtime principals (its API, its mobility runner) sign in as, as IAM names them
 * (rds-db:connect): a shared cell's slot roles (one login role per connection, db/slots.ts), a silo's runtime role.
 */
export function runtimeLogins(model: IsolationModel): string {
  return model === 'silo' ? RUNTIME_ROLES.silo : `${RUNTIME_ROLES[model]}_s*`;
}

/** Schema of the pool model's shared tables. */
export const POOL_SCHEMA = 'pool';
/** Schema of the application tables in a silo database. */
export const SILO_SCHEMA = 'app';
/** Schema of the provisioner's own bookkeeping (targets, versions); no runtime role can read it. */
export const ADMIN_SCHEMA = 'tenancy';

/** The runtime DML privileges. Deliberately not ALL: ALL includes TRUNCATE, which ignores RLS (P8). */
export const RUNTIME_TABLE_PRIVILEGES = 'SELECT, INSERT, UPDATE, DELETE';

/**
 * Session limits of every runtime login role: set as the role's defaults (ALTER ROLE ... SET), sent again by the
 * API in each connection's startup packet (which overrides role defaults: an injected ALTER ROLE CURRENT_USER SET
 * cannot reach them, I5), and set once more by enter() in every unit of work.
 */
export const RUNTIME_LIMITS_MS = { statement: 5000, idleInTransaction: 10000, lock: 2000 } as const;
export const RUNTIME_STATEMENT_TIMEOUT = `${RUNTIME_LIMITS_MS.statement / 1000}s`;
export const RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT = `${RUNTIME_LIMITS_MS.idleInTransaction / 1000}s`;
export const RUNTIME_LOCK_TIMEOUT = `${RUNTIME_LIMITS_MS.lock / 1000}s`;

/**
 * Settings every runtime connection sends in its startup packet (libpq `options`), which override the role's
 * defaults: an injected `ALTER ROLE CURRENT_USER SET ...` of one of these would otherwise reach every new
 * connection before enter() runs (the implicit transaction of a unit starts with them): starting as a tenant's
 * role, every transaction read-only or serializable, or Row-Level Security refusing every query (I5).
 */
export const RUNTIME_STARTUP_OPTIONS = [
  '-c role=none',
  '-c default_transaction_read_only=off',
  '-c default_transaction_isolation=read\\ committed',
  '-c row_security=on',
  // Role defaults that would end or refuse the session before anything can repair them (I5, I8): a library that
  // does not exist fails every sign-in of the role; timeouts of a session or a transaction end it. (The last
  // needs PostgreSQL 17 or later, as every cell runs.)
  '-c local_preload_libraries=',
  '-c idle_session_timeout=0',
  '-c transaction_timeout=0',
].join(' ');
