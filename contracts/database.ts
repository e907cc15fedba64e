/** Names the data plane shares with whatever reads a database session (tests, benchmarks, tools). */

/** The transaction-local setting that carries the tenant of the current unit of work. */
export const TENANT_SETTING = 'app.tenant_id';

/**
 * The tenant context is a credential, not a setting: beside the tenant, the unit of work carries the expiry and an
 * HMAC over tenant, backend pid and expiry (db/context.ts), which PostgreSQL verifies on every statement with a key
 * no runtime role can read. Setting the tenant alone, or SET ROLE, reaches nothing.
 */
export const TENANT_MAC_SETTING = 'app.tenant_mac';
export const TENANT_EXPIRY_SETTING = 'app.tenant_expiry';
