import { Client } from 'pg';
import { bootstrapDatabase } from '../../db/bootstrap';
import { FleetDatabase, migrateFleet, planFleet } from '../../db/fleet-migrate';
import { MIGRATIONS, type Migration } from '../../db/migrations';
import { dataModel, migrateSilo, provisionBridgeTenant, registerPoolTenant } from '../../db/models';
import { RUNTIME_ROLES } from '../../db/roles';
import { lockTarget } from '../../db/tx';
import {
  createTestDatabase,
  MASTER_PASSWORD,
  MASTER_ROLE,
  RUNTIME_PASSWORD,
  TEST_CONTEXT_KEY,
  TestDatabase,
  urlFor,
} from './harness';

// A fleet of pool, bridge and silo targets at mixed versions, on the real server, migrated by the same code the
// provisioner's custom resource runs.
const latest = MIGRATIONS[MIGRATIONS.length - 1].version;
/** A test release: one more migration (a column with a default, an index), failing for one chosen schema. */
const next = (failFor?: string): Migration => ({
  version: latest + 1,
  name: 'test: invoice notes',
  pool: `ALTER TABLE invoices ADD COLUMN notes text NOT NULL DEFAULT ''; CREATE INDEX ON invoices (created_at);`,
  tenant: `DO $$ BEGIN IF current_schema() = '${failFor ?? '-'}' THEN RAISE EXCEPTION 'boom in %', current_schema(); END IF; END $$;
           ALTER TABLE invoices ADD COLUMN notes text NOT NULL DEFAULT ''; CREATE INDEX ON invoices (created_at);`,
});

let poolDb: TestDatabase;
let bridgeDb: TestDatabase;
let siloDb: TestDatabase;
let fleet: FleetDatabase[];
const BRIDGE = ['b-one', 'b-two', 'b-three', 'b-four', 'b-five', 'b-six'];

const database = (db: TestDatabase, model: FleetDatabase['model'], tenantId?: string): FleetDatabase => ({
  name: `${model} ${tenantId ?? 'cell'}`,
  model,
  options: {},
  tenantId,
  connect: async () => {
    const c = new Client({ connectionString: urlFor(db.name, MASTER_ROLE, MASTER_PASSWORD) });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  },
});

async function versions(db: FleetDatabase): Promise<Record<string, number>> {
  const c = await db.connect();
  try {
    const r = (await c.query(
      `BEGIN; SET LOCAL ROLE tenant_owner; SELECT target, version FROM tenancy.targets; COMMIT`,
    )) as unknown as { rows: { target: string; version: number }[] }[];
    return Object.fromEntries(r[2].rows.map((row) => [row.target, row.version]));
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  poolDb = await createTestDatabase('fleet_pool');
  bridgeDb = await createTestDatabase('fleet_bridge');
  siloDb = await createTestDatabase('fleet_silo');
  const pm = await poolDb.master();
  await bootstrapDatabase(pm, 'pool', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { pool: RUNTIME_PASSWORD },
    version: 2,
  });
  await registerPoolTenant(pm, 'p-one', 'P');
  const bm = await bridgeDb.master();
  await bootstrapDatabase(bm, 'bridge', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { bridge: RUNTIME_PASSWORD },
  });
  // Mixed versions: some at 1, some at 3, some current.
  for (const [i, id] of BRIDGE.entries())
    await provisionBridgeTenant(bm, id, { version: [1, 3, latest][i % 3] });
  const sm = await siloDb.master();
  await bootstrapDatabase(sm, 'silo', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { silo: RUNTIME_PASSWORD },
  });
  await migrateSilo(sm, 2, RUNTIME_ROLES.silo);
  fleet = [database(poolDb, 'pool'), database(bridgeDb, 'bridge'), database(siloDb, 'silo', 's-one')];
});

afterAll(async () => {
  await Promise.all([poolDb.drop(), bridgeDb.drop(), siloDb.drop()]);
});

describe('fleet migrations (db/fleet-migrate.ts)', () => {
  test('the plan lists every target with its version and what would run, and changes nothing', async () => {
    const before = await Promise.all(fleet.map(versions));
    const plan = await planFleet(fleet);
    expect(plan.map((t) => [t.database.name, t.target, t.from, t.action])).toEqual([
      ['pool cell', 'pool', 2, 'migrate'],
      ['bridge cell', 'bridge:b-five', 3, 'migrate'],
      ['bridge cell', 'bridge:b-four', 1, 'migrate'],
      ['bridge cell', 'bridge:b-one', 1, 'migrate'],
      ['bridge cell', 'bridge:b-six', latest, 'current'],
      ['bridge cell', 'bridge:b-three', latest, 'current'],
      ['bridge cell', 'bridge:b-two', 3, 'migrate'],
      ['silo s-one', 'silo', 2, 'migrate'],
    ]);
    expect(plan.find((t) => t.target === 'bridge:b-one')!.migrations).toEqual(
      MIGRATIONS.filter((m) => m.version > 1).map((m) => `${m.version} ${m.name}`),
    );
    expect(await Promise.all(fleet.map(versions))).toEqual(before);
  });

  test('a failing canary stops the run before anything else is attempted', async () => {
    const migrations = [...MIGRATIONS, next('t_b_five')];
    const plan = await planFleet(fleet, latest + 1, migrations);
    const result = await migrateFleet(plan, { migrations, canary: ['b-five'] });
    expect(result.stoppedAfterCanary).toBe(true);
    expect(result.outcomes.map((o) => [o.target.target, o.result])).toEqual([['bridge:b-five', 'failed']]);
    expect(result.outcomes[0].reason).toContain('boom in t_b_five');
    expect((await versions(fleet[1]))['bridge:b-five']).toBe(3); // rolled back whole
  });

  test('one failing target does not stop the others; a rerun after the fix finishes it', async () => {
    const failing = [...MIGRATIONS, next('t_b_two')];
    const first = await migrateFleet(await planFleet(fleet, latest + 1, failing), {
      migrations: failing,
      concurrency: 3,
    });
    expect(first.stoppedAfterCanary).toBeUndefined();
    const failed = first.outcomes.filter((o) => o.result !== 'done');
    expect(failed.map((o) => [o.target.target, o.result])).toEqual([['bridge:b-two', 'failed']]);
    expect(failed[0].reason).toContain('boom in t_b_two');
    expect(first.outcomes.filter((o) => o.result === 'done')).toHaveLength(7);
    expect(await versions(fleet[1])).toMatchObject({ 'bridge:b-one': latest + 1, 'bridge:b-two': 3 });

    const fixed = [...MIGRATIONS, next()];
    const rerunPlan = await planFleet(fleet, latest + 1, fixed);
    expect(rerunPlan.filter((t) => t.action === 'migrate').map((t) => t.target)).toEqual(['bridge:b-two']);
    const second = await migrateFleet(rerunPlan, { migrations: fixed });
    expect(second.outcomes.map((o) => [o.target.target, o.result])).toEqual([['bridge:b-two', 'done']]);
    for (const db of fleet) {
      expect(Object.values(await versions(db)).every((v) => v === latest + 1)).toBe(true);
    }
    // The new column reached every tenant's table.
    const bm = await bridgeDb.master();
    const cols = await bm.query(
      `SELECT count(*)::int AS n FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE a.attname = 'notes' AND c.relname = 'invoices' AND NOT a.attisdropped`,
    );
    expect(cols.rows[0].n).toBe(BRIDGE.length);
  });

  test('a target locked elsewhere (being onboarded) is waited for, then skipped with the reason; a rerun finishes it', async () => {
    const migrations = [
      ...MIGRATIONS,
      next(),
      { ...next(), version: latest + 2, name: 'test: more', pool: 'SELECT 1', tenant: 'SELECT 1' },
    ];
    const holder = await bridgeDb.master();
    await holder.query('BEGIN');
    await holder.query(lockTarget('bridge:b-three').toQuery());
    let outcome;
    try {
      const plan = await planFleet([fleet[1]], latest + 2, migrations);
      outcome = await migrateFleet(plan, {
        migrations,
        lockTimeoutMs: 100,
        attempts: 2,
        backoffMs: 10,
        canary: 0,
      });
    } finally {
      await holder.query('ROLLBACK');
    }
    const skipped = outcome.outcomes.filter((o) => o.result !== 'done');
    expect(skipped.map((o) => [o.target.target, o.result, o.attempts])).toEqual([
      ['bridge:b-three', 'skipped', 2],
    ]);
    expect(skipped[0].reason).toMatch(/^busy: a lock was held/);
    const rerun = await migrateFleet(await planFleet([fleet[1]], latest + 2, migrations), { migrations });
    expect(rerun.outcomes.map((o) => [o.target.target, o.result])).toEqual([['bridge:b-three', 'done']]);
  });

  test('an onboarding during a run is migrated by the run or provisioned current: never left behind', async () => {
    const migrations = [...MIGRATIONS, next()];
    const plan = await planFleet([fleet[1]], latest + 1, migrations);
    const bm = await bridgeDb.master();
    const [result] = await Promise.all([
      migrateFleet(plan, { migrations, concurrency: 2 }),
      provisionBridgeTenant(bm, 'b-late', { version: latest }),
    ]);
    expect(result.outcomes.every((o) => o.result === 'done')).toBe(true);
    // The late tenant was onboarded at the release's version; the next run brings it along.
    const again = await planFleet([fleet[1]], latest + 1, migrations);
    expect(again.filter((t) => t.action === 'migrate').map((t) => t.target)).toEqual(['bridge:b-late']);
    await migrateFleet(again, { migrations });
    expect((await versions(fleet[1]))['bridge:b-late']).toBe(latest + 1);
  });

  test("a backfill rewrites every tenant's rows (forced RLS shows the owner none), and RLS is forced again", async () => {
    const pm = await poolDb.master();
    const bm = await bridgeDb.master();
    for (const [c, id, schema] of [
      [pm, 'p-one', 'pool'],
      [bm, 'b-one', 't_b_one'],
    ] as const) {
      await c.query(`BEGIN; SET LOCAL ROLE tenant_owner; SELECT tenancy.owner_enter('${id}');
        SET LOCAL search_path = ${schema}; INSERT INTO invoices (customer) VALUES ('before'); COMMIT`);
    }
    const v = latest + 3;
    const migrations = [
      ...MIGRATIONS,
      next(),
      { ...next(), version: latest + 2, name: 'test: more', pool: 'SELECT 1', tenant: 'SELECT 1' },
      {
        version: v,
        name: 'test: backfill',
        pool: 'SELECT 1',
        tenant: 'SELECT 1',
        backfill: {
          pool: "UPDATE invoices SET notes = 'filled'",
          tenant: "UPDATE invoices SET notes = 'filled'",
        },
      },
    ];
    // The same UPDATE outside `backfill` would change nothing: the check refuses it.
    await expect(
      planFleet(fleet, v, [
        ...migrations.slice(0, -1),
        { ...migrations[migrations.length - 1], pool: "UPDATE invoices SET notes = 'x'" },
      ]),
    ).rejects.toThrow(/move it to `backfill.pool`/);
    const result = await migrateFleet(await planFleet(fleet, v, migrations), { migrations });
    expect(result.outcomes.every((o) => o.result === 'done')).toBe(true);
    for (const [db, table] of [
      [poolDb, 'pool.invoices'],
      [bridgeDb, 't_b_one.invoices'],
    ] as const) {
      const su = await db.superuser(); // bypasses RLS: sees every row
      const r = await su.query(`SELECT notes, count(*)::int AS n FROM ${table} GROUP BY notes`);
      expect(r.rows).toEqual([{ notes: 'filled', n: 1 }]);
      const unforced = await su.query(
        `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('pool', 't_b_one') AND c.relkind = 'r' AND c.relrowsecurity AND NOT c.relforcerowsecurity`,
      );
      expect(unforced.rows).toEqual([]);
    }
  });

  test('a frozen target (its data moving, or the silo a move out of it kept) is skipped with the reason, never failed; once thawed a rerun migrates it', async () => {
    const kept = await createTestDatabase('fleet_kept_silo');
    try {
      const m = await kept.master();
      await bootstrapDatabase(m, 'silo', {
        contextKey: TEST_CONTEXT_KEY,
        runtimePasswords: { silo: RUNTIME_PASSWORD },
      });
      await migrateSilo(m, 2, RUNTIME_ROLES.silo);
      await dataModel('silo').freeze(m, 's-kept', {});
      const silo = [database(kept, 'silo', 's-kept')];
      const run = await migrateFleet(await planFleet(silo, latest));
      expect(run.outcomes.map((o) => [o.target.target, o.result])).toEqual([['silo', 'skipped']]);
      expect(run.outcomes[0].reason).toContain('frozen while its data moves');
      expect(await versions(silo[0])).toEqual({ silo: 2 });
      await dataModel('silo').unfreeze(m, 's-kept', {});
      const rerun = await migrateFleet(await planFleet(silo, latest));
      expect(rerun.outcomes.map((o) => o.result)).toEqual(['done']);
      expect(await versions(silo[0])).toEqual({ silo: latest });
      await m.end();
    } finally {
      await kept.drop();
    }
  });
});
