/**
 * Noisy-neighbour benchmark: 8 quiet pool tenants each send steady traffic (GET /invoices/:id at --rate requests
 * per second each) to the local platform, first alone, then while one more tenant of the same cell floods it
 * (64 connections, as fast as they go, of its heaviest read: a page of 100 invoices). Prints both runs side by
 * side: the quiet tenants' throughput, p50 and p99 latency and errors, and what the flood got.
 *
 *   npm run bench:noisy                       # 10 s per run, 20 requests per second per quiet tenant
 *   npm run bench:noisy -- --seconds 5 --rate 10
 *
 * Target (issue 15): the quiet tenants' p99 within 1.2x and throughput within 0.9x of the run without the flood,
 * and no errors. The API runs in a child process (npm run local with a catalog of 9 pool tenants), autocannon here.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import autocannon from 'autocannon';
import { startLocalPlatform, stopChild, waitFor } from './support';
import { LocalIssuer } from '../service/src/local/issuer';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const SECONDS = Number(arg('seconds', '10'));
const RATE = Number(arg('rate', '20'));
const PORT = 3900 + Math.floor(Math.random() * 90);
const PG_PORT = 55900 + Math.floor(Math.random() * 90);
const QUIET = Array.from({ length: 8 }, (_, i) => `quiet-${i + 1}`);
const LOUD = 'loud';

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function run(base: string, tokens: Map<string, string>, ids: Map<string, string>, flood: boolean) {
  const quiet = QUIET.map((tenant) =>
    autocannon({
      url: `${base}/invoices/${ids.get(tenant)}`,
      headers: { authorization: `Bearer ${tokens.get(tenant)}` },
      connections: 2,
      overallRate: RATE,
      duration: SECONDS,
    }),
  );
  const loud = flood
    ? autocannon({
        url: `${base}/invoices?limit=100`,
        headers: { authorization: `Bearer ${tokens.get(LOUD)}` },
        connections: 64,
        duration: SECONDS,
      })
    : undefined;
  const results = await Promise.all(quiet);
  const sum = (f: (r: autocannon.Result) => number) => results.reduce((a, r) => a + f(r), 0);
  const figures: Figures = {
    rps: sum((r) => r.requests.average),
    p50: Math.max(...results.map((r) => r.latency.p50)),
    p99: Math.max(...results.map((r) => r.latency.p99)),
    errors: sum((r) => r.errors + r.timeouts),
    non2xx: sum((r) => r.non2xx),
  };
  const l = loud ? await loud : undefined;
  return {
    figures,
    loud: l && {
      ok: l['2xx'],
      throttled: l.statusCodeStats?.['429']?.count ?? 0,
      unavailable: l.statusCodeStats?.['503']?.count ?? 0,
      other: l.non2xx - (l.statusCodeStats?.['429']?.count ?? 0) - (l.statusCodeStats?.['503']?.count ?? 0),
    },
  };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-noisy-'));
  fs.chmodSync(dir, 0o755);
  const catalog = path.join(dir, 'tenants.json');
  fs.writeFileSync(
    catalog,
    JSON.stringify({
      tenants: [...QUIET, LOUD].map((id) => ({ id, name: id, model: 'pool' })),
    }),
  );
  const server = startLocalPlatform({
    localDir: path.join(dir, '.local'),
    port: PORT,
    pgPort: PG_PORT,
    args: ['--catalog', catalog],
  });
  const base = `http://127.0.0.1:${PORT}`;
  try {
    await waitFor(`${base}/ready`, 180000);
    const issuer = LocalIssuer.open(path.join(dir, '.local', 'issuer'));
    const tokens = new Map(
      [...QUIET, LOUD].map((t) => [t, issuer.idToken({ tenantId: t, expiresInSeconds: 3600 })]),
    );
    const ids = new Map<string, string>();
    for (const tenant of [...QUIET, LOUD]) {
      // The loud tenant has a page of 100 invoices to read; each quiet tenant one invoice.
      for (let i = 0; i < (tenant === LOUD ? 100 : 1); i++) {
        const created = await fetch(`${base}/invoices`, {
          method: 'POST',
          headers: { authorization: `Bearer ${tokens.get(tenant)}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            customer: `${tenant} customer ${i}`,
            items: [{ description: 'Consulting', quantity: 2, unitPriceCents: 5000 }],
          }),
        });
        if (created.status !== 201)
          throw new Error(`seeding ${tenant}: ${created.status} ${await created.text()}`);
        ids.set(tenant, ((await created.json()) as { id: string }).id);
      }
    }
    console.log(
      `noisy-neighbour benchmark on ${os.cpus().length} cores, node ${process.version}, ${SECONDS} s per run`,
    );
    console.log(
      `8 quiet pool tenants at ${RATE} requests/s each (GET /invoices/:id, 2 connections each); the flood: one tenant of the same cell, 64 connections of GET /invoices?limit=100 as fast as they go\n`,
    );
    await run(base, tokens, ids, false); // warm-up
    const alone = await run(base, tokens, ids, false);
    const flooded = await run(base, tokens, ids, true);
    const a = alone.figures;
    const f = flooded.figures;
    console.log('| quiet tenants (8) | req/s | p50 | p99 | errors | non-2xx |');
    console.log('|---|---|---|---|---|---|');
    console.log(`| alone | ${a.rps.toFixed(0)} | ${a.p50} ms | ${a.p99} ms | ${a.errors} | ${a.non2xx} |`);
    console.log(
      `| during the flood | ${f.rps.toFixed(0)} | ${f.p50} ms | ${f.p99} ms | ${f.errors} | ${f.non2xx} |`,
    );
    console.log(
      `| ratio | ${(f.rps / a.rps).toFixed(2)} (target >= 0.9) | | ${(f.p99 / Math.max(a.p99, 1)).toFixed(2)} (target <= 1.2) | | |`,
    );
    const loud = flooded.loud!;
    console.log(
      `\nthe flooding tenant: ${loud.ok} served, ${loud.throttled} refused with 429, ${loud.unavailable} with 503 (its database share), ${loud.other} other`,
    );
  } finally {
    await stopChild(server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
