/**
 * Synth benchmark: generated catalogs of 10, 100 and 1,000 tenants (a third of each model). For each it
 * measures a full `cdk synth` (wall time, peak memory of the largest node process) and a single-tenant synth
 * (`-c tenant=<id>`, a silo tenant: the largest kind of tenant stack) with the same catalog.
 *
 *   npm run bench:synth              # 10, 100, 1000
 *   npm run bench:synth -- 10 100    # chosen sizes
 *
 * Targets (issue 2): single-tenant synth with 1,000 tenants <= 1.5x the 10-tenant one; full 1,000-tenant
 * synth <= 60 s on a 2-core machine.
 */
import { spawnSync } from 'child_process';
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
      if (model === 'silo') {
        // Explicit, non-overlapping /20s: 10.2.0.0/20 upwards, clear of the shared 10.0/16 and 10.1/16.
        const slot = Math.floor(i / 3);
        tenant.settings = {
          vpcCidr: `10.${2 + Math.floor(slot / 16)}.${(slot % 16) * 16}.0/20`,
          multiAz: true,
        };
      }
      return tenant;
    }),
  };
}

interface Run {
  seconds: number;
  peakMiB: number;
  stacks: number;
}

function synth(catalog: string, extra: string[]): Run {
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
  fs.rmSync(out, { recursive: true, force: true });
  fs.rmSync(rssFile, { force: true });
  return { seconds, peakMiB: Math.max(...peaks) / 1024, stacks };
}

function main(): void {
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
