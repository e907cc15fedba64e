import { bootstrapDatabase } from '../../db/bootstrap';
import { migratePool, provisionBridgeTenant, registerPoolTenant } from '../../db/models';
import { endBackend } from '../../db/connection-care';
import { DEFAULT_RUNTIME_SLOTS, isSlotBusy, parseSlots, slotPool } from '../../db/slots';
import { createPool, resilientPoolConfig } from '../../service/src/db-pool';
import {
  createTestDatabase,
  RUNTIME_PASSWORD,
  sqlstateOf,
  TEST_CONTEXT_KEY,
  TestDatabase,
  urlFor,
} from './harness';

// One login role per connection in the shared cells (db/slots.ts, docs/threat-model.md I8): what the bootstrap
// makes, and how the API's pools keep two connections from ever sharing one. Roles are the cluster's: this suite
// makes slots 65-80 of app_pool, which no other suite's pools (64 slots) draw, and uses only those.
let poolDb: TestDatabase;
let bridgeDb: TestDatabase;

beforeAll(async () => {
  poolDb = await createTestDatabase('slots_pool');
  bridgeDb = await createTestDatabase('slots_bridge');
  const pm = await poolDb.master();
  await bootstrapDatabase(pm, 'pool', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { pool: RUNTIME_PASSWORD },
    runtimeSlots: 80,
  });
  await migratePool(pm);
  await registerPoolTenant(pm, 'acme', 'Acme');
  const bm = await bridgeDb.master();
  await bootstrapDatabase(bm, 'bridge', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { bridge: RUNTIME_PASSWORD },
  });
  await provisionBridgeTenant(bm, 'hooli');
});

afterAll(async () => {
  await poolDb?.drop();
  await bridgeDb?.drop();
});

const serverPort = () => Number(new URL(urlFor(poolDb.name, 'app_pool', RUNTIME_PASSWORD)).port);

describe('slot roles (one login role per connection, I8)', () => {
  test("the bootstrap makes each one a login role with a limit of two sessions, the runtime role's privileges and none of its tenants'", async () => {
    const master = await bridgeDb.master();
    const roles = await master.query(
      `SELECT count(*)::int AS n,
              bool_and(rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolcreaterole AND NOT rolcreatedb
                       AND rolinherit AND rolconnlimit = 2) AS attributes,
              bool_and(pg_has_role(oid, 'app_bridge', 'USAGE')) AS runtime_privileges,
              bool_or(pg_has_role(oid, 'tenant_owner', 'MEMBER')) AS owner_member
         FROM pg_roles WHERE rolname ~ '^app_bridge_s[0-9]+$'`,
    );
    expect(roles.rows[0]).toEqual({ n: 64, attributes: true, runtime_privileges: true, owner_member: false });
    // A tenant's role only by SET ROLE (B2), as for the runtime role itself.
    const slot = await bridgeDb.clientAs('app_bridge_s7');
    const r = await slot.query(
      `SELECT pg_has_role('t_hooli', 'USAGE') AS inherits, pg_has_role('t_hooli', 'SET') AS may_set`,
    );
    expect(r.rows[0]).toEqual({ inherits: false, may_set: true });
    expect(await sqlstateOf(slot.query('SELECT * FROM t_hooli.invoices'))).toBe('42501');
    await slot.end();
  });

  test('connections of one process, and of two, each sign in as a role of their own', async () => {
    const tasks = [poolDb.poolAs('app_pool', { max: 6 }), poolDb.poolAs('app_pool', { max: 6 })];
    const held = await Promise.all(tasks.flatMap((p) => Array.from({ length: 6 }, () => p.connect())));
    try {
      const who = await Promise.all(
        held.map(
          async (c) => (await c.query<{ who: string }>('SELECT session_user::text AS who')).rows[0].who,
        ),
      );
      expect(new Set(who).size).toBe(12);
      for (const w of who) expect(w).toMatch(/^app_pool_s([1-9]|[1-5][0-9]|6[0-4])$/);
    } finally {
      for (const c of held) c.release();
    }
  });

  test('a connection that finds its login role in use leaves it; when none is free the pool says what to change', async () => {
    const elsewhere = await poolDb.clientAs('app_pool_s80');
    const pool = poolDb.poolOnSlot('app_pool', 80);
    try {
      await expect(pool.query('SELECT 1')).rejects.toThrow(
        /^no free login role of app_pool after 12 tries \(80 slots, app_pool_s1 to app_pool_s80; last: login role app_pool_s80 is in use by another connection\): .*raise their number \(the cell sizes it, lib\/cell-size.ts runtimeSlotsFor: the bootstrap's RuntimeSlots and the API's DB_SLOTS\)/,
      );
      await elsewhere.end();
      const r = await pool.query<{ who: string }>('SELECT session_user::text AS who');
      expect(r.rows[0].who).toBe('app_pool_s80');
    } finally {
      await elsewhere.end().catch(() => undefined);
    }
  });

  test('the server admits two sessions of a slot role, never three', async () => {
    const first = await poolDb.clientAs('app_pool_s79');
    const second = await poolDb.clientAs('app_pool_s79');
    try {
      expect(await sqlstateOf(poolDb.clientAs('app_pool_s79'))).toBe('53300');
    } finally {
      await Promise.all([first.end(), second.end()]);
    }
  });

  test('a slot role someone made otherwise is refused by name, not used', async () => {
    const master = await poolDb.master();
    await master.query(`CREATE ROLE app_pool_s81 LOGIN PASSWORD 'x'`);
    try {
      await expect(
        bootstrapDatabase(master, 'pool', { contextKey: TEST_CONTEXT_KEY, runtimeSlots: 81 }),
      ).rejects.toThrow(
        'bootstrap: slot roles app_pool_s81 exist with other attributes than the bootstrap gives them (LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT 2): drop them',
      );
    } finally {
      await master.query('DROP ROLE app_pool_s81');
    }
    await expect(
      bootstrapDatabase(master, 'pool', { contextKey: TEST_CONTEXT_KEY, runtimeSlots: 0 }),
    ).rejects.toThrow('bootstrap: runtimeSlots is 0: use a whole number from 1 to 4096');
  });

  test('with a password function and no connection string (the API in AWS: an IAM token per login role), each connection and the end of a stuck backend sign in as their slot role', async () => {
    const asked: string[] = [];
    const pool = createPool(
      {
        host: '127.0.0.1',
        port: serverPort(),
        database: poolDb.name,
        user: 'app_pool',
        password: ((params: { user: string }) => (asked.push(params.user), RUNTIME_PASSWORD)) as () => string,
      },
      { max: 2, slots: DEFAULT_RUNTIME_SLOTS },
      () => undefined,
    );
    try {
      const stuck = await pool.connect();
      const who = (await stuck.query<{ who: string }>('SELECT session_user::text AS who')).rows[0].who;
      expect(asked).toEqual([who]);
      const { processID } = stuck as unknown as { processID: number };
      const sleeping = stuck.query('SELECT pg_sleep(30)').then(
        () => 'finished',
        (e: { code?: string }) => e.code,
      );
      await new Promise((r) => setTimeout(r, 1200));
      // The second seat of the same slot role (db/connection-care.ts), signed in with its own token.
      expect(await endBackend(pool, processID, who)).toBe(true);
      expect(await sleeping).toBe('57P01');
      expect(asked).toEqual([who, who]);
      stuck.release(true);
    } finally {
      await pool.end();
    }
  });

  test('a sign-in that fails on this side gives its slot back at once; only a slot role at its limit is tried again', async () => {
    let failures = 2;
    const pool = slotPool(
      {
        ...resilientPoolConfig(
          { host: '127.0.0.1', port: serverPort(), database: poolDb.name, user: 'app_pool' },
          { max: 1 },
        ),
        password: () => {
          if (failures-- > 0) throw new Error('no token today');
          return RUNTIME_PASSWORD;
        },
      },
      2,
      () => undefined,
    );
    try {
      await expect(pool.query('SELECT 1')).rejects.toThrow('no token today');
      await expect(pool.query('SELECT 1')).rejects.toThrow('no token today');
      // Both slots were taken and given back: a third sign-in finds one free in this process.
      const r = await pool.query<{ who: string }>('SELECT session_user::text AS who');
      expect(r.rows[0].who).toMatch(/^app_pool_s[12]$/);
    } finally {
      await pool.end();
    }
    const roleLimit = Object.assign(new Error('too many connections for role "app_pool_s3"'), {
      code: '53300',
    });
    const serverFull = Object.assign(new Error('sorry, too many clients already'), { code: '53300' });
    expect([isSlotBusy(roleLimit), isSlotBusy(serverFull)]).toEqual([true, false]);
  });

  test('a slot count from configuration is a whole number from 1 to 4096, or refused naming its source', () => {
    expect(parseSlots('336', 'DB_SLOTS')).toBe(336);
    expect(parseSlots(undefined, 'DB_SLOTS')).toBeUndefined();
    for (const bad of ['0', '1.5', 'many', '4097', '-3']) {
      expect(() => parseSlots(bad, 'the DB_SLOTS environment variable')).toThrow(
        `configuration: the DB_SLOTS environment variable is "${bad}": use a whole number of login roles from 1 to 4096`,
      );
    }
  });
});
