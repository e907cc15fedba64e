/**
 * CPU per unit of work (bench/db.ts, after the throughput table): one client, units run one after another, so
 * nothing waits on anything else; the server's CPU is its backend's (/proc/<pid>/schedstat, a local server only)
 * and the client's is this process's. Steadier than throughput on a shared 2-core machine, and it says which side
 * pays. Rounds of every case are interleaved, in a rotating order; each figure is the median of the rounds. The
 * no-context and signed-in cases hold their connection; run() checks one out of its pool for each unit, as the API
 * does.
 *
 * Beside run() it prices the design that would meet issue 10's 0.9 in the database: a connection signed in as
 * the tenant (a login role per tenant, with the runtime roles' limits; Row-Level Security compares each row's
 * tenant with session_user, which SQL cannot change). Such a connection never serves another tenant, so a unit
 * needs no credential and no reset of what another tenant left; it still releases advisory locks (a tenant's SQL
 * could hold a key the provisioner locks) and sets its limits again (its own SQL could have lifted them), in one
 * leading statement. Its price is a connection per tenant: the last lines are what opening one costs.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { Client, Pool, PoolClient, PoolConfig } from 'pg';
import { ContextKey } from '../db/context';
import {
  RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT,
  RUNTIME_LOCK_TIMEOUT,
  RUNTIME_STATEMENT_TIMEOUT,
} from '../db/roles';
import { sql } from '../db/sql';
import { TenantDatabase } from '../db/tenant-context';
import { runUnitOfWork, UnitStatement } from '../db/unit-of-work';

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
const COLD_CONNECTIONS = 30;

/** The backend's CPU so far, in µs; undefined when the server is remote or the entry cannot be read. */
function backendCpuUs(pid: number, local: boolean): number | undefined {
  if (!local) return undefined;
  try {
    const ns = Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    return Number.isFinite(ns) && ns > 0 ? ns / 1000 : undefined;
  } catch {
    return undefined;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pidOf = (c: unknown) => (c as { processID: number }).processID;

export async function cpuPerUnitBenchmark(o: CpuBenchmarkOptions): Promise<void> {
  const password = randomBytes(18).toString('base64url');
  const master = new Client({ connectionString: o.url('bench_pool', 'bench_master') });
  master.on('error', () => undefined);
  await master.connect();
  const pools: Pool[] = [];
  const clients: Client[] = [];
  let raw: PoolClient | undefined;
  try {
    // The tenant's own login role (short-lived, random password, the runtime roles' limits), and the same rows in
    // a table whose policy compares session_user; another tenant's row too, which the login must not see.
    await master.query(`DROP ROLE IF EXISTS ${LOGIN_ROLE}`);
    await master.query(
      `CREATE ROLE ${LOGIN_ROLE} LOGIN CONNECTION LIMIT 4 PASSWORD '${password}' VALID UNTIL '${new Date(Date.now() + 3600_000).toISOString()}'`,
    );
    await master.query(`ALTER ROLE ${LOGIN_ROLE} SET statement_timeout = '${RUNTIME_STATEMENT_TIMEOUT}'`);
    await master.query(`ALTER ROLE ${LOGIN_ROLE} SET lock_timeout = '${RUNTIME_LOCK_TIMEOUT}'`);
    await master.query(
      `ALTER ROLE ${LOGIN_ROLE} SET idle_in_transaction_session_timeout = '${RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT}'`,
    );
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

    // Connections that stay open for the whole run (a pool would close an idle one after 10 s).
    const rawPool = o.slotted({
      connectionString: o.url('bench_pool', 'app_pool'),
      max: 1,
      idleTimeoutMillis: 0,
    });
    const tenantPool = o.slotted({
      connectionString: o.url('bench_pool', 'app_pool'),
      max: 1,
      idleTimeoutMillis: 0,
    });
    pools.push(rawPool, tenantPool);
    raw = await rawPool.connect();
    raw.on('error', () => undefined);
    const held = raw;
    const ids = (await held.query<{ id: string }>(`SELECT id FROM plain.invoices`)).rows.map((r) => r.id);
    const pick = () => ids[Math.floor(Math.random() * ids.length)];
    const acme = new TenantDatabase({ contextKey: o.contextKey, pool: tenantPool, model: 'pool' }).forTenant(
      'acme',
    );
    const acmePid = async () =>
      (await acme.run<{ pid: number }>(sql`SELECT pg_backend_pid() AS pid`)).rows[0].pid;
    const acmeBackend = await acmePid();
    const login = new Client({ connectionString: o.url('bench_pool', LOGIN_ROLE, password) });
    login.on('error', () => undefined);
    clients.push(login);
    await login.connect();
    const seen = await login.query(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE tenant_id <> 'acme')::int AS others FROM plain.invoices_by_login`,
    );
    if (seen.rows[0].n !== ids.length || seen.rows[0].others !== 0) {
      throw new Error(
        `signed in as the tenant, the policy showed ${JSON.stringify(seen.rows[0])}, not acme's rows only`,
      );
    }

    const text = "SELECT * FROM plain.invoices WHERE tenant_id = 'acme' AND id = $1";
    const loginRead = (): UnitStatement => ({
      name: 'cpu_login_read',
      text: "SELECT * FROM plain.invoices_by_login WHERE tenant_id = 'acme' AND id = $1",
      values: [pick()],
    });
    const loginCare: UnitStatement = {
      text: `SELECT pg_catalog.pg_advisory_unlock_all(),
                    pg_catalog.set_config('statement_timeout', '${RUNTIME_STATEMENT_TIMEOUT}', true),
                    pg_catalog.set_config('lock_timeout', '${RUNTIME_LOCK_TIMEOUT}', true),
                    pg_catalog.set_config('idle_in_transaction_session_timeout', '${RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT}', true)`,
      keepUnnamed: true,
    };
    const cases: { name: string; pid: number; unit: () => Promise<unknown> }[] = [
      {
        name: 'no tenant context, parameterised',
        pid: pidOf(held),
        unit: () => held.query(text, [pick()]),
      },
      {
        name: 'no tenant context, prepared, one exchange',
        pid: pidOf(held),
        unit: () => runUnitOfWork(held, [{ name: 'cpu_plain_read', text, values: [pick()] }]),
      },
      {
        name: 'pool tenant, run(): credential, reset, verified by RLS',
        pid: acmeBackend,
        unit: () => acme.run(sql`SELECT * FROM pool.invoices WHERE tenant_id = 'acme' AND id = ${pick()}`),
      },
      {
        name: 'signed in as the tenant: locks released and limits set, then the read prepared, one exchange',
        pid: pidOf(login),
        unit: () => runUnitOfWork(login, [loginCare, loginRead()]),
      },
      {
        name: 'signed in as the tenant: the read prepared alone',
        pid: pidOf(login),
        unit: () => runUnitOfWork(login, [loginRead()]),
      },
    ];
    const figures = new Map<string, { server: (number | undefined)[]; client: number[] }>();
    for (const c of cases) for (let i = 0; i < 300; i++) await c.unit();
    for (let r = 0; r < o.rounds; r++) {
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(k + r) % cases.length];
        const s0 = backendCpuUs(c.pid, o.localServer);
        const c0 = process.cpuUsage();
        for (let i = 0; i < o.units; i++) await c.unit();
        const used = process.cpuUsage(c0);
        const s1 = backendCpuUs(c.pid, o.localServer);
        const f = figures.get(c.name) ?? { server: [], client: [] };
        f.server.push(s0 !== undefined && s1 !== undefined ? (s1 - s0) / o.units : undefined);
        f.client.push((used.user + used.system) / o.units);
        figures.set(c.name, f);
      }
    }
    if ((await acmePid()) !== acmeBackend) {
      throw new Error(
        "run()'s connection was replaced during the rounds: its server CPU would be another backend's",
      );
    }

    // Opening a connection as the tenant and reading: wall time, and CPU on each side (the backend's read just
    // before it ends, so authentication and start-up are in it).
    const cold = { ms: [] as number[], server: [] as number[], client: [] as number[] };
    for (let i = 0; i < COLD_CONNECTIONS; i++) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      const c = new Client({ connectionString: o.url('bench_pool', LOGIN_ROLE, password) });
      c.on('error', () => undefined);
      await c.connect();
      await c.query("SELECT * FROM plain.invoices_by_login WHERE tenant_id = 'acme' AND id = $1", [pick()]);
      const server = backendCpuUs(pidOf(c), o.localServer);
      const used = process.cpuUsage(c0);
      await c.end();
      cold.ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      cold.client.push((used.user + used.system) / 1000);
      if (server !== undefined) cold.server.push(server / 1000);
    }

    console.log(
      `\n## CPU per unit of work: the same read, one client, units one after another (median of ${o.rounds} interleaved rounds of ${o.units})\n`,
    );
    console.log(
      '| unit of work | server µs | client µs | total µs | ratio to no context | ratio to prepared |',
    );
    console.log('|---|---|---|---|---|---|');
    const server = o.localServer ? 'n/a (unreadable)' : 'n/a (remote server)';
    const rows = cases.map((c) => {
      const f = figures.get(c.name)!;
      const s = f.server.every((x) => x !== undefined) ? median(f.server as number[]) : undefined;
      const client = median(f.client);
      return { name: c.name, s, client, total: s === undefined ? undefined : s + client };
    });
    const totals = rows.map((r) => r.total);
    for (const r of rows) {
      const ratio = (base: number | undefined) =>
        r.total === undefined || base === undefined ? 'n/a' : (base / r.total).toFixed(2);
      console.log(
        `| ${r.name} | ${r.s === undefined ? server : r.s.toFixed(0)} | ${r.client.toFixed(0)} | ${r.total === undefined ? 'n/a' : r.total.toFixed(0)} | ${ratio(totals[0])} | ${ratio(totals[1])} |`,
      );
    }
    const coldCpu =
      cold.server.length === COLD_CONNECTIONS ? median(cold.server) + median(cold.client) : undefined;
    console.log(
      `\nA new connection signed in as the tenant, then the read (${COLD_CONNECTIONS} connections, no TLS): median ${median(cold.ms).toFixed(1)} ms; CPU ${
        coldCpu === undefined
          ? `${median(cold.client).toFixed(1)} ms in the client (server: n/a)`
          : `${median(cold.server).toFixed(1)} ms in the backend and ${median(cold.client).toFixed(1)} ms in the client`
      }.`,
    );
    const [, , runTotal, careTotal] = totals;
    if (coldCpu !== undefined && runTotal !== undefined && careTotal !== undefined && runTotal > careTotal) {
      console.log(
        `It costs the CPU of ${Math.round((coldCpu * 1000) / (runTotal - careTotal))} units of run() minus the signed-in unit (${(runTotal - careTotal).toFixed(0)} µs each).`,
      );
    }
  } finally {
    raw?.release();
    await Promise.all([...clients.map((c) => c.end()), ...pools.map((p) => p.end())]).catch(() => undefined);
    await master
      .query(
        `BEGIN; SET LOCAL ROLE tenant_owner;
         DROP TABLE IF EXISTS plain.invoices_by_login; REVOKE USAGE ON SCHEMA plain FROM ${LOGIN_ROLE}; COMMIT`,
      )
      .catch(() => master.query('ROLLBACK'));
    await master.query(`REVOKE CONNECT ON DATABASE bench_pool FROM ${LOGIN_ROLE}`).catch(() => undefined);
    await master.query(`DROP ROLE IF EXISTS ${LOGIN_ROLE}`).catch(() => undefined);
    await master.end();
  }
}
