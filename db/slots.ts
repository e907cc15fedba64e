/**
 * One login role per connection (I8). Every backend of a shared cell (pool, bridge) signs in as a slot role of
 * its runtime role (`app_pool_s17`), and no two open connections share one. PostgreSQL shows a backend's
 * statement only to its own role and lets only its own role cancel or end it, so SQL injected into one tenant's
 * unit of work can neither read the statements of the cell's other backends nor cancel or end them: with one
 * shared login role it could end every backend of the cell, every tenant's requests, in one statement.
 *
 * - The slot roles are made by the bootstrap (db/bootstrap.ts): LOGIN, members of the runtime role (whose
 *   privileges they inherit, and whose tenant roles they may SET, never inherit), the same defaults, and a
 *   connection limit of 2: one connection, and a second seat for the API's own end of a stuck backend
 *   (db/connection-care.ts endBackend) and for a moment's overlap while a colliding connection leaves.
 * - A process picks a slot it does not hold, at random; a new connection then counts its role's sessions and
 *   leaves (SlotBusy) if it is not alone, and the pool tries another slot. Whichever connection came second
 *   leaves, so no two connections keep one slot, across tasks as within one.
 * - Silo cells have one tenant and keep the one runtime login role.
 */
import { Client, ClientBase, Pool, PoolClient, PoolConfig } from 'pg';
import { repairRuntimeRoleSettings } from './runtime-role';

/** What the bootstrap makes when not told otherwise, and what a pool assumes. */
export const DEFAULT_RUNTIME_SLOTS = 64;
/** Sessions one slot role may hold: its connection and the API's second seat (see above). */
export const SLOT_CONNECTION_LIMIT = 2;
/** The most slots a runtime role may have. */
export const MAX_RUNTIME_SLOTS = 4096;

export function slotRole(role: string, n: number): string {
  return `${role}_s${n}`;
}

/** A slot count from configuration (RuntimeSlots, DB_SLOTS, RUNTIME_DB_SLOTS), refused with its source and the fix. */
export function parseSlots(value: string | undefined, source: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_RUNTIME_SLOTS) {
    throw new Error(
      `configuration: ${source} is ${JSON.stringify(value)}: use a whole number of login roles from 1 to ${MAX_RUNTIME_SLOTS}`,
    );
  }
  return n;
}

/** A new connection found its slot in use by another (the pool tries another slot). */
export class SlotBusy extends Error {
  readonly code = 'SLOT_BUSY';
  constructor(role: string) {
    super(`login role ${role} is in use by another connection`);
    this.name = 'SlotBusy';
  }
}

/** Slots this process holds, per runtime role. */
const held = new Map<string, Set<number>>();

type Choose = (free: readonly number[]) => number;
const atRandom: Choose = (free) => free[Math.floor(Math.random() * free.length)];

function takeSlot(role: string, slots: number, choose: Choose): number {
  let mine = held.get(role);
  if (!mine) held.set(role, (mine = new Set()));
  const free: number[] = [];
  for (let n = 1; n <= slots; n++) if (!mine.has(n)) free.push(n);
  if (free.length === 0) {
    throw new Error(
      `all ${slots} login roles of ${role} (${slotRole(role, 1)} to ${slotRole(role, slots)}) are in use by this process: ` +
        `make fewer connections (DB_POOL_SIZE) or more slot roles (lib/cell-size.ts runtimeSlotsFor: the bootstrap's RuntimeSlots and the API's DB_SLOTS)`,
    );
  }
  const n = choose(free);
  mine.add(n);
  return n;
}

/** The role a connection configuration signs in as (its `user`, or its connection string's). */
export function configuredUser(config: PoolConfig): string {
  const user = config.connectionString
    ? decodeURIComponent(new URL(config.connectionString).username)
    : config.user;
  if (!user) throw new Error('a pool with slot roles needs the runtime role as its user');
  return user;
}

/** `config` signing in as `user` (in its connection string, if it has one: that would win over `user`). */
export function asUser(config: PoolConfig, user: string): PoolConfig {
  // pg-pool keeps a pool's password as a property a spread does not copy (not enumerable): carried by name.
  const copy: PoolConfig = { ...config, password: config.password };
  if (!config.connectionString) return { ...copy, user };
  const url = new URL(config.connectionString);
  url.username = encodeURIComponent(user);
  return { ...copy, connectionString: url.toString() };
}

/**
 * A pg Client class whose every instance signs in as a free slot of `role` (at random; tests choose one), given
 * back when its connection ends.
 */
export function slotClientClass(role: string, slots: number, choose: Choose = atRandom): typeof Client {
  return class SlotClient extends Client {
    constructor(config: PoolConfig) {
      const n = takeSlot(role, slots, choose);
      super(asUser(config, slotRole(role, n)));
      // Once per client: a later 'end' of this one must not free the slot again once another client took it.
      let given = false;
      const free = () => {
        if (given) return;
        given = true;
        held.get(role)?.delete(n);
      };
      // 'end' comes when the connection closes; a connect that fails on this side (a password function that
      // threw) leaves the socket to the server's authentication timeout, so that closes it and frees the slot now.
      this.once('end', free);
      const connect = this.connect.bind(this) as (cb: (err?: Error) => void) => void;
      const failed = () => {
        free();
        (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
      };
      (this as unknown as { connect: unknown }).connect = (cb?: (err?: Error) => void) => {
        if (cb) {
          return connect((err) => {
            if (err) failed();
            cb(err);
          });
        }
        return new Promise<void>((resolve, reject) =>
          connect((err) => {
            if (err) {
              failed();
              reject(err);
            } else resolve();
          }),
        );
      };
    }
  };
}

/**
 * What every new connection of a slot pool runs before the pool hands it out: it leaves if another session holds
 * its slot (claimSlot); then its role's own defaults are put back (an injected ALTER ROLE CURRENT_USER SET reaches
 * only that slot role, I5) and, if any were not the bootstrap's, the session that started with them is ended
 * (SlotRepaired: the pool tries again, and the role's next session is clean). `log` hears the security event.
 */
export function onSlotConnect(
  log: (fields: Record<string, unknown>) => void,
): (client: ClientBase) => Promise<void> {
  return async (client) => {
    await claimSlot(client);
    const removed = await repairRuntimeRoleSettings(client);
    if (removed.length > 0) {
      const role = (client as unknown as { user?: string }).user ?? 'unknown';
      log({
        level: 'error',
        msg: 'security: the runtime role had settings nobody provisioned; removed them',
        role,
        removed,
      });
      throw new SlotRepaired(role, removed);
    }
  };
}

/** Run on every new connection before the pool hands it out: it leaves if another session holds its slot. */
export async function claimSlot(client: ClientBase): Promise<void> {
  const r = await client.query<{ sessions: number; role: string }>(
    `SELECT count(*)::int AS sessions, session_user::text AS role
       FROM pg_catalog.pg_stat_activity WHERE usename = session_user`,
  );
  if (r.rows[0].sessions > 1) throw new SlotBusy(r.rows[0].role);
}

/**
 * A new connection whose login role had settings nobody provisioned: they are removed (the role's next session
 * starts clean), but this session started with them, and RESET ALL (enter()) returns to them, so it is ended.
 */
export class SlotRepaired extends Error {
  readonly code = 'SLOT_REPAIRED';
  constructor(role: string, removed: readonly string[]) {
    super(
      `login role ${role} had settings nobody provisioned (${removed.join(', ')}): removed, and its session ended`,
    );
    this.name = 'SlotRepaired';
  }
}

/**
 * A refusal another slot (or the same one, again) may not get: its slot in use, its settings just repaired, or the
 * slot role's connection limit reached (53300 "too many connections for role"; not the server's own limit).
 */
export function isSlotBusy(e: unknown): boolean {
  const { code, message } = (e ?? {}) as { code?: unknown; message?: unknown };
  return (
    e instanceof SlotBusy ||
    e instanceof SlotRepaired ||
    code === 'SLOT_BUSY' ||
    code === 'SLOT_REPAIRED' ||
    (code === '53300' && /too many connections for role/.test(String(message)))
  );
}

/**
 * The pool's connect (and so its query) tries another slot when one is busy, up to `attempts` times, then fails
 * with the reason and the fix.
 */
export function retryBusySlots(pool: Pool, role: string, slots: number, attempts = 12): Pool {
  const connect = pool.connect.bind(pool) as () => Promise<PoolClient>;
  const retrying = async (): Promise<PoolClient> => {
    // A repaired slot is progress (its next session is clean): it costs a try only past `slots` of them.
    let repaired = 0;
    for (let i = 1; ; i++) {
      try {
        return await connect();
      } catch (e) {
        if (!isSlotBusy(e)) throw e;
        if (e instanceof SlotRepaired && repaired++ < slots) i--;
        if (i >= attempts) {
          // too_many_connections: the server cannot serve now (503 with Retry-After, db/faults.ts).
          throw Object.assign(
            new Error(
              `no free login role of ${role} after ${attempts} tries (${slots} slots, ${slotRole(role, 1)} to ${slotRole(role, slots)}; last: ${(e as Error).message}): ` +
                `more connections are open than the cell has slot roles: raise their number (the cell sizes it, lib/cell-size.ts runtimeSlotsFor: the bootstrap's RuntimeSlots and the API's DB_SLOTS), or lower DB_POOL_SIZE`,
              { cause: e },
            ),
            { code: '53300' },
          );
        }
        // A moment before the next try (jittered): two tasks that drew the same slot do not draw together again.
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
      }
    }
  };
  type Callback = (
    err: Error | undefined,
    client?: PoolClient,
    done?: (release?: Error | boolean) => void,
  ) => void;
  (pool as unknown as { connect: (cb?: Callback) => Promise<PoolClient> | undefined }).connect = (
    cb?: Callback,
  ) => {
    const p = retrying();
    if (!cb) return p;
    p.then(
      (client) => cb(undefined, client, client.release),
      (err: Error) => cb(err, undefined, () => undefined),
    );
    return undefined;
  };
  return pool;
}

/**
 * A pool whose every connection signs in as its own slot role of `config`'s user, the runtime role (the three
 * parts above together: the slot client, the check on connect, the retries). `choose` picks the slot (tests).
 */
export function slotPool(
  config: PoolConfig,
  slots: number,
  log: (fields: Record<string, unknown>) => void,
  choose?: Choose,
): Pool {
  const role = configuredUser(config);
  const pool = new Pool({
    ...config,
    password: config.password,
    Client: slotClientClass(role, slots, choose),
    onConnect: onSlotConnect(log),
  } as PoolConfig);
  return retryBusySlots(pool, role, slots);
}
