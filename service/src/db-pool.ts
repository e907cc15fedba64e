/**
 * The API's connection pool, configured to survive a failover, a restart or a hung database rather than hang
 * with it (the same settings in AWS and in the fault tests):
 *
 * - TCP keep-alive on every connection, so an idle socket to a primary that went away is noticed and dropped;
 * - a connect timeout: waiting for a free connection or a new one gives up, and the request gets 503;
 * - a read timeout per statement a little above the runtime role's statement_timeout (5 s, set by the
 *   bootstrap): the server cancels a slow statement itself; the client gives up only when the server does not
 *   answer at all (hung, or the socket half-open), and then destroys that connection (db/faults.ts);
 * - connections recycled by age, so an IAM token's 15 minutes and a failover's DNS change are picked up;
 * - pipelined: the statements of a unit of work are sent together (db/tenant-context.ts).
 */
import { Pool, PoolConfig } from 'pg';
import { RUNTIME_LIMITS_MS, RUNTIME_STARTUP_OPTIONS } from '../../db/roles';
import { parseSlots, slotPool } from '../../db/slots';

export interface PoolSettings {
  /** Connections in all, across the partitions. @default 20 */
  readonly max?: number;
  /**
   * Pools the connections are split into; each tenant is routed to one (TenantDatabase), so a backend serves a
   * share of the tenants and keeps their catalog entries warm. @default 1
   */
  readonly partitions?: number;
  /** @default 3000 */
  readonly connectTimeoutMs?: number;
  /** @default 7000 (statement_timeout 5 s + 2 s) */
  readonly queryTimeoutMs?: number;
  /** @default 600 */
  readonly maxLifetimeSeconds?: number;
  /** @default 10000 */
  readonly keepAliveInitialDelayMs?: number;
  /**
   * Sign every connection in as its own slot role of the configured runtime role (db/slots.ts): this many
   * exist (the bootstrap's `runtimeSlots`). The shared cells' pools (pool, bridge); not a silo's.
   * @default - every connection signs in as the configured user
   */
  readonly slots?: number;
}

/**
 * The settings, from the environment the stacks set (DB_POOL_SIZE, DB_POOL_PARTITIONS, DB_CONNECT_TIMEOUT_MS,
 * DB_QUERY_TIMEOUT_MS).
 */
export function poolSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): PoolSettings {
  const num = (name: string) => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) {
      throw new Error(`configuration: ${name} is ${JSON.stringify(v)}: use a positive whole number`);
    }
    return n;
  };
  return {
    max: num('DB_POOL_SIZE'),
    partitions: num('DB_POOL_PARTITIONS'),
    connectTimeoutMs: num('DB_CONNECT_TIMEOUT_MS'),
    queryTimeoutMs: num('DB_QUERY_TIMEOUT_MS'),
    slots: parseSlots(env.DB_SLOTS, 'the DB_SLOTS environment variable'),
  };
}

export function resilientPoolConfig(connection: PoolConfig, settings: PoolSettings = {}): PoolConfig {
  return {
    ...connection,
    max: settings.max ?? 20,
    connectionTimeoutMillis: settings.connectTimeoutMs ?? 3000,
    query_timeout: settings.queryTimeoutMs ?? 7000,
    keepAlive: true,
    keepAliveInitialDelayMillis: settings.keepAliveInitialDelayMs ?? 10000,
    maxLifetimeSeconds: settings.maxLifetimeSeconds ?? 600,
    idleTimeoutMillis: 30000,
    // Queries sent together go out together (a unit of work is one exchange anyway: db/unit-of-work.ts).
    pipeline: true,
    // In the startup packet, so they hold from the first statement whatever the role's defaults say (I5): an
    // injected ALTER ROLE ... SET role = <a tenant role> cannot make every new connection start as that tenant.
    options: [connection.options, RUNTIME_STARTUP_OPTIONS].filter(Boolean).join(' '),
    statement_timeout: RUNTIME_LIMITS_MS.statement,
    lock_timeout: RUNTIME_LIMITS_MS.lock,
    idle_in_transaction_session_timeout: RUNTIME_LIMITS_MS.idleInTransaction,
  } as PoolConfig;
}

/** A pool with those settings; an idle connection's error is logged (the pool drops the connection itself). */
export function createPool(
  connection: PoolConfig,
  settings: PoolSettings = {},
  log: (fields: Record<string, unknown>) => void = (f) => console.error(JSON.stringify(f)),
): Pool {
  const config = resilientPoolConfig(connection, settings);
  const pool = settings.slots ? slotPool(config, settings.slots, log) : new Pool(config);
  pool.on('error', (e) => log({ level: 'warn', msg: 'idle database connection dropped', err: e.message }));
  // A connection that fails while checked out (between two statements of a transaction, when the server shuts
  // down) emits 'error' on its client; unheard, that error would end the process. The statement in progress
  // still fails, and the connection is destroyed (db/faults.ts).
  pool.on('connect', (client) =>
    client.on('error', (e) =>
      log({ level: 'warn', msg: 'database connection failed while in use', err: e.message }),
    ),
  );
  return pool;
}

/** `settings.partitions` pools sharing `settings.max` connections (at least one each). */
export function createPools(
  connection: PoolConfig,
  settings: PoolSettings = {},
  log?: (fields: Record<string, unknown>) => void,
): Pool[] {
  const partitions = settings.partitions ?? 1;
  const each = Math.max(1, Math.floor((settings.max ?? 20) / partitions));
  return Array.from({ length: partitions }, () => createPool(connection, { ...settings, max: each }, log));
}
