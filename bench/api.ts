/**
 * API benchmark: requests per second and p50/p99 latency of GET /invoices/:id for a pool, a bridge and a silo
 * tenant at 8 and 64 concurrent connections (autocannon), against the local platform started in a child
 * process with its own data directory (your .local/ is not touched).
 *
 *   npm run bench:api                 # 10 s per case
 *   npm run bench:api -- --seconds 5
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import autocannon from 'autocannon';
import { LocalIssuer } from '../service/src/local/issuer';

const SECONDS = Number(
  process.argv.includes('--seconds') ? process.argv[process.argv.indexOf('--seconds') + 1] : '10',
);
const PORT = 3400 + Math.floor(Math.random() * 500);
const PG_PORT = 55400 + Math.floor(Math.random() * 500);
const TENANTS = [
  { id: 'acme', model: 'pool' },
  { id: 'umbrella', model: 'bridge' },
  { id: 'northwind', model: 'silo' },
];

async function waitFor(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${ms} ms`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-api-'));
  fs.chmodSync(dir, 0o755);
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, '..', 'scripts', 'local.ts')],
    {
      env: {
        ...process.env,
        PORT: String(PORT),
        LOCAL_PG_PORT: String(PG_PORT),
        LOCAL_DIR: dir,
        LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const base = `http://127.0.0.1:${PORT}`;
  try {
    await waitFor(`${base}/ready`, 120000);
    const issuer = LocalIssuer.open(path.join(dir, 'issuer'));
    console.log(`API benchmark on ${os.cpus().length} cores, node ${process.version}, ${SECONDS} s per case`);
    console.log(
      'The API runs in a child process (the local platform, PostgreSQL in its own), autocannon in this one.\n',
    );
    console.log('| tenant | model | connections | req/s | p50 | p99 | non-2xx |');
    console.log('|---|---|---|---|---|---|---|');
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
      for (const connections of [8, 64]) {
        const r = await autocannon({
          url: `${base}/invoices/${id}`,
          headers,
          connections,
          duration: SECONDS,
        });
        console.log(
          `| ${t.id} | ${t.model} | ${connections} | ${r.requests.average.toFixed(0)} | ${r.latency.p50} ms | ${r.latency.p99} ms | ${r.non2xx} |`,
        );
      }
    }
  } finally {
    await new Promise<void>((resolve) => {
      server.on('exit', () => resolve());
      server.kill('SIGTERM');
    });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
