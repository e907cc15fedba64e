/**
 * Noisy-neighbour benchmark: 8 quiet pool tenants each send steady traffic (GET /invoices/:id at --rate requests
 * per second each) to the local platform, first alone, then while one more tenant of the same cell floods it
 * (64 connections, as fast as they go, of its heaviest read: a page of 100 invoices). Prints both runs side by
 * side: the quiet tenants' throughput, p50 and p99 latency and errors, and what the flood got.
 *
 *   npm run bench:noisy                       # 3 pairs of 10 s runs, 20 requests per second per quiet tenant
 *   npm run bench:noisy -- --seconds 5 --rate 10 --repeat 5
 *
 * Target (issue 15): the quiet tenants' p99 within 1.2x and throughput within 0.9x of the run without the flood,
 * and no errors. The API runs in a child process (npm run local with a catalog of 9 pool tenants); the quiet
 * tenants' requests are sent from here, evenly spaced (steadyTraffic), and the flood (autocannon) from a process
 * of its own (bench/noisy-flood.ts), so parsing the flood's pages never delays the event loop that times the
 * quiet requests.
 *
 * How p99 is read: the quiet tenants' latencies are pooled (8 tenants x 20 requests/s x 10 s = 1,600 samples per
 * run), and the runs alternate (alone, flooded, floor, alone, floor, flooded, ...: the flooded and floor runs
 * swap places each time, so neither always follows the other) so drift on a shared machine falls on every side;
 * the verdict is the median of the repetitions' ratios (flooded / alone).
 *
 * The floor: the same flood sent to a stand-in server (bench/noisy-standin.ts: the same pages at the same rows
 * budget, the same spread refusals) instead of the platform. The quiet tenants' ratio then is what the flood
 * costs them on this machine without the platform (its client, the loopback network, the kernel and a trivial
 * server, on the same cores): an estimate, as noisy as the rest, of the least any API could show here. The highest of the eight per-tenant p99s (200 samples
 * each: its second-worst request) is printed too; it is what earlier versions of this benchmark reported, and on
 * 2 shared cores it moves by tens of percent between identical runs.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import { startLocalPlatform, stopChild, waitFor } from './support';
import { LocalIssuer } from '../service/src/local/issuer';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const SECONDS = Number(arg('seconds', '10'));
const REPEAT = Number(arg('repeat', '3'));
const RATE = Number(arg('rate', '20'));
const PORT = 3900 + Math.floor(Math.random() * 90);
const PG_PORT = 55900 + Math.floor(Math.random() * 90);
const QUIET = Array.from({ length: 8 }, (_, i) => `quiet-${i + 1}`);
const LOUD = 'loud';

interface Figures {
  rps: number;
  /** Over every quiet request of the run (pooled). */
  p50: number;
  p99: number;
  /** Over the requests due from the run's second second on (a flood's burst allowance is spent in its first). */
  p99AfterFirstSecond: number;
  /** The highest of the quiet tenants' own p99s. */
  worstTenantP99: number;
  errors: number;
  non2xx: number;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : 0;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Steady {
  /** Milliseconds from each request's scheduled start to the end of its answer. */
  latencies: number[];
  /** Whether each latency's request was due in the run's first second. */
  firstSecond: boolean[];
  ok: number;
  non2xx: number;
  errors: number;
}

/**
 * One quiet tenant's steady traffic: a request every 1000 / RATE ms from `offsetMs` on, for the run's duration,
 * on at most 2 keep-alive connections. Open loop: a request is sent at its time even while an earlier one is
 * still out, and its latency counts from that time, so a slow answer delays no later measurement (no coordinated
 * omission). (autocannon's rate limit sends each second's requests back to back at its start, so 8 tenants'
 * requests arrived together and the p99 measured the queue of that burst.)
 */
function steadyTraffic(url: string, token: string, offsetMs: number): Promise<Steady> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const result: Steady = { latencies: [], firstSecond: [], ok: 0, non2xx: 0, errors: 0 };
  const interval = 1000 / RATE;
  const total = Math.round(SECONDS * RATE);
  const start = performance.now() + offsetMs;
  let done = 0;
  return new Promise((resolve) => {
    const finish = () => {
      if (++done === total) {
        agent.destroy();
        resolve(result);
      }
    };
    const send = (k: number) => {
      const scheduled = start + k * interval;
      const req = http.get(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => {
          result.latencies.push(performance.now() - scheduled);
          result.firstSecond.push(k < RATE);
          if (res.statusCode === 200) result.ok++;
          else result.non2xx++;
          finish();
        });
      });
      // A request unanswered after 5 s counts as an error (the run does not wait for it forever).
      req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
      req.on('error', () => {
        result.errors++;
        finish();
      });
      if (k + 1 < total)
        setTimeout(() => send(k + 1), Math.max(0, start + (k + 1) * interval - performance.now()));
    };
    setTimeout(() => send(0), Math.max(0, start - performance.now()));
  });
}

async function run(
  base: string,
  tokens: Map<string, string>,
  ids: Map<string, string>,
  /** Where the flood goes: nowhere, the platform, or the stand-in (the floor). */
  flood: string | undefined,
) {
  const flooding = flood ? await floodProcess(flood, tokens.get(LOUD)!) : undefined;
  const loud = flooding?.go();
  const results = await Promise.all(
    QUIET.map((tenant, i) =>
      steadyTraffic(
        `${base}/invoices/${ids.get(tenant)}`,
        tokens.get(tenant)!,
        (i * 1000) / RATE / QUIET.length,
      ),
    ),
  );
  const samples = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const later = results.flatMap((r) => r.latencies.filter((_, j) => !r.firstSecond[j])).sort((a, b) => a - b);
  const sum = (f: (r: Steady) => number) => results.reduce((a, r) => a + f(r), 0);
  const figures: Figures = {
    rps: sum((r) => r.ok) / SECONDS,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    p99AfterFirstSecond: percentile(later, 99),
    worstTenantP99: Math.max(
      ...results.map((r) =>
        percentile(
          [...r.latencies].sort((a, b) => a - b),
          99,
        ),
      ),
    ),
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
  };
  return { figures, loud: loud && (await loud) };
}

interface FloodResult {
  ok: number;
  throttled: number;
  unavailable: number;
  other: number;
}

/**
 * The flood, in a child process (bench/noisy-flood.ts): started and loaded first, so its start-up costs no CPU
 * inside the timed run; `go()` starts it and resolves with what it got.
 */
async function floodProcess(url: string, token: string): Promise<{ go(): Promise<FloodResult> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'noisy-flood.ts')], {
    env: { ...process.env, FLOOD_URL: url, FLOOD_TOKEN: token, FLOOD_SECONDS: String(SECONDS) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  const exited = new Promise<FloodResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`the flood process exited with ${code}`));
      try {
        resolve(JSON.parse(last) as FloodResult);
      } catch {
        reject(new Error(`the flood process printed no result: ${out}`));
      }
    });
  });
  exited.catch(() => undefined); // awaited through go(); a failure before then surfaces in `ready` below
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) resolve();
    });
    exited.then(() => reject(new Error('the flood process ended before it was ready')), reject);
  });
  return {
    go: () => {
      child.stdin!.end('go\n');
      return exited;
    },
  };
}

/** The stand-in server (bench/noisy-standin.ts) on the next port, answering the flood with `page`. */
async function standInProcess(page: string): Promise<{ url: string; child: ChildProcess }> {
  const port = PORT + 1;
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'noisy-standin.ts')], {
    env: { ...process.env, STANDIN_PAGE: page, STANDIN_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the stand-in exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}/`, child };
}

let standin: { url: string; child: ChildProcess } | undefined;

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
      `8 quiet pool tenants at ${RATE} requests/s each (GET /invoices/:id, evenly spaced, at most 2 connections each); the flood: one tenant of the same cell, 64 connections of GET /invoices?limit=100 as fast as they go\n`,
    );
    const floodUrl = `${base}/invoices?limit=100`;
    standin = await standInProcess(
      await (await fetch(floodUrl, { headers: { authorization: `Bearer ${tokens.get(LOUD)}` } })).text(),
    );
    // Warm-up, not counted: both kinds of run, so the flood's paths (pages, refusals) are compiled before timing.
    await run(base, tokens, ids, undefined);
    await run(base, tokens, ids, floodUrl);
    await run(base, tokens, ids, standin.url);
    const pairs: {
      alone: Figures;
      flooded: Figures;
      loud: FloodResult;
      floor: Figures;
      standin: FloodResult;
    }[] = [];
    for (let i = 0; i < REPEAT; i++) {
      const alone = (await run(base, tokens, ids, undefined)).figures;
      const swap = i % 2 === 1;
      const first = await run(base, tokens, ids, swap ? standin.url : floodUrl);
      const second = await run(base, tokens, ids, swap ? floodUrl : standin.url);
      const [flooded, floor] = swap ? [second, first] : [first, second];
      pairs.push({
        alone,
        flooded: flooded.figures,
        loud: flooded.loud!,
        floor: floor.figures,
        standin: floor.loud!,
      });
    }
    const ms = (v: number) => `${v.toFixed(1)} ms`;
    console.log(
      '| repetition | quiet tenants (8) | req/s | p50 | p99 (pooled) | worst tenant p99 | errors | non-2xx | flood: served / 429 / 503 |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    pairs.forEach(({ alone: a, flooded: f, loud, floor: s, standin: sl }, i) => {
      console.log(
        `| ${i + 1} | alone | ${a.rps.toFixed(0)} | ${ms(a.p50)} | ${ms(a.p99)} | ${ms(a.worstTenantP99)} | ${a.errors} | ${a.non2xx} | |`,
      );
      console.log(
        `| ${i + 1} | during the flood | ${f.rps.toFixed(0)} | ${ms(f.p50)} | ${ms(f.p99)} | ${ms(f.worstTenantP99)} | ${f.errors} | ${f.non2xx} | ${loud.ok} / ${loud.throttled} / ${loud.unavailable} |`,
      );
      console.log(
        `| ${i + 1} | floor: the flood sent to the stand-in | ${s.rps.toFixed(0)} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.worstTenantP99)} | ${s.errors} | ${s.non2xx} | ${sl.ok} / ${sl.throttled} / ${sl.unavailable} |`,
      );
    });
    const ratios = (f: (x: Figures) => number, of: 'flooded' | 'floor' = 'flooded') =>
      pairs.map((p) => f(p[of]) / Math.max(f(p.alone), 0.1));
    const show = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
    const rps = ratios((x) => x.rps);
    const p99 = ratios((x) => x.p99);
    const worst = ratios((x) => x.worstTenantP99);
    const floorP99 = ratios((x) => x.p99, 'floor');
    const later = ratios((x) => x.p99AfterFirstSecond);
    const errors = pairs.reduce((n, p) => n + p.flooded.errors + p.flooded.non2xx, 0);
    console.log(
      `\nratios, flooded / alone, per repetition: throughput ${show(rps)}; p99 (pooled) ${show(p99)}; worst tenant p99 ${show(worst)}`,
    );
    console.log(
      `without the first second of each run (the flood's burst allowance): p99 (pooled) ${show(later)}; median ${median(later).toFixed(2)}`,
    );
    console.log(
      `floor, the flood sent to the stand-in / alone, per repetition: p99 (pooled) ${show(floorP99)}; median ${median(floorP99).toFixed(2)} (about the least any API could show on this machine)`,
    );
    console.log(
      `median of ${REPEAT}: throughput ${median(rps).toFixed(2)} (target >= 0.9), p99 ${median(p99).toFixed(2)} (target <= 1.2), worst tenant p99 ${median(worst).toFixed(2)}; quiet tenants' errors and non-2xx during the floods: ${errors} (target 0)`,
    );
    const other = pairs.reduce((n, p) => n + p.loud.other, 0);
    if (other) console.log(`the flooding tenant also got ${other} answers other than 2xx, 429 and 503`);
  } finally {
    standin?.child.kill();
    await stopChild(server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
