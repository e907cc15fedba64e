/**
 * Synth benchmark: generated catalogs of 10, 100 and 1,000 tenants (a third of each model). For each it
 * measures a full `cdk synth` (wall time, peak memory of the largest node process) and a single-tenant synth
 * (`-c tenant=<id>`, a silo tenant: the largest kind of tenant stack) with the same catalog.
 *
 *   npm run bench:synth              # 10, 100, 1000
 *   npm run bench:synth -- 10 100    # chosen sizes
 *   npm run bench:synth -- --silos 1000   # 1,000 silos with no VPC settings: time, and every VPC's range
 *                                         # from the address pool (none hand-picked, none overlapping)
 *
 * Targets (issue 2): single-tenant synth with 1,000 tenants <= 1.5x the 10-tenant one; full 1,000-tenant
 * synth <= 60 s on a 2-core machine.
 */
import { spawnSync } from 'child_process';
import { TENANT_STACK_PREFIX } from '../contracts';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const CDK = path.join(ROOT, 'node_modules', '.bin', 'cdk');
const MODELS = ['silo', 'pool', 'bridge'] as const;

export function generateCatalog(size: number) {
  return {
    tenants: Array.from({ length: size }, (_, i) => {
      const model = MODELS[i % 3];
      const id = `${model}-tenant-${String(i).padStart(4, '0')}`;
      const tenant: Record<string, unknown> = { id, name: `Generated ${model} tenant ${i}`, model };
      // Silos take no VPC settings: their ranges come from the platform's address pool.
      return tenant;
    }),
  };
}

interface Run {
  seconds: number;
  peakMiB: number;
  stacks: number;
}

function synth(catalog: string, extra: string[], inspect?: (out: string) => void): Run {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synth-out-'));
  const rssFile = path.join(out, '..', `${path.basename(out)}.rss`);
  const started = process.hrtime.bigint();
  const r = spawnSync(CDK, ['synth', '--quiet', '-o', out, '-c', `catalog=${catalog}`, ...extra], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      ...process.env,
      BENCH_RSS_FILE: rssFile,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${path.join(__dirname, 'peak-rss.cjs')}`,
    },
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) {
    throw new Error(`cdk synth failed (${r.status}):\n${r.stderr.slice(-4000)}`);
  }
  const peaks = fs.readFileSync(rssFile, 'utf8').trim().split('\n').map(Number);
  const stacks = fs.readdirSync(out).filter((f) => f.endsWith('.template.json')).length;
  inspect?.(out);
  fs.rmSync(out, { recursive: true, force: true });
  fs.rmSync(rssFile, { force: true });
  return { seconds, peakMiB: Math.max(...peaks) / 1024, stacks };
}

/** N silos, no VPC settings: every silo VPC must take its range from the IPAM pool, none hand-picked. */
function silos(n: number): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-silos-'));
  const file = path.join(dir, 'silos.json');
  const catalog = {
    tenants: Array.from({ length: n }, (_, i) => ({
      id: `silo-${String(i).padStart(4, '0')}`,
      name: `Silo ${i}`,
      model: 'silo',
    })),
  };
  fs.writeFileSync(file, JSON.stringify(catalog));
  let fromPool = 0;
  let handPicked = 0;
  const run = synth(file, [], (out) => {
    for (const f of fs
      .readdirSync(out)
      .filter((x) => x.startsWith(TENANT_STACK_PREFIX) && x.endsWith('.template.json'))) {
      const t = JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')) as {
        Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
      };
      for (const r of Object.values(t.Resources).filter((x) => x.Type === 'AWS::EC2::VPC')) {
        if (r.Properties.Ipv4IpamPoolId && r.Properties.CidrBlock === undefined) fromPool++;
        else handPicked++;
      }
    }
  });
  console.log(
    `${n} silos, no VPC settings: full synth ${run.seconds.toFixed(1)} s, ${run.stacks} stacks, peak ${run.peakMiB.toFixed(0)} MiB`,
  );
  console.log(
    `  VPC ranges from the address pool (/20 each, allocated by IPAM, never overlapping): ${fromPool}; hand-picked: ${handPicked}`,
  );
  console.log(`  pool capacity: 2048 /20s in 10.128.0.0/9`);
  fs.rmSync(dir, { recursive: true, force: true });
  if (fromPool !== n || handPicked !== 0) process.exit(1);
}

function main(): void {
  const silosAt = process.argv.indexOf('--silos');
  if (silosAt >= 0) return silos(Number(process.argv[silosAt + 1] ?? '1000'));
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synth-'));
  console.log(
    `synth benchmark on ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
  );
  console.log(
    '| tenants | full synth | stacks | peak memory | single-tenant synth (-c tenant=<silo>) | its peak memory |',
  );
  console.log('|---|---|---|---|---|---|');
  const single: Record<number, number> = {};
  for (const size of sizes.length ? sizes : [10, 100, 1000]) {
    const file = path.join(dir, `tenants-${size}.json`);
    fs.writeFileSync(file, JSON.stringify(generateCatalog(size)));
    const full = synth(file, []);
    const one = synth(file, ['-c', 'tenant=silo-tenant-0000']);
    single[size] = one.seconds;
    console.log(
      `| ${size} | ${full.seconds.toFixed(1)} s | ${full.stacks} | ${full.peakMiB.toFixed(0)} MiB | ${one.seconds.toFixed(1)} s | ${one.peakMiB.toFixed(0)} MiB |`,
    );
  }
  const sizesRun = Object.keys(single).map(Number);
  if (sizesRun.length > 1) {
    const [smallest, largest] = [Math.min(...sizesRun), Math.max(...sizesRun)];
    console.log(
      `single-tenant synth, ${largest} vs ${smallest} tenants in the catalog: ${(single[largest] / single[smallest]).toFixed(2)}x (target <= 1.5x)`,
    );
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

if (require.main === module) main();
