import * as fs from 'fs';
import { randomBytes } from 'crypto';
import { Client, ClientBase, Pool, PoolConfig } from 'pg';
import { ContextKey } from '../../db/context';
import { resilientPoolConfig } from '../../service/src/db-pool';
import { RUNTIME_ROLES } from '../../db/roles';
import { DEFAULT_RUNTIME_SLOTS, slotPool } from '../../db/slots';

/** The runtime roles whose connections sign in as slot roles (db/slots.ts): the shared cells'. */
const SLOTTED: string[] = [RUNTIME_ROLES.pool, RUNTIME_ROLES.bridge];
import { escapeIdentifier, escapeLiteral } from 'pg';

/**
 * Test databases on the run's real PostgreSQL server. Provisioning runs as `rds_master`, a role shaped like
 * the RDS master user (LOGIN CREATEROLE CREATEDB, not a superuser), which owns each test database; queries
 * run as the runtime login roles. The superuser is used only to create rds_master and the databases.
 */
export const MASTER_ROLE = 'rds_master';
export const MASTER_PASSWORD = 'master-password';
export const RUNTIME_PASSWORD = 'runtime-password';
/** The tenant context key every test database is bootstrapped with (db/context.ts). */
export const TEST_CONTEXT_KEY = ContextKey.fromHex('5e'.repeat(32), 'test harness');

/**
 * Sets a valid credential for `tenant` in the current transaction of a raw client, as the API would (a raw
 * connection with the key: what the isolation tests use to act as a tenant outside TenantDatabase).
 */
export async function enterAs(client: ClientBase, tenant: string): Promise<void> {
  for (const [name, value] of TEST_CONTEXT_KEY.credential(
    tenant,
    (client as unknown as { processID: number }).processID,
  )) {
    await client.query('SELECT set_config($1, $2, true)', [name, value]);
  }
}

/** The superuser's password on the embedded server (scripts/pg-server.mjs), or the one in DATABASE_URL. */
export function superuserPassword(): string {
  return decodeURIComponent(serverUrl().password);
}

export function serverUrl(): URL {
  const url = process.env.TEST_DATABASE_URL;
  if (!url)
    throw new Error('TEST_DATABASE_URL is not set: run the tests through jest (test/global-setup.cjs)');
  return new URL(url);
}

export function urlFor(database: string, user: string, password: string): string {
  const u = serverUrl();
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  u.pathname = `/${database}`;
  return u.toString();
}

async function superClient(): Promise<Client> {
  const c = quiet(new Client({ connectionString: serverUrl().toString() }));
  await c.connect();
  return c;
}

/**
 * Gives a runtime role and its slot roles (db/slots.ts) the tests' password, as the local platform's bootstrap
 * does: the provisioner's bootstrap (as in AWS, where they sign in with IAM tokens) gives them none.
 */
export async function setRuntimePassword(master: ClientBase, role: string): Promise<void> {
  await master.query(
    `DO $$ DECLARE r text; BEGIN
       FOR r IN SELECT rolname FROM pg_roles WHERE rolname ~ ('^' || ${escapeLiteral(role)} || '(_s[0-9]+)?$') LOOP
         EXECUTE format('ALTER ROLE %I PASSWORD %L', r, ${escapeLiteral(RUNTIME_PASSWORD)});
       END LOOP;
     END $$`,
  );
}

export interface TestDatabase {
  readonly name: string;
  /** The server's superuser, connected to this database: only for setting up hostile roles in tests. */
  superuser(): Promise<Client>;
  /** A connected client as rds_master: what the provisioner uses. */
  master(): Promise<Client>;
  /** A pool as a login role (the runtime roles use RUNTIME_PASSWORD). */
  poolAs(user: string, config?: PoolConfig, password?: string): Pool;
  clientAs(user: string, password?: string): Promise<Client>;
  /**
   * A pool of one connection as the API makes it for a shared cell's runtime role `user`, signing in as its slot
   * role `slot` (db/slots.ts), not one at random; `log` hears its security events.
   */
  poolOnSlot(user: string, slot: number, log?: (fields: Record<string, unknown>) => void): Pool;
  /** Drops the database (and closes what this harness opened). */
  drop(): Promise<void>;
}

/** Connections dropped by the server (DROP DATABASE ... WITH (FORCE), shutdown) must not crash the run. */
function quiet<T extends { on(event: 'error', fn: () => void): unknown }>(x: T): T {
  x.on('error', () => undefined);
  return x;
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `test_${label.replace(/[^a-z0-9]/g, '_')}_${randomBytes(3).toString('hex')}`;
  const su = await superClient();
  try {
    await su
      .query(
        `DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${escapeLiteral(MASTER_ROLE)}) THEN
        CREATE ROLE ${escapeIdentifier(MASTER_ROLE)} LOGIN CREATEROLE CREATEDB PASSWORD ${escapeLiteral(MASTER_PASSWORD)};
      END IF;
    END $$`,
      )
      .catch((e) => {
        if (e.code !== '23505' && e.code !== '42710') throw e;
      });
    await su.query(`CREATE DATABASE ${escapeIdentifier(name)} OWNER ${escapeIdentifier(MASTER_ROLE)}`);
  } finally {
    await su.end();
  }
  const opened: { end(): Promise<void> }[] = [];
  const track = <T extends { end(): Promise<void>; on(event: 'error', fn: () => void): unknown }>(x: T) => {
    opened.push(quiet(x));
    return x;
  };
  return {
    name,
    async superuser() {
      const u = serverUrl();
      u.pathname = `/${name}`;
      const c = track(new Client({ connectionString: u.toString() }));
      await c.connect();
      return c;
    },
    async master() {
      const c = track(new Client({ connectionString: urlFor(name, MASTER_ROLE, MASTER_PASSWORD) }));
      await c.connect();
      return c;
    },
    poolAs(user, config = {}, password = RUNTIME_PASSWORD) {
      // The API's own pool settings (pipelined, the startup limits, the timeouts, and a shared cell's one login
      // role per connection), as tests act as the API.
      const settings = {
        ...resilientPoolConfig({ connectionString: urlFor(name, user, password) }, { max: 4 }),
        ...config,
      };
      return track(
        SLOTTED.includes(user)
          ? slotPool(settings, DEFAULT_RUNTIME_SLOTS, () => undefined)
          : new Pool(settings),
      );
    },
    poolOnSlot(user, slot, log = () => undefined) {
      const config = resilientPoolConfig(
        { connectionString: urlFor(name, user, RUNTIME_PASSWORD) },
        { max: 1 },
      );
      const choose = (free: readonly number[]) => {
        if (!free.includes(slot)) throw new Error(`slot ${slot} of ${user} is held by this test process`);
        return slot;
      };
      return track(slotPool(config, Math.max(DEFAULT_RUNTIME_SLOTS, slot), log, choose));
    },
    async clientAs(user, password = RUNTIME_PASSWORD) {
      const c = track(new Client({ connectionString: urlFor(name, user, password) }));
      await c.connect();
      return c;
    },
    async drop() {
      await Promise.all(opened.splice(0).map((x) => x.end().catch(() => undefined)));
      const s = await superClient();
      try {
        await s.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await s.end();
      }
    },
  };
}

export interface LeakOutcome {
  /** True when the attempt saw or changed another tenant's data (or gained a privilege it must not have). */
  readonly leaked: boolean;
  /** What was observed, for the report. */
  readonly detail: string;
}

/**
 * Records one leak attempt in the run's ledger (summarised after the run: `isolation: N attempts, M leaks`)
 * and returns its outcome for the test to assert on.
 */
export async function tryLeak(
  id: string,
  what: string,
  attempt: () => Promise<LeakOutcome>,
): Promise<LeakOutcome> {
  let outcome: LeakOutcome;
  try {
    outcome = await attempt();
  } catch (e) {
    outcome = { leaked: true, detail: `the attempt itself failed unexpectedly: ${(e as Error).message}` };
  }
  const ledger = process.env.ISOLATION_LEDGER;
  if (ledger) fs.appendFileSync(ledger, JSON.stringify({ id, what, ...outcome }) + '\n');
  return outcome;
}

/** Runs `query` expecting PostgreSQL to refuse it; returns the SQLSTATE, or undefined if it succeeded. */
export async function sqlstateOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (!code) throw e;
    return code;
  }
}
