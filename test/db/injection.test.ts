import { Pool } from 'pg';
import { bootstrapDatabase } from '../../db/bootstrap';
import { migratePool, offboardPoolTenant, provisionBridgeTenant, registerPoolTenant } from '../../db/models';
import { raw, sql } from '../../db/sql';
import { TenantDatabase, TenantScope } from '../../db/tenant-context';
import {
  createTestDatabase,
  RUNTIME_PASSWORD,
  sqlstateOf,
  TEST_CONTEXT_KEY,
  TestDatabase,
  tryLeak,
} from './harness';

// The attacker has SQL injection: arbitrary SQL inside tenant A's own transaction, as the runtime login role,
// through the API's own TenantDatabase (docs/threat-model.md I1-I8). Each test runs one vector and asserts that
// it reaches no other tenant's data, and leaves nothing behind for the next tenant's work.
let poolDb: TestDatabase;
let bridgeDb: TestDatabase;
let pooled: TenantDatabase; // one connection: the next unit of work reuses what A's injection touched
let bridged: TenantDatabase;
let pooledOther: TenantDatabase; // another connection, for what runs at the same time
let poolRaw: Pool;

/** Runs `attack` (arbitrary SQL) inside `tenant`'s transaction; returns its rows, or the SQLSTATE it failed with. */
async function inject(
  scope: TenantScope,
  attack: string,
): Promise<{ rows: Record<string, unknown>[]; sqlstate?: string }> {
  try {
    const r = await scope.transaction((tx) => tx.query(raw(attack)));
    // Several statements answer with one result each: the last one's rows.
    const last = Array.isArray(r) ? (r as (typeof r)[]).at(-1)! : r;
    return { rows: last.rows };
  } catch (e) {
    return { rows: [], sqlstate: (e as { code?: string }).code ?? (e as Error).message };
  }
}

beforeAll(async () => {
  poolDb = await createTestDatabase('inject_pool');
  bridgeDb = await createTestDatabase('inject_bridge');
  const pm = await poolDb.master();
  await bootstrapDatabase(pm, 'pool', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { pool: RUNTIME_PASSWORD },
  });
  await migratePool(pm);
  for (const id of ['acme', 'globex', 'gone']) await registerPoolTenant(pm, id, id);
  const bm = await bridgeDb.master();
  await bootstrapDatabase(bm, 'bridge', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { bridge: RUNTIME_PASSWORD },
  });
  for (const id of ['umbrella', 'hooli']) await provisionBridgeTenant(bm, id);
  poolRaw = poolDb.poolAs('app_pool', { max: 1 });
  pooled = new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: poolRaw, model: 'pool' });
  pooledOther = new TenantDatabase({
    contextKey: TEST_CONTEXT_KEY,
    pool: poolDb.poolAs('app_pool', { max: 2 }),
    model: 'pool',
  });
  bridged = new TenantDatabase({
    contextKey: TEST_CONTEXT_KEY,
    pool: bridgeDb.poolAs('app_bridge', { max: 1 }),
    model: 'bridge',
  });
  for (const id of ['acme', 'globex', 'gone']) {
    await pooled.forTenant(id).run(sql`INSERT INTO pool.invoices (customer) VALUES (${`${id} secret`})`);
  }
  await offboardPoolTenant(pm, 'gone', 'retain');
  for (const id of ['umbrella', 'hooli']) {
    await bridged.forTenant(id).run(sql`INSERT INTO invoices (customer) VALUES (${`${id} secret`})`);
  }
  await pm.query('ANALYZE');
});

afterAll(async () => {
  await poolDb.drop();
  await bridgeDb.drop();
});

describe('under SQL injection (docs/threat-model.md I1-I8), inside tenant A transaction as the runtime role', () => {
  test('I1: pool: setting another tenant (active, or offboarded and retained) in the session reads and writes nothing of it', async () => {
    const attempts = [
      "SELECT set_config('app.tenant_id', 'globex', true); SELECT customer FROM pool.invoices",
      "SET LOCAL app.tenant_id = 'globex'; SELECT customer FROM pool.invoices",
      "SET LOCAL app.tenant_id = 'gone'; SELECT customer FROM pool.invoices",
      "SET LOCAL app.tenant_id = 'globex'; INSERT INTO pool.invoices (customer) VALUES ('planted') RETURNING customer",
      // A's own MAC with B's id: the MAC covers the tenant.
      "SELECT set_config('app.tenant_id', 'globex', true), current_setting('app.tenant_mac'); SELECT customer FROM pool.invoices",
      "SET LOCAL app.tenant_mac = 'ffff'; SET LOCAL app.tenant_id = 'globex'; DELETE FROM pool.invoices RETURNING customer",
    ];
    for (const attack of attempts) {
      const outcome = await tryLeak('I1', attack, async () => {
        const r = await inject(pooled.forTenant('acme'), attack);
        const leaked = r.rows.some((row) => String(Object.values(row).pop()).match(/globex|gone|planted/));
        return { leaked, detail: r.sqlstate ?? `${r.rows.length} rows` };
      });
      expect({ attack, outcome }).toEqual({ attack, outcome: { leaked: false, detail: '42501' } });
    }
    // Nothing was written into globex, nothing deleted there.
    const globex = await pooled.forTenant('globex').run(sql`SELECT customer FROM pool.invoices`);
    expect(globex.rows).toEqual([{ customer: 'globex secret' }]);
  });

  test("I2: bridge: SET ROLE to another tenant's role reaches none of its rows", async () => {
    const attempts = [
      'SET LOCAL ROLE t_hooli; SELECT customer FROM t_hooli.invoices',
      "SET LOCAL ROLE t_hooli; SET LOCAL app.tenant_id = 'hooli'; SELECT customer FROM t_hooli.invoices",
      "SET LOCAL ROLE t_hooli; INSERT INTO t_hooli.invoices (customer) VALUES ('planted') RETURNING customer",
      'SET LOCAL ROLE t_hooli; UPDATE t_hooli.invoices SET customer = customer RETURNING customer',
    ];
    for (const attack of attempts) {
      const outcome = await tryLeak('I2', attack, async () => {
        const r = await inject(bridged.forTenant('umbrella'), attack);
        return {
          leaked: r.rows.length > 0,
          detail: r.sqlstate ?? `${r.rows.length} rows`,
        };
      });
      expect(outcome.leaked).toBe(false);
    }
    const hooli = await bridged.forTenant('hooli').run(sql`SELECT customer FROM invoices`);
    expect(hooli.rows).toEqual([{ customer: 'hooli secret' }]);
    // Every table of a tenant's schema has the policy, forced (a migration adding a table without one fails here).
    const master = await bridgeDb.master();
    const tables = await master.query(
      `SELECT c.relname, c.relforcerowsecurity AS forced,
              EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'verified_tenant') AS policy
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 't_hooli' AND c.relkind IN ('r', 'p') ORDER BY 1`,
    );
    expect(tables.rows).toEqual([
      { relname: 'invoice_items', forced: true, policy: true },
      { relname: 'invoices', forced: true, policy: true },
    ]);
  });

  test("I3: other tenants' values appear in no activity view (they travel as bind parameters, in statements other backends cannot see, I8)", async () => {
    const value = 'globex-confidential-4471';
    const running = pooledOther
      .forTenant('globex')
      .run(sql`SELECT pg_sleep(0.6), count(*) FROM pool.invoices WHERE customer = ${value}`);
    await new Promise((r) => setTimeout(r, 200));
    const outcome = await tryLeak('I3', 'read pg_stat_activity while globex runs a statement', async () => {
      const r = await inject(
        pooled.forTenant('acme'),
        "SELECT string_agg(coalesce(query, ''), ' | ') AS q FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
      );
      const seen = String(r.rows[0]?.q ?? '');
      const texts = seen.split(' | ').filter((q) => q !== '');
      return {
        leaked: seen.includes(value) || seen.includes('globex'),
        detail: texts.every((q) => q === '<insufficient privilege>')
          ? 'hidden'
          : seen.includes('$1')
            ? 'placeholders only'
            : `saw: ${seen.slice(0, 80)}`,
      };
    });
    await running;
    expect(outcome).toEqual({ leaked: false, detail: 'hidden' });
  });

  test('I4: whatever the injection leaves in the session is gone before the next tenant works on that connection', async () => {
    const left = await inject(
      pooled.forTenant('acme'),
      `SET client_encoding = 'LATIN1'; SET default_transaction_read_only = on; SET statement_timeout = '1ms';
       SET search_path = pg_catalog; SET ROLE NONE; PREPARE stolen AS SELECT 1; LISTEN leak;
       SELECT pg_advisory_lock(4242); DECLARE held CURSOR WITH HOLD FOR SELECT 1;
       SELECT set_config('app.tenant_id', 'globex', false)`,
    );
    expect(left.sqlstate).toBeUndefined();
    const outcome = await tryLeak('I4', 'corrupt the next tenant through session state', async () => {
      const text = 'Zoë ✓ naïve façade';
      const written = await pooled
        .forTenant('globex')
        .run<{ customer: string }>(
          sql`INSERT INTO pool.invoices (customer) VALUES (${text}) RETURNING customer`,
        );
      const state = await pooled.forTenant('globex').run<Record<string, string>>(
        sql`SELECT current_setting('client_encoding') AS encoding,
                   current_setting('transaction_read_only') AS read_only,
                   current_setting('statement_timeout') AS timeout,
                   (SELECT count(*) FROM pg_prepared_statements WHERE from_sql)::text AS prepared,
                   (SELECT count(*) FROM pg_cursors WHERE name <> '')::text AS cursors,
                   (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::text AS locks,
                   (SELECT count(*) FROM pg_listening_channels())::text AS listening`,
      );
      const clean =
        written.rows[0].customer === text &&
        JSON.stringify(state.rows[0]) ===
          JSON.stringify({
            encoding: 'UTF8',
            read_only: 'off',
            timeout: '5s',
            prepared: '0',
            cursors: '0',
            locks: '0',
            listening: '0',
          });
      return {
        leaked: !clean,
        detail: JSON.stringify({ stored: written.rows[0].customer, ...state.rows[0] }),
      };
    });
    expect(outcome.leaked).toBe(false);
    await pooled.forTenant('globex').run(sql`DELETE FROM pool.invoices WHERE customer LIKE 'Zo%'`);
  });

  test("I4: the API's own prepared statements cannot be replaced, and a transaction left open goes with its connection", async () => {
    const read = () =>
      pooled
        .forTenant('globex')
        .run<{ customer: string }>(sql`SELECT customer FROM pool.invoices ORDER BY customer`);
    expect((await read()).rows).toEqual([{ customer: 'globex secret' }]);
    // The attacker finds the protocol-level statement globex's read uses on this connection and swaps it for one
    // that keeps whatever it is given (the next tenant's values) in a session setting.
    const found = await inject(
      pooled.forTenant('acme'),
      `SELECT name FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE 'SELECT customer FROM pool.invoices ORDER BY%'`,
    );
    const name = String(found.rows[0]?.name);
    expect(name).toMatch(/^tf_/);
    const swapped = await inject(
      pooled.forTenant('acme'),
      `DEALLOCATE ${name}; PREPARE ${name} AS SELECT set_config('app.stolen', current_setting('app.tenant_mac', true), false) AS customer`,
    );
    expect(swapped.sqlstate).toBeUndefined();
    const outcome = await tryLeak(
      'I4',
      "replace the API's prepared statement for the next tenant",
      async () => {
        const r = await read();
        const after = await inject(
          pooled.forTenant('acme'),
          `SELECT current_setting('app.stolen', true) AS stolen,
                (SELECT bool_and(NOT from_sql) FROM pg_prepared_statements) AS ours`,
        );
        return {
          leaked:
            JSON.stringify(r.rows) !== JSON.stringify([{ customer: 'globex secret' }]) ||
            Boolean(after.rows[0]?.stolen) ||
            after.rows[0]?.ours === false,
          detail: JSON.stringify({ read: r.rows, ...after.rows[0] }),
        };
      },
    );
    expect(outcome.leaked).toBe(false);

    // A statement that opens a transaction block: the Sync does not end it, so the connection must not go back.
    const pid = () => pooled.forTenant('globex').run<{ pid: number }>(sql`SELECT pg_backend_pid() AS pid`);
    const before = (await pid()).rows[0].pid;
    await expect(pooled.forTenant('acme').run(raw('BEGIN'))).rejects.toThrow(/left a transaction open/);
    expect((await pid()).rows[0].pid).not.toBe(before);
  });

  test("I4: no statement a unit of work sends can be swapped for one that keeps the next tenant's credential", async () => {
    const read = () =>
      pooled
        .forTenant('globex')
        .run<{ customer: string }>(sql`SELECT customer FROM pool.invoices ORDER BY customer`);
    await read();
    // Every protocol-level statement on the connection replaced by one with the same parameters that keeps them
    // (the credential enter() is given, if enter() were one of them) in a session setting.
    const swapped = await inject(
      pooled.forTenant('acme'),
      `DO $$ DECLARE r record; BEGIN
         FOR r IN SELECT name, parameter_types::text[] AS types FROM pg_prepared_statements WHERE NOT from_sql LOOP
           EXECUTE format('DEALLOCATE %I', r.name);
           EXECUTE format('PREPARE %I%s AS SELECT set_config(''app.stolen'', concat_ws(''|'', ''kept''%s), false) AS customer',
             r.name,
             CASE WHEN cardinality(r.types) > 0 THEN '(' || array_to_string(r.types, ',') || ')' ELSE '' END,
             (SELECT coalesce(string_agg(format(', $%s::text', i), ''), '') FROM generate_series(1, cardinality(r.types)) i));
         END LOOP;
       END $$;
       SELECT count(*)::int AS swapped FROM pg_prepared_statements WHERE from_sql`,
    );
    expect(swapped.sqlstate).toBeUndefined();
    expect(Number(swapped.rows[0]?.swapped)).toBeGreaterThan(0);
    const outcome = await tryLeak(
      'I4',
      "swap every prepared statement to keep the next tenant's credential",
      async () => {
        const r = await read();
        const after = await inject(
          pooled.forTenant('acme'),
          `SELECT current_setting('app.stolen', true) AS stolen`,
        );
        const stolen = String(after.rows[0]?.stolen ?? '');
        return {
          leaked:
            JSON.stringify(r.rows) !== JSON.stringify([{ customer: 'globex secret' }]) ||
            stolen.includes('globex'),
          detail: JSON.stringify({ read: r.rows, stolen }),
        };
      },
    );
    expect(outcome.leaked).toBe(false);
  });

  test("I5: changing the runtime role's own defaults reaches only its slot role, and that slot's next connection puts them back", async () => {
    // The attacker's connection, a slot role of app_pool (db/slots.ts).
    const attacked = poolDb.poolAs('app_pool', { max: 1 });
    const changed = await inject(
      new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: attacked, model: 'pool' }).forTenant('acme'),
      `ALTER ROLE CURRENT_USER SET statement_timeout = '1ms'; ALTER ROLE CURRENT_USER SET search_path = pg_catalog;
       ALTER ROLE CURRENT_USER SET DateStyle = 'SQL, DMY'; ALTER ROLE CURRENT_USER SET local_preload_libraries = 'nope';
       ALTER ROLE CURRENT_USER SET idle_session_timeout = '1ms'; ALTER ROLE CURRENT_USER SET transaction_timeout = '1ms';
       SELECT session_user::text AS slot`,
    );
    expect(changed.sqlstate).toBeUndefined();
    const slot = String(changed.rows[0].slot);
    expect(slot).toMatch(/^app_pool_s[0-9]+$/);
    await attacked.end();
    const master = await poolDb.master();
    const settingsOf = async (role: string) =>
      (
        await master.query<{ setting: string }>(
          `SELECT unnest(setconfig) AS setting FROM pg_db_role_setting WHERE setrole = $1::regrole`,
          [role],
        )
      ).rows
        .map((r) => r.setting)
        .sort();
    const provisioned = [
      'idle_in_transaction_session_timeout=10s',
      'lock_timeout=2s',
      'statement_timeout=5s',
    ];
    try {
      expect(await settingsOf(slot)).toEqual([
        'DateStyle=SQL, DMY',
        'idle_in_transaction_session_timeout=10s',
        'idle_session_timeout=1ms',
        'local_preload_libraries=nope',
        'lock_timeout=2s',
        'search_path=pg_catalog',
        'statement_timeout=1ms',
        'transaction_timeout=1ms',
      ]);
      // The attack is real: a sign-in without the API's startup packet fails (the library does not exist).
      expect(await sqlstateOf(poolDb.clientAs(slot))).toBe('58P01');
      const events: Record<string, unknown>[] = [];
      const outcome = await tryLeak(
        'I5',
        'ALTER ROLE CURRENT_USER SET ... for every new connection of its login role',
        async () => {
          // The next connection that signs in as that slot role: the API's pool puts its defaults back first.
          const fresh = new TenantDatabase({
            contextKey: TEST_CONTEXT_KEY,
            pool: poolDb.poolOnSlot('app_pool', Number(slot.slice('app_pool_s'.length)), (f) =>
              events.push(f),
            ),
            model: 'pool',
          });
          const r = await fresh
            .forTenant('globex')
            .run<{ n: number; timeout: string; who: string }>(
              sql`SELECT count(*)::int AS n, current_setting('statement_timeout') || ' ' || current_setting('DateStyle') AS timeout, session_user::text AS who FROM invoices`,
            );
          const drift = await fresh.assertSafeRuntimeRole().then(
            () => undefined,
            (e: Error) => e.message,
          );
          return {
            leaked:
              r.rows[0].timeout !== '5s ISO, MDY' ||
              r.rows[0].n !== 1 ||
              r.rows[0].who !== slot ||
              drift !== undefined,
            detail: `timeout ${r.rows[0].timeout}; drift: ${drift ?? 'none'}; n=${r.rows[0].n}`,
          };
        },
      );
      expect(outcome).toEqual({ leaked: false, detail: 'timeout 5s ISO, MDY; drift: none; n=1' });
      // Put back as the connection opened, and said, as the security event it is.
      expect(await settingsOf(slot)).toEqual(provisioned);
      expect(events).toEqual([
        {
          level: 'error',
          msg: 'security: the runtime role had settings nobody provisioned; removed them',
          role: slot,
          removed: [
            'statement_timeout=1ms',
            'search_path=pg_catalog',
            'DateStyle=SQL, DMY',
            'local_preload_libraries=nope',
            'idle_session_timeout=1ms',
            'transaction_timeout=1ms',
          ],
        },
      ]);
      // The session that started with them was ended (RESET ALL would have gone back to them), not handed out.
      // No other login role had them.
      const other = slot === 'app_pool_s1' ? 'app_pool_s2' : 'app_pool_s1';
      expect(await settingsOf(other)).toEqual(provisioned);
    } finally {
      for (const g of [
        'search_path',
        'DateStyle',
        'local_preload_libraries',
        'idle_session_timeout',
        'transaction_timeout',
      ]) {
        await master.query(`ALTER ROLE ${slot} RESET ${g}`);
      }
      await master.query(`ALTER ROLE ${slot} SET statement_timeout = '5s'`);
      await master.end();
    }
  });

  test("I5: defaults only a superuser could remove again (a transaction's own characteristics, the random seed) reach no unit, and stop no start-up and no bootstrap", async () => {
    const attacked = poolDb.poolAs('app_pool', { max: 1 });
    const changed = await inject(
      new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: attacked, model: 'pool' }).forTenant('acme'),
      `ALTER ROLE CURRENT_USER SET transaction_read_only = on; ALTER ROLE CURRENT_USER SET seed = 0.5;
       SELECT session_user::text AS slot`,
    );
    expect(changed.sqlstate).toBeUndefined();
    const slot = String(changed.rows[0].slot);
    await attacked.end();
    const master = await poolDb.master();
    try {
      // Not even the master user (CREATEROLE, as on RDS) can remove them.
      expect(await sqlstateOf(master.query(`ALTER ROLE ${slot} RESET transaction_read_only`))).toBeDefined();
      const events: Record<string, unknown>[] = [];
      const fresh = new TenantDatabase({
        contextKey: TEST_CONTEXT_KEY,
        pool: poolDb.poolOnSlot('app_pool', Number(slot.slice('app_pool_s'.length)), (f) => events.push(f)),
        model: 'pool',
      });
      const outcome = await tryLeak('I5', 'role defaults nobody but a superuser can reset', async () => {
        const wrote = await sqlstateOf(
          fresh.forTenant('globex').run(sql`INSERT INTO pool.invoices (customer) VALUES ('globex inert')`),
        );
        const drift = await fresh.assertSafeRuntimeRole().then(
          () => undefined,
          (e: Error) => e.message,
        );
        const again = await sqlstateOf(bootstrapDatabase(master, 'pool', { contextKey: TEST_CONTEXT_KEY }));
        return {
          leaked: wrote !== undefined || drift !== undefined || again !== undefined,
          detail: `write ${wrote ?? 'ok'}; start-up check ${drift ?? 'ok'}; bootstrap ${again ?? 'ok'}`,
        };
      });
      expect(outcome).toEqual({ leaked: false, detail: 'write ok; start-up check ok; bootstrap ok' });
      expect(events).toEqual([]);
      await fresh.forTenant('globex').run(sql`DELETE FROM pool.invoices WHERE customer = 'globex inert'`);
    } finally {
      await master.end();
    }
  });

  test('I5: defaults set on the runtime role that act before enter() (read-only, serializable, no RLS) reach no new connection; TEMP or CREATE privileges stop the API', async () => {
    const changed = await inject(
      pooled.forTenant('acme'),
      `ALTER ROLE CURRENT_USER SET default_transaction_read_only = on;
       ALTER ROLE CURRENT_USER SET default_transaction_isolation = serializable;
       ALTER ROLE CURRENT_USER SET row_security = off;
       SELECT session_user::text AS slot`,
    );
    const slot = String(changed.rows[0]?.slot);
    const master = await poolDb.master();
    try {
      expect(changed.sqlstate).toBeUndefined();
      // A connection straight to that login role, without the slot pool's repair on connect: its startup packet
      // alone must hold (it is also what the repair's own statements run with).
      const freshPool = poolDb.poolAs(slot, { max: 1 });
      const fresh = new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: freshPool, model: 'pool' });
      const settings = await freshPool.query<{ ro: string; iso: string; rls: string }>(
        `SELECT current_setting('default_transaction_read_only') AS ro,
                current_setting('default_transaction_isolation') AS iso, current_setting('row_security') AS rls`,
      );
      expect(settings.rows[0]).toEqual({ ro: 'off', iso: 'read committed', rls: 'on' });
      await fresh.forTenant('globex').run(sql`INSERT INTO pool.invoices (customer) VALUES ('globex fresh')`);
      await fresh.forTenant('globex').run(sql`DELETE FROM pool.invoices WHERE customer = 'globex fresh'`);
      await expect(fresh.assertSafeRuntimeRole()).rejects.toThrow('has role settings nobody provisioned');
      await master.query(`ALTER ROLE ${slot} RESET default_transaction_read_only`);
      await master.query(`ALTER ROLE ${slot} RESET default_transaction_isolation`);
      await master.query(`ALTER ROLE ${slot} RESET row_security`);
      await expect(fresh.assertSafeRuntimeRole()).resolves.toBeUndefined();
      // A role that could create objects could shadow a name a kept statement resolves on a re-plan.
      await master.query(`GRANT TEMP ON DATABASE ${poolDb.name} TO app_pool`);
      await expect(fresh.assertSafeRuntimeRole()).rejects.toThrow(
        'may create temporary objects (TEMP on this database)',
      );
      await master.query(`REVOKE TEMP ON DATABASE ${poolDb.name} FROM app_pool`);
      await master.query('SET ROLE tenant_owner; GRANT CREATE ON SCHEMA pool TO app_pool; RESET ROLE');
      await expect(fresh.assertSafeRuntimeRole()).rejects.toThrow('may create objects in schema "pool"');
      // A second session of that slot role: gone before the next test, as the API's pools never keep one.
      await freshPool.end();
    } finally {
      await master
        .query('SET ROLE tenant_owner; REVOKE CREATE ON SCHEMA pool FROM app_pool; RESET ROLE')
        .catch(() => undefined);
      await master.query(`REVOKE TEMP ON DATABASE ${poolDb.name} FROM app_pool`).catch(() => undefined);
      for (const g of ['default_transaction_read_only', 'default_transaction_isolation', 'row_security']) {
        await master.query(`ALTER ROLE ${slot} RESET ${g}`).catch(() => undefined);
      }
      await master.end();
    }
  });

  test("I5: bridge: a session-level SET ROLE, or the runtime role's default role set to a tenant's, breaks no unit and reaches no rows", async () => {
    const read = (id: string) =>
      bridged
        .forTenant(id)
        .run<{ customer: string; who: string }>(
          sql`SELECT customer, current_user AS who FROM invoices ORDER BY customer`,
        );
    const hooliBefore = (await read('hooli')).rows.map((r) => r.customer);
    const umbrellaBefore = (await read('umbrella')).rows.map((r) => r.customer);
    // The session, not the unit: the connection goes back to the pool as t_hooli.
    const set = await inject(bridged.forTenant('umbrella'), 'SET SESSION ROLE t_hooli');
    expect(set.sqlstate).toBeUndefined();
    const master = await bridgeDb.master();
    let slot = '';
    try {
      const outcome = await tryLeak(
        'I5',
        "SET ROLE and ALTER ROLE ... SET role to another tenant's role",
        async () => {
          // The next units on that connection, umbrella's and hooli's, each run as their own tenant, and fail for none.
          const u = await read('umbrella');
          const h = await read('hooli');
          // Every new connection of the runtime role would start as t_hooli: the API's connections say role=none in
          // their startup packet, and the start-up check names the drift.
          const altered = await inject(
            bridged.forTenant('umbrella'),
            'RESET ROLE; ALTER ROLE CURRENT_USER SET role = t_hooli; SELECT session_user::text AS slot',
          );
          slot = String(altered.rows[0]?.slot);
          // Straight to that login role, without the slot pool's repair on connect (the startup packet alone).
          const freshPool = bridgeDb.poolAs(slot, { max: 1 });
          const startsAs = (await freshPool.query<{ who: string }>('SELECT current_user AS who')).rows[0].who;
          const fresh = new TenantDatabase({
            contextKey: TEST_CONTEXT_KEY,
            pool: freshPool,
            model: 'bridge',
          });
          const f = await fresh
            .forTenant('umbrella')
            .run<{ customer: string }>(sql`SELECT customer FROM invoices ORDER BY customer`);
          const drift = await fresh.assertSafeRuntimeRole().then(
            () => undefined,
            (e: Error) => e.message,
          );
          await freshPool.end();
          const same = (rows: { customer: string }[], want: string[]) =>
            JSON.stringify(rows.map((r) => r.customer)) === JSON.stringify(want);
          return {
            leaked:
              altered.sqlstate !== undefined ||
              !same(u.rows, umbrellaBefore) ||
              !same(h.rows, hooliBefore) ||
              !same(f.rows, umbrellaBefore) ||
              !/^app_bridge_s[0-9]+$/.test(slot) ||
              startsAs !== slot ||
              !String(drift).includes('has role settings nobody provisioned (role=t_hooli)'),
            detail: JSON.stringify({
              u: u.rows,
              h: h.rows,
              f: f.rows,
              startsAs,
              drift,
              altered: altered.sqlstate,
            }),
          };
        },
      );
      expect(outcome.leaked).toBe(false);
    } finally {
      if (slot) await master.query(`ALTER ROLE ${slot} RESET role`);
      await master.end();
    }
  });

  test("I6: a table lock stalls other tenants only for lock_timeout; the provisioner's locks are out of reach", async () => {
    const master = await poolDb.master();
    const outcome = await tryLeak(
      'I6',
      'LOCK TABLE ... ACCESS EXCLUSIVE, and the provisioner lock',
      async () => {
        // acme holds the table for 3 s inside its own transaction (its injected statement).
        const holding = inject(
          pooled.forTenant('acme'),
          'LOCK TABLE pool.invoices IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3)',
        );
        await new Promise((r) => setTimeout(r, 300));
        const t0 = Date.now();
        const blocked = await sqlstateOf(
          pooledOther.forTenant('globex').run(sql`SELECT count(*) FROM invoices`),
        );
        const waited = Date.now() - t0;
        await holding;
        // The provisioner's lock is a row in tenancy.locks, which the runtime role cannot even see.
        const lock = await inject(
          pooled.forTenant('acme'),
          "SELECT target FROM tenancy.locks WHERE target = 'pool:globex' FOR UPDATE",
        );
        const t1 = Date.now();
        await registerPoolTenant(master, 'globex', 'globex');
        return {
          leaked: blocked !== '55P03' || waited > 2900 || lock.sqlstate !== '42501' || Date.now() - t1 > 1000,
          detail: `waited ${blocked} after ${Math.round(waited / 1000)} s; tenancy.locks ${lock.sqlstate}`,
        };
      },
    );
    expect(outcome).toEqual({ leaked: false, detail: 'waited 55P03 after 2 s; tenancy.locks 42501' });
  });

  test('I6: a transaction that turns off its own timeouts holds no lock once its request has timed out', async () => {
    // The API gives up on a unit after its query timeout (here 1.5 s; 7 s in the API) and ends the backend from
    // another connection: closing the socket alone left it running (PostgreSQL notices a gone client only when it
    // next writes to it), holding its lock with no timeout of its own.
    const shortLived = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: poolDb.poolAs('app_pool', { max: 1, query_timeout: 1500 }),
      model: 'pool',
    });
    const master = await poolDb.master();
    let slot = '';
    const outcome = await tryLeak(
      'I6',
      'statement and idle timeouts off, LOCK TABLE ... ACCESS EXCLUSIVE, then the request times out',
      async () => {
        // First, a default that makes every sign-in of its login role fail: the end of the backend signs in as
        // that role (db/connection-care.ts), so its startup packet must override it.
        const poison = await inject(
          shortLived.forTenant('acme'),
          `ALTER ROLE CURRENT_USER SET local_preload_libraries = 'nope'; SELECT session_user::text AS slot`,
        );
        slot = String(poison.rows[0]?.slot);
        const t0 = Date.now();
        const attack = await inject(
          shortLived.forTenant('acme'),
          `SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0;
           LOCK TABLE pool.invoices IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30)`,
        );
        const ended = Date.now() - t0;
        const held = await master.query(
          `SELECT count(*)::int AS n FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_class c ON c.oid = l.relation
            WHERE c.relname = 'invoices' AND l.mode = 'AccessExclusiveLock' AND l.granted`,
        );
        const t1 = Date.now();
        const other = await sqlstateOf(
          pooledOther.forTenant('globex').run(sql`SELECT count(*) FROM invoices`),
        );
        const waited = Date.now() - t1;
        return {
          leaked:
            attack.sqlstate !== 'Query read timeout' ||
            ended > 4000 ||
            held.rows[0].n > 0 ||
            other !== undefined ||
            waited > 1000,
          detail: `the attack ended with ${attack.sqlstate}; locks held after it: ${held.rows[0].n}; globex: ${other ?? 'served'}`,
        };
      },
    );
    if (/^app_pool_s[0-9]+$/.test(slot))
      await master.query(`ALTER ROLE ${slot} RESET local_preload_libraries`);
    await master.end();
    expect(outcome).toEqual({
      leaked: false,
      detail: 'the attack ended with Query read timeout; locks held after it: 0; globex: served',
    });
    // Bridge: a tenant that takes another tenant's role to lock that tenant's table alone (a targeted stall),
    // having first left a session-level SET ROLE on every connection of the pool (the connection that ends the
    // backend must not end it as a tenant's role, which may not).
    const shortBridge = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: bridgeDb.poolAs('app_bridge', { max: 2, query_timeout: 1500 }),
      model: 'bridge',
    });
    const planted = await Promise.all(
      [0, 1].map(() => inject(shortBridge.forTenant('umbrella'), 'SET ROLE t_hooli; SELECT pg_sleep(0.3)')),
    );
    expect(planted.map((p) => p.sqlstate)).toEqual([undefined, undefined]);
    const targeted = await tryLeak(
      'I6',
      "bridge: timeouts off, SET LOCAL ROLE to another tenant's, LOCK its table, then the request times out",
      async () => {
        const attack = await inject(
          shortBridge.forTenant('umbrella'),
          `SET LOCAL statement_timeout = 0; SET LOCAL ROLE t_hooli;
           LOCK TABLE t_hooli.invoices IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30)`,
        );
        const t1 = Date.now();
        const other = await sqlstateOf(
          new TenantDatabase({
            contextKey: TEST_CONTEXT_KEY,
            pool: bridgeDb.poolAs('app_bridge', { max: 1 }),
            model: 'bridge',
          })
            .forTenant('hooli')
            .run(sql`SELECT count(*) FROM invoices`),
        );
        return {
          leaked: attack.sqlstate !== 'Query read timeout' || other !== undefined || Date.now() - t1 > 1000,
          detail: `the attack ended with ${attack.sqlstate}; hooli: ${other ?? 'served'}`,
        };
      },
    );
    expect(targeted).toEqual({
      leaked: false,
      detail: 'the attack ended with Query read timeout; hooli: served',
    });
  });

  test.each([
    ['pool', 'acme', 'globex', ''],
    ['bridge', 'umbrella', 'hooli', 'SET LOCAL ROLE t_hooli;'],
  ] as const)(
    "I8: %s: a tenant's SQL can neither read, cancel nor end the statements of the cell's other connections",
    async (model, attackerTenant, victimTenant, asVictim) => {
      const db = model === 'pool' ? poolDb : bridgeDb;
      const role = model === 'pool' ? 'app_pool' : 'app_bridge';
      const attacker = model === 'pool' ? pooled : bridged;
      // Another connection of the same cell (another API task, or the same task's next connection).
      const victimDb = new TenantDatabase({
        contextKey: TEST_CONTEXT_KEY,
        pool: db.poolAs(role, { max: 1 }),
        model,
      });
      const running = victimDb
        .forTenant(victimTenant)
        .run(sql`SELECT pg_sleep(0.8), count(*)::int AS n FROM invoices`)
        .then(
          () => 'completed',
          (e: { code?: string; message: string }) => e.code ?? e.message,
        );
      await new Promise((r) => setTimeout(r, 200));
      const others = `FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND usename::text LIKE '${role}%'`;
      const outcome = await tryLeak(
        'I8',
        `${model}: cancel, end or read another connection's statement`,
        async () => {
          const tries = {
            seen: await inject(
              attacker.forTenant(attackerTenant),
              `SELECT string_agg(DISTINCT coalesce(query, ''), ' | ') AS q ${others}`,
            ),
            cancel: await inject(
              attacker.forTenant(attackerTenant),
              `${asVictim} SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) AS n ${others}`,
            ),
            end: await inject(
              attacker.forTenant(attackerTenant),
              `${asVictim} SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n ${others}`,
            ),
            // As the runtime role itself, whose privileges every slot role has.
            asParent: await inject(
              attacker.forTenant(attackerTenant),
              `SET LOCAL ROLE ${role}; SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) AS n ${others}`,
            ),
          };
          const victim = await running;
          const seen = String(tries.seen.rows[0]?.q ?? '');
          const refused = [tries.cancel, tries.end, tries.asParent].map(
            (t) => t.sqlstate ?? JSON.stringify(t.rows),
          );
          return {
            leaked: victim !== 'completed' || seen.includes('pg_sleep') || refused.some((r) => r !== '42501'),
            detail: `victim ${victim}; seen ${seen}; refused ${refused.join(', ')}`,
          };
        },
      );
      expect(outcome).toEqual({
        leaked: false,
        detail: 'victim completed; seen <insufficient privilege>; refused 42501, 42501, 42501',
      });
    },
  );

  test("I7: the planner's statistics hold no tenant's text, so EXPLAIN estimates are the same for any value", async () => {
    const outcome = await tryLeak('I7', 'bisect another tenant value through EXPLAIN estimates', async () => {
      const stats = await inject(
        pooled.forTenant('acme'),
        "SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'pool' AND attname IN ('customer', 'reference', 'description') AND (most_common_vals IS NOT NULL OR histogram_bounds IS NOT NULL)",
      );
      const estimate = async (value: string) => {
        const r = await inject(
          pooled.forTenant('acme'),
          `/* bypasses a check on the statement's first word */ EXPLAIN (FORMAT JSON) SELECT * FROM pool.invoices WHERE customer = '${value}'`,
        );
        return JSON.stringify(r.rows[0]).match(/"Plan Rows\\?":\s*(\d+)/)?.[1];
      };
      const real = await estimate('globex secret');
      const fake = await estimate('no such customer at all');
      return {
        leaked: stats.rows[0]?.n !== 0 || real !== fake,
        detail: `text statistics ${stats.rows[0]?.n}; estimates equal: ${real === fake}`,
      };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'text statistics 0; estimates equal: true' });
  });
});
