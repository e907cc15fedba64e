/**
 * npm run cost [-- --catalog <file>] [-- --chart <file.svg>] [usage flags]
 *
 * Prices the synthesized fleet (the catalog's, offline) from the dated price table in lib/prices/: per stack, per
 * model and per tenant with the biggest lines, the empty fleet, and the monthly cost per tenant of each model as
 * the fleet grows (10, 100, 1,000 tenants of the model; shared cells sized by cellSizeFor in lib/cell-size.ts;
 * silos per cost profile), each silo cost profile with the assumptions and idle, as tables and an SVG chart. Usage-driven lines are assumptions, set with flags.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { loadCatalog, parseCatalog, type Catalog } from '../lib/catalog';
import { SILO_PROFILES, type SiloProfileName } from '../lib/silo-profiles';
import { SHARED_CELL_PROFILES, type SharedCellProfileName, type SharedModel } from '../lib/cell-size';
import {
  biggest,
  cellSizeFor,
  DEFAULT_USAGE,
  IDLE_USAGE,
  priceTemplate,
  resizeCell,
  total,
  type CostLine,
  type PriceTable,
  type Template,
  type Usage,
} from '../lib/cost';
import { unitCostChart } from '../lib/cost-chart';
import { buildFleet } from '../lib/fleet';
import { STACK_NAMES, tenantStackName } from '../contracts';
import { parseCli } from './cli';

const ROOT = path.join(__dirname, '..');
const SIZES = [10, 100, 1000];

const USAGE_FLAGS: Record<string, keyof Usage> = {
  'log-gb': 'logGbPerLogGroup',
  'nat-gb': 'natGbPerGateway',
  'alb-lcu': 'albLcu',
  'waf-mreq': 'wafMillionRequests',
  'backup-factor': 'backupGbFactor',
  mau: 'mauPerTenant',
  'ipam-ips': 'ipamIpsPerVpc',
  'acu-hours': 'auroraAcuHours',
  'aurora-gb': 'auroraStorageGb',
  'db-cpu': 'dbCpuPercent',
};

const USAGE_TEXT = `usage: npm run cost [-- --catalog <file>] [-- --chart <file.svg>] [-- --prices <file>] [usage flags]

Prices the catalog's fleet (synthesized offline) from a dated price table: per stack, model and tenant, and the
monthly cost per tenant of each model (and silo cost profile) at 10, 100 and 1,000 tenants.
  --catalog <file>   the tenant catalog (default: tenants.json)
  --chart <file>     where the SVG chart goes (default: cdk.out/cost-per-tenant.svg)
  --prices <file>    the price table (default: lib/prices/us-east-1.json)
Usage assumptions (monthly): --log-gb <GB per log group> (${DEFAULT_USAGE.logGbPerLogGroup}), --nat-gb <GB per NAT gateway> (${DEFAULT_USAGE.natGbPerGateway}),
  --alb-lcu <average LCU> (${DEFAULT_USAGE.albLcu}), --waf-mreq <million requests per web ACL> (${DEFAULT_USAGE.wafMillionRequests}),
  --backup-factor <backup GB per GB of database storage> (${DEFAULT_USAGE.backupGbFactor}), --mau <active users per tenant> (${DEFAULT_USAGE.mauPerTenant}),
  --ipam-ips <active IPs per VPC> (${DEFAULT_USAGE.ipamIpsPerVpc}), --acu-hours <Aurora capacity-unit hours per
  serverless cluster above its minimum> (${DEFAULT_USAGE.auroraAcuHours}), --aurora-gb <GB per Aurora cluster> (${DEFAULT_USAGE.auroraStorageGb}),
  --db-cpu <average CPU % of each burstable (T class) database; above its baseline it is billed> (${DEFAULT_USAGE.dbCpuPercent})
The silo profile table also prices each profile idle: no traffic, a paused database.
  --help             this text`;

const usd = (v: number) =>
  `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

function synthesize(catalog: Catalog): Map<string, Template> {
  const context = JSON.parse(fs.readFileSync(path.join(ROOT, 'cdk.json'), 'utf8')).context;
  // Pricing needs the templates, not the Lambda bundles.
  const app = new App({
    context: { ...context, 'aws:cdk:bundling-stacks': [] },
    outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'cost-')),
  });
  buildFleet(app, catalog, { env: { region: 'us-east-1' } });
  const assembly = app.synth();
  const templates = new Map(assembly.stacks.map((s) => [s.stackName, s.template as Template]));
  fs.rmSync(assembly.directory, { recursive: true, force: true });
  return templates;
}

const vpcsIn = (templates: Iterable<Template>) =>
  [...templates].reduce(
    (n, t) => n + Object.values(t.Resources).filter((r) => r.Type === 'AWS::EC2::VPC').length,
    0,
  );

async function main(): Promise<number> {
  const flags = Object.fromEntries(Object.keys(USAGE_FLAGS).map((f) => [f, { type: 'string' as const }]));
  const { values } = parseCli('cost', USAGE_TEXT, {
    catalog: { type: 'string' },
    chart: { type: 'string' },
    prices: { type: 'string' },
    ...flags,
  });
  const v = values as Record<string, string | undefined>;
  const usage: Record<string, number> = { ...DEFAULT_USAGE };
  for (const [flag, key] of Object.entries(USAGE_FLAGS)) {
    if (v[flag] === undefined) continue;
    const n = Number(v[flag]);
    if (!(n >= 0) || !Number.isFinite(n)) {
      console.error(`cost: --${flag} must be a number 0 or more (got "${v[flag]}")\n\n${USAGE_TEXT}`);
      return 2;
    }
    usage[key] = n;
  }
  const table = JSON.parse(
    fs.readFileSync(v.prices ?? path.join(ROOT, 'lib', 'prices', 'us-east-1.json'), 'utf8'),
  ) as PriceTable;
  const catalog = loadCatalog(v.catalog ?? path.join(ROOT, 'tenants.json'), '--catalog <path>');
  const templates = synthesize(catalog);
  // Probes, not part of the catalog's report: one silo of each cost profile, and both shared cells as built for
  // no tenant yet (resized per N by cellSizeFor for the growth table).
  const probeId = (profile: SiloProfileName) => `cost-silo-${profile}`;
  // One synth per shared-cell profile (a fleet has one Pool and one Bridge stack); the first adds the silos.
  const cellProbes = new Map<SharedCellProfileName, Map<string, Template>>();
  for (const cellProfile of SHARED_CELL_PROFILES) {
    const first = cellProbes.size === 0;
    cellProbes.set(
      cellProfile,
      synthesize(
        parseCatalog(
          {
            tenants: first
              ? SILO_PROFILES.map((profile) => ({
                  id: probeId(profile),
                  name: `cost probe (${profile})`,
                  model: 'silo',
                  settings: { profile },
                }))
              : [],
            sharedCells: {
              pool: { plannedTenants: 0, profile: cellProfile },
              bridge: { plannedTenants: 0, profile: cellProfile },
            },
          },
          'cost probes',
        ),
      ),
    );
  }
  const probes = cellProbes.get(SHARED_CELL_PROFILES[0])!;
  const price = (
    stack: string,
    template: Template,
    u: Usage,
    context: { tenants?: number; vpcs?: number } = {},
  ) => priceTemplate(stack, template, table, u, context);
  const assumed = usage as unknown as Usage;
  const vpcs = vpcsIn(templates.values());
  const lines = new Map<string, CostLine[]>();
  for (const [stack, template] of templates) {
    lines.set(
      stack,
      price(
        stack,
        template,
        assumed,
        stack === STACK_NAMES.platform ? { tenants: catalog.tenants.length, vpcs } : {},
      ),
    );
  }

  console.log(
    `Monthly cost of the fleet in ${catalog.source}, ${table.region} list prices of ${table.date} (${table.currency}, ${table.hoursPerMonth} h a month)`,
  );
  console.log(`Prices: ${table.source}`);
  console.log(
    `Usage assumptions: ${Object.entries(USAGE_FLAGS)
      .map(([f, k]) => `--${f} ${usage[k]}`)
      .join(', ')}\n`,
  );
  console.log('| stack | monthly | of which usage-driven | biggest lines |');
  console.log('|---|---|---|---|');
  for (const [stack, l] of [...lines].sort((a, b) => total(b[1]) - total(a[1]))) {
    const u = total(l.filter((x) => x.usage));
    console.log(
      `| ${stack} | ${usd(total(l))} | ${usd(u)} | ${biggest(l)
        .map((b) => `${b.what} ${usd(b.monthly)}`)
        .join('; ')} |`,
    );
  }
  const shared = (name: string) => total(lines.get(name) ?? []);
  const platform = shared(STACK_NAMES.platform) + shared(STACK_NAMES.onboarding);
  const fleetTotal = [...lines.values()].reduce((s, l) => s + total(l), 0);
  // Platform + Onboarding serving `n` VPCs (the address manager bills the addresses it watches in them).
  const platformFor = (tenants: number, vpcCount: number) =>
    total(
      price(STACK_NAMES.platform, templates.get(STACK_NAMES.platform)!, assumed, { tenants, vpcs: vpcCount }),
    ) + shared(STACK_NAMES.onboarding);
  const cellsBuilt = [STACK_NAMES.pool, STACK_NAMES.bridge].filter((n) => templates.has(n));
  console.log(
    `\nWhole fleet: ${usd(fleetTotal)} a month. Empty fleet (Platform + Onboarding, no tenant, no cell): ${usd(platformFor(0, 0))}.` +
      ` Shared cells built: ${cellsBuilt.length ? cellsBuilt.join(', ') : 'none'} (a cell exists only when a tenant uses it or the catalog plans it).`,
  );

  console.log(
    '\n| tenant | model | its own stack | its share of its shared cell | its share of Platform + Onboarding | monthly |',
  );
  console.log('|---|---|---|---|---|---|');
  const inCell = (model: string) => catalog.tenants.filter((t) => t.model === model).length;
  const byModel = new Map<string, number>();
  for (const t of catalog.tenants) {
    const own = shared(tenantStackName(t.id));
    const cell =
      t.model === 'silo'
        ? 0
        : shared(t.model === 'pool' ? STACK_NAMES.pool : STACK_NAMES.bridge) / inCell(t.model);
    const share = platform / catalog.tenants.length;
    byModel.set(t.model, (byModel.get(t.model) ?? 0) + own + cell + share);
    console.log(
      `| ${t.id}${t.silo ? ` (${t.silo.profile})` : ''} | ${t.model} | ${usd(own)} | ${usd(cell)} | ${usd(share)} | ${usd(own + cell + share)} |`,
    );
  }
  console.log(
    `\nBy model: ${[...byModel].map(([m, c]) => `${m} ${usd(c)}`).join(', ')} (shared cells are attributed to their tenants equally).`,
  );

  // One silo of each cost profile, with the usage assumptions and idle.
  console.log('\nSilo cost profiles (one silo, its own stack only):\n');
  console.log(
    '| profile | with the usage assumptions | idle (no traffic, database paused) | biggest lines when idle |',
  );
  console.log('|---|---|---|---|');
  const siloOf = (profile: SiloProfileName, u: Usage) =>
    price(tenantStackName(probeId(profile)), probes.get(tenantStackName(probeId(profile)))!, u);
  for (const profile of SILO_PROFILES) {
    const idle = siloOf(profile, IDLE_USAGE);
    console.log(
      `| ${profile} | ${usd(total(siloOf(profile, assumed)))} | ${usd(total(idle))} | ${biggest(idle, 4)
        .map((b) => `${b.what} ${usd(b.monthly)}`)
        .join('; ')} |`,
    );
  }

  // Cost per tenant as the fleet grows: a model's N tenants, with Platform and Onboarding shared by them.
  const series: Record<string, { tenants: number; perTenant: number }[]> = {};
  for (const n of SIZES) {
    for (const profile of SILO_PROFILES) {
      (series[`silo (${profile})`] ??= []).push({
        tenants: n,
        perTenant: total(siloOf(profile, assumed)) + platformFor(n, n) / n,
      });
    }
    for (const cellProfile of SHARED_CELL_PROFILES) {
      for (const [model, cellName] of [
        ['pool', STACK_NAMES.pool],
        ['bridge', STACK_NAMES.bridge],
      ] as const) {
        const probe = cellProbes.get(cellProfile)!.get(cellName)!;
        const sized = total(price(cellName, resizeCell(probe, model, n, cellProfile), assumed));
        const name = cellProfile === 'standard' ? model : `${model} (${cellProfile})`;
        (series[name] ??= []).push({ tenants: n, perTenant: sized / n + platformFor(n, 1) / n });
      }
    }
  }
  console.log(
    '\nMonthly cost per tenant as the fleet grows (N tenants of one model; Platform + Onboarding shared by them):\n',
  );
  console.log(`| model | ${SIZES.map((n) => `${n.toLocaleString('en-US')} tenants`).join(' | ')} |`);
  console.log(`|---|${SIZES.map(() => '---').join('|')}|`);
  for (const [model, points] of Object.entries(series)) {
    console.log(`| ${model} | ${points.map((p) => usd(p.perTenant)).join(' | ')} |`);
  }
  const sizes = (model: SharedModel, cellProfile: SharedCellProfileName) =>
    SIZES.map((n) => {
      const s = cellSizeFor(model, n, cellProfile);
      return `${n}: ${s.instanceClass} Multi-AZ, ${s.storageGb} GB, ${s.tasks} tasks`;
    }).join('; ');
  const egress = {
    'nat-per-az': 'a NAT gateway per AZ',
    'task-public-ip': 'no NAT gateway, a public address per task',
  };
  console.log('\nShared cells sized per N (lib/cell-size.ts cellSizeFor), by profile:');
  for (const cellProfile of SHARED_CELL_PROFILES) {
    console.log(
      `- ${cellProfile} (${egress[cellSizeFor('pool', 0, cellProfile).egress]}): pool ${sizes('pool', cellProfile)}. Bridge ${sizes('bridge', cellProfile)}.`,
    );
  }
  const chart = v.chart ?? path.join(ROOT, 'cdk.out', 'cost-per-tenant.svg');
  fs.mkdirSync(path.dirname(chart), { recursive: true });
  fs.writeFileSync(chart, unitCostChart(series));
  console.log(`\nChart: ${chart}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`cost: ${(e as Error).message}`);
    process.exit(1);
  },
);
