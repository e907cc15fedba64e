/**
 * API benchmark: requests per second and p50/p99 latency of GET /invoices/:id for a pool, a bridge and a silo
 * tenant at 8 and 64 concurrent connections (autocannon), against the local platform started in a child
 * process with its own data directory (your .local/ is not touched). The same read is also served with no tenant
 * isolation at all (bench/api-baseline.ts: same framework, driver, role and query; no token, no tenant context,
 * no RLS) and each model's rate is given as a ratio to it (issue 10's target: >= 0.85).
 *
 *   npm run bench:api                 # 10 s per case
 *   npm run bench:api -- --seconds 5
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import autocannon from 'autocannon';
import { startLocalPlatform, stopChild, waitFor } from './support';
import { Client } from 'pg';
import { LOCAL_MASTER_ROLE } from '../service/src/local/platform';
import { LocalIssuer } from '../service/src/local/issuer';

const SECONDS = Number(
  process.argv.includes('--seconds') ? process.argv[process.argv.indexOf('--seconds') + 1] : '10',
);
const PORT = 3400 + Math.floor(Math.random() * 500);
const PG_PORT = 55400 + Math.floor(Math.random() * 500);
const BASELINE_PORT = PORT + 500;
const TENANTS = [
  { id: 'acme', model: 'pool' },
  { id: 'umbrella', model: 'bridge' },
  { id: 'northwind', model: 'silo' },
];

/** Copies the pool cell's tables (acme's rows) into schema bench_plain, without RLS, for the baseline to read. */
async function startBaseline(dir: string): Promise<ChildProcess> {
  const secrets = JSON.parse(fs.readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as {
    masterPassword: string;
    runtimePassword: string;
  };
  const url = (user: string, password: string) =>
    `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${PG_PORT}/local_pool`;
  const master = new Client({ connectionString: url(LOCAL_MASTER_ROLE, secrets.masterPassword) });
  await master.connect();
  try {
    await master.query(`BEGIN; SET LOCAL ROLE tenant_owner; SELECT tenancy.owner_enter('acme');
      DROP SCHEMA IF EXISTS bench_plain CASCADE; CREATE SCHEMA bench_plain;
      CREATE TABLE bench_plain.invoices (LIKE pool.invoices INCLUDING ALL);
      INSERT INTO bench_plain.invoices SELECT * FROM pool.invoices;
      CREATE TABLE bench_plain.invoice_items (LIKE pool.invoice_items INCLUDING ALL);
      INSERT INTO bench_plain.invoice_items SELECT * FROM pool.invoice_items;
      SET LOCAL search_path = pool`);
    const view = await master.query<{ def: string }>(
      `SELECT pg_get_viewdef('pool.invoice_summaries'::regclass) AS def`,
    );
    await master.query(`SET LOCAL search_path = bench_plain;
      CREATE VIEW bench_plain.invoice_summaries AS ${view.rows[0].def.replace(/;\s*$/, '')};
      GRANT USAGE ON SCHEMA bench_plain TO app_pool;
      GRANT SELECT ON ALL TABLES IN SCHEMA bench_plain TO app_pool;
      COMMIT`);
  } finally {
    await master.end();
  }
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'api-baseline.ts')], {
    env: {
      ...process.env,
      PORT: String(BASELINE_PORT),
      BASELINE_DATABASE_URL: url('app_pool', secrets.runtimePassword),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitFor(`http://127.0.0.1:${BASELINE_PORT}/ready`, 60000);
  return child;
}

/** A 2 s warm-up (JIT, connections, plans), then the timed run. */
async function measure(url: string, headers: Record<string, string>, connections: number) {
  await autocannon({ url, headers, connections, duration: 2 });
  return autocannon({ url, headers, connections, duration: SECONDS });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-api-'));
  fs.chmodSync(dir, 0o755);
  const server = startLocalPlatform({
    localDir: dir,
    port: PORT,
    pgPort: PG_PORT,
    // The read path, not the per-tenant limits (64 connections on one tenant is a flood: bench:noisy).
    env: { LOCAL_TENANT_LIMITS: 'off' },
  });
  const base = `http://127.0.0.1:${PORT}`;
  try {
    await waitFor(`${base}/ready`, 120000);
    const issuer = LocalIssuer.open(path.join(dir, 'issuer'));
    console.log(`API benchmark on ${os.cpus().length} cores, node ${process.version}, ${SECONDS} s per case`);
    console.log(
      'The API runs in a child process (the local platform, PostgreSQL in its own), autocannon in this one.\n',
    );
    console.log('| tenant | model | connections | req/s | ratio to no isolation | p50 | p99 | non-2xx |');
    console.log('|---|---|---|---|---|---|---|---|');
    const baselineRate = new Map<number, number>();
    for (const t of TENANTS) {
      const token = issuer.idToken({ tenantId: t.id, expiresInSeconds: 3600 });
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const created = await fetch(`${base}/invoices`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          customer: 'Bench Corp',
          items: [
            { description: 'Consulting', quantity: 2, unitPriceCents: 5000 },
            { description: 'Travel', quantity: 1, unitPriceCents: 1200 },
          ],
        }),
      });
      const { id } = (await created.json()) as { id: string };
      if (baselineRate.size === 0) {
        // The baseline reads a copy of this first (pool) tenant's invoice, without isolation.
        const baseline = await startBaseline(dir);
        try {
          for (const connections of [8, 64]) {
            const r = await measure(`http://127.0.0.1:${BASELINE_PORT}/invoices/${id}`, {}, connections);
            baselineRate.set(connections, r.requests.average);
            console.log(
              `| (none) | no isolation (baseline) | ${connections} | ${r.requests.average.toFixed(0)} | 1.00 | ${r.latency.p50} ms | ${r.latency.p99} ms | ${r.non2xx} |`,
            );
          }
        } finally {
          await stopChild(baseline);
        }
      }
      for (const connections of [8, 64]) {
        const r = await measure(`${base}/invoices/${id}`, headers, connections);
        const ratio = r.requests.average / baselineRate.get(connections)!;
        console.log(
          `| ${t.id} | ${t.model} | ${connections} | ${r.requests.average.toFixed(0)} | ${ratio.toFixed(2)} | ${r.latency.p50} ms | ${r.latency.p99} ms | ${r.non2xx} |`,
        );
      }
    }
  } finally {
    await stopChild(server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
