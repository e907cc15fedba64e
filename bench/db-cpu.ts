/**
 * CPU per unit of work (bench/db.ts, after the throughput table): one client, one connection, units run one after
 * another, so nothing waits on anything else; the server's CPU is its backend's (/proc/<pid>/schedstat, a local
 * server only) and the client's is this process's. Steadier than throughput on a shared 2-core machine, and it
 * says which side pays. Rounds of every case are interleaved; each figure is the median of the rounds.
 *
 * Beside run() it prices the design that would meet issue 10's 0.9 in the database: a connection signed in as
 * the tenant (a login role per tenant; Row-Level Security compares each row's tenant with session_user, which SQL
 * cannot change), so no unit needs a credential or a reset. What it costs instead is a connection per tenant: the
 * last line is the time to open one (SCRAM) and read.
 */
import * as fs from 'fs';
import { Client, Pool, PoolClient, PoolConfig } from 'pg';
import { ContextKey } from '../db/context';
import { sql } from '../db/sql';
import { TenantDatabase } from '../db/tenant-context';
import { runUnitOfWork } from '../db/unit-of-work';

export interface CpuBenchmarkOptions {
  readonly url: (db: string, user: string, password?: string) => string;
  readonly contextKey: ContextKey;
  readonly slotted: (config: PoolConfig) => Pool;
  readonly units: number;
  readonly rounds: number;
  /** Whether the server runs on this machine (its backends' /proc entries are theirs), as the embedded one does. */
  readonly localServer: boolean;
}

const LOGIN_ROLE = 'bench_login_acme';
const LOGIN_PASSWORD = 'bench-login-password';

/** The backend's CPU so far, in µs, or undefined when its /proc entry is not readable (a remote server). */
function backendCpuUs(pid: number): number | undefined {
  try {
    const ns = Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    return Number.isFinite(ns) && ns > 0 ? ns / 1000 : undefined;
  } catch {
    return undefined;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function cpuPerUnitBenchmark(o: CpuBenchmarkOptions): Promise<void> {
  const master = new Client({ connectionString: o.url('bench_pool', 'bench_master') });
  master.on('error', () => undefined);
  await master.connect();
  // The tenant's own login role, and the same rows in a table whose policy compares session_user.
  await master.query(`DROP ROLE IF EXISTS ${LOGIN_ROLE}`);
  await master.query(`CREATE ROLE ${LOGIN_ROLE} LOGIN PASSWORD '${LOGIN_PASSWORD}'`);
  await master.query(`GRANT CONNECT ON DATABASE bench_pool TO ${LOGIN_ROLE}`);
  await master.query(`BEGIN; SET LOCAL ROLE tenant_owner;
    CREATE TABLE plain.invoices_by_login (LIKE plain.invoices INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
    ALTER TABLE plain.invoices_by_login
      ADD COLUMN tenant_login name GENERATED ALWAYS AS (('bench_login_' || tenant_id)::name) STORED;
    INSERT INTO plain.invoices_by_login SELECT * FROM plain.invoices;
    INSERT INTO plain.invoices_by_login (tenant_id, customer) VALUES ('globex', 'another tenant');
    ALTER TABLE plain.invoices_by_login ENABLE ROW LEVEL SECURITY;
    CREATE POLICY tenant_read ON plain.invoices_by_login FOR SELECT USING (tenant_login = session_user);
    GRANT USAGE ON SCHEMA plain TO ${LOGIN_ROLE};
    GRANT SELECT ON plain.invoices_by_login TO ${LOGIN_ROLE};
    ANALYZE plain.invoices_by_login;
    COMMIT`);

  const rawPool = o.slotted({ connectionString: o.url('bench_pool', 'app_pool'), max: 1 });
  const raw: PoolClient = await rawPool.connect();
  const ids = (await raw.query<{ id: string }>(`SELECT id FROM plain.invoices`)).rows.map((r) => r.id);
  const pick = () => ids[Math.floor(Math.random() * ids.length)];
  const tenantPool = o.slotted({ connectionString: o.url('bench_pool', 'app_pool'), max: 1 });
  const acme = new TenantDatabase({ contextKey: o.contextKey, pool: tenantPool, model: 'pool' }).forTenant(
    'acme',
  );
  const acmePid = (await acme.run<{ pid: number }>(sql`SELECT pg_backend_pid() AS pid`)).rows[0].pid;
  const login = new Client({
    connectionString: o.url('bench_pool', LOGIN_ROLE, LOGIN_PASSWORD),
  });
  login.on('error', () => undefined);
  await login.connect();
  // The design priced below must isolate: the tenant's login sees its own rows and not the other tenant's row.
  const seen = await login.query(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE tenant_id <> 'acme')::int AS others FROM plain.invoices_by_login`,
  );
  if (seen.rows[0].n !== ids.length || seen.rows[0].others !== 0) {
    throw new Error(
      `signed in as the tenant, the policy showed ${JSON.stringify(seen.rows[0])}, not acme's rows only`,
    );
  }

  const text = "SELECT * FROM plain.invoices WHERE tenant_id = 'acme' AND id = $1";
  const cases: { name: string; pid: number; unit: () => Promise<unknown> }[] = [
    {
      name: "no tenant context, parameterised (the throughput table's 1.00)",
      pid: (raw as unknown as { processID: number }).processID,
      unit: () => raw.query(text, [pick()]),
    },
    {
      name: 'no tenant context, prepared, one exchange',
      pid: (raw as unknown as { processID: number }).processID,
      unit: () => runUnitOfWork(raw, [{ name: 'cpu_plain_read', text, values: [pick()] }]),
    },
    {
      name: 'pool tenant, run(): credential, reset, verified by RLS',
      pid: acmePid,
      unit: () => acme.run(sql`SELECT * FROM pool.invoices WHERE tenant_id = 'acme' AND id = ${pick()}`),
    },
    {
      name: 'signed in as the tenant (RLS on session_user), prepared, one exchange',
      pid: (login as unknown as { processID: number }).processID,
      unit: () =>
        runUnitOfWork(login, [
          {
            name: 'cpu_login_read',
            text: "SELECT * FROM plain.invoices_by_login WHERE tenant_id = 'acme' AND id = $1",
            values: [pick()],
          },
        ]),
    },
  ];
  const figures = new Map<string, { server: (number | undefined)[]; client: number[] }>();
  for (const c of cases) for (let i = 0; i < 300; i++) await c.unit();
  for (let r = 0; r < o.rounds; r++) {
    for (const c of cases) {
      const s0 = o.localServer ? backendCpuUs(c.pid) : undefined;
      const c0 = process.cpuUsage();
      for (let i = 0; i < o.units; i++) await c.unit();
      const used = process.cpuUsage(c0);
      const s1 = o.localServer ? backendCpuUs(c.pid) : undefined;
      const f = figures.get(c.name) ?? { server: [], client: [] };
      f.server.push(s0 !== undefined && s1 !== undefined ? (s1 - s0) / o.units : undefined);
      f.client.push((used.user + used.system) / o.units);
      figures.set(c.name, f);
    }
  }
  const cold: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = process.hrtime.bigint();
    const c = new Client({
      connectionString: o.url('bench_pool', LOGIN_ROLE, LOGIN_PASSWORD),
    });
    await c.connect();
    await c.query("SELECT * FROM plain.invoices_by_login WHERE tenant_id = 'acme' AND id = $1", [pick()]);
    cold.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await c.end();
  }

  console.log(
    `\n## CPU per unit of work: the same read, one client, one connection, units one after another (median of ${o.rounds} interleaved rounds of ${o.units})\n`,
  );
  console.log('| unit of work | server µs | client µs | total µs | ratio to no context |');
  console.log('|---|---|---|---|---|');
  let base: number | undefined;
  for (const c of cases) {
    const f = figures.get(c.name)!;
    const server = f.server.every((s) => s !== undefined) ? median(f.server as number[]) : undefined;
    const client = median(f.client);
    const total = server === undefined ? undefined : server + client;
    base ??= total;
    console.log(
      `| ${c.name} | ${server === undefined ? 'n/a (remote server)' : server.toFixed(0)} | ${client.toFixed(0)} | ${total === undefined ? 'n/a' : total.toFixed(0)} | ${total === undefined || base === undefined ? 'n/a' : (base / total).toFixed(2)} |`,
    );
  }
  console.log(
    `\nA new connection signed in as the tenant, then the read: median ${median(cold).toFixed(1)} ms (30 connections; the server's SCRAM iterations and a new backend).`,
  );

  await login.end();
  raw.release();
  await Promise.all([rawPool.end(), tenantPool.end()]);
  await master.query(`BEGIN; SET LOCAL ROLE tenant_owner;
    DROP TABLE plain.invoices_by_login; REVOKE USAGE ON SCHEMA plain FROM ${LOGIN_ROLE}; COMMIT`);
  await master.query(`REVOKE CONNECT ON DATABASE bench_pool FROM ${LOGIN_ROLE}`);
  await master.query(`DROP ROLE ${LOGIN_ROLE}`);
  await master.end();
}
