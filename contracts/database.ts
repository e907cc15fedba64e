/** Names the data plane shares with whatever reads a database session (tests, benchmarks, tools). */

/** The transaction-local setting that carries the tenant of the current unit of work. */
export const TENANT_SETTING = 'app.tenant_id';
