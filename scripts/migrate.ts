/**
 * npm run migrate [-- --plan] [-- --to <version>] [-- --concurrency <n>] [-- --canary <n|id,id>]
 *
 * Brings every target of the local platform (the pool schema, every bridge schema, every silo database) to the
 * latest schema version (db/fleet-migrate.ts: the custom resource's own migrateTarget, one target per lock, a
 * canary wave first). Works whether or not `npm run local` is running.
 */
import {
  planFleet,
  migrateFleet,
  DEFAULT_CONCURRENCY,
  type PlannedTarget,
  type TargetOutcome,
} from '../db/fleet-migrate';
import { LATEST_VERSION } from '../db/migrations';
import { openLocalPlatform } from '../service/src/local/admin';
import { LOCAL_DIR } from '../service/src/local/platform';
import { localPgPort } from '../service/src/local/instance';
import { awsErrorMessage, parseCli } from './cli';
import {
  allCurrent,
  CloudFormationClient,
  findProvisioners,
  LambdaClient,
  migrateAwsFleet,
  resultLines,
} from './migrate-aws';

const USAGE = `usage: npm run migrate [-- --plan] [-- --to <version>] [-- --concurrency <n>] [-- --canary <n|ids>]

Brings every tenant's schema on the local platform (pool, every bridge schema, every silo database) to the
latest version: a canary wave first, then the rest, a target at a time per lock.
  --plan              list every target with its version and what would run; change nothing
  --to <version>      the schema version to reach (default: the latest, ${LATEST_VERSION})
  --concurrency <n>   targets migrating at once (default ${DEFAULT_CONCURRENCY}, fits a db.t4g.medium)
  --canary <n|ids>    the first wave: how many targets, or which tenant ids (comma-separated); default 1
  --aws               the deployed fleet instead: every cell's and silo's provisioner migrates its own database
                      (AWS credentials and region from the environment, as for cdk deploy)
  --help              this text
Exit code: 0 when every target is current; 1 when any target failed or was skipped (rerun to continue).`;

/** Progress on a terminal (one line redrawn), or a plain line every 5 s and at the end (CI, logs). */
export class Progress {
  private done = 0;
  private failed = 0;
  private skipped = 0;
  private readonly started = Date.now();
  private lastLine = 0;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  record(o: TargetOutcome): void {
    if (o.result === 'done') this.done++;
    else if (o.result === 'failed') this.failed++;
    else this.skipped++;
    if (o.result === 'failed')
      this.print(`failed: ${o.target.database.name} ${o.target.target}: ${o.reason}`);
    this.render(false);
  }

  finish(): void {
    this.render(true);
  }

  private line(): string {
    const finished = this.done + this.failed + this.skipped;
    const seconds = (Date.now() - this.started) / 1000;
    const rate = seconds > 0 ? finished / seconds : 0;
    const eta = rate > 0 ? (this.total - finished) / rate : 0;
    return `${finished}/${this.total} targets: ${this.done} done, ${this.failed} failed, ${this.skipped} skipped; ${rate.toFixed(1)}/s; ${seconds.toFixed(1)} s elapsed${finished < this.total ? `, about ${eta.toFixed(0)} s left` : ''}`;
  }

  private render(final: boolean): void {
    if (this.out.isTTY) {
      const width = 24;
      const finished = this.done + this.failed + this.skipped;
      const filled = this.total ? Math.round((finished / this.total) * width) : width;
      this.out.write(
        `\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.line()}${final ? '\n' : ''}`,
      );
    } else if (final || Date.now() - this.lastLine >= 5000) {
      this.lastLine = Date.now();
      this.out.write(`migrate: ${this.line()}\n`);
    }
  }

  private print(text: string): void {
    this.out.write(this.out.isTTY ? `\r\x1b[K${text}\n` : `migrate: ${text}\n`);
  }
}

function planTable(plan: readonly PlannedTarget[]): string {
  const rows = plan.map(
    (t) =>
      `| ${t.database.name} | ${t.target} | ${t.from} | ${t.to} | ${t.action} | ${t.action === 'migrate' ? t.migrations.join('; ') : (t.reason ?? 'nothing to run')} |`,
  );
  return ['| database | target | at | to | action | runs |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

function summary(plan: readonly PlannedTarget[], outcomes: readonly TargetOutcome[], ms: number): string {
  const count = (r: TargetOutcome['result']) => outcomes.filter((o) => o.result === r).length;
  const lines = [
    `| targets | done | failed | skipped (busy, offboarded, frozen) | already current | not attempted | time |`,
    '|---|---|---|---|---|---|---|',
    `| ${plan.length} | ${count('done')} | ${count('failed')} | ${count('skipped') + plan.filter((t) => t.action === 'skip').length} | ${plan.filter((t) => t.action === 'current').length} | ${plan.filter((t) => t.action === 'migrate').length - outcomes.length} | ${(ms / 1000).toFixed(1)} s |`,
  ];
  const bad = [
    ...outcomes.filter((o) => o.result !== 'done'),
    ...plan
      .filter((t) => t.action === 'skip')
      .map((t) => ({ target: t, result: 'skipped', reason: t.reason })),
  ];
  if (bad.length) {
    lines.push(
      '',
      'not current:',
      ...bad.map((o) => `  ${o.result}: ${o.target.database.name} ${o.target.target}: ${o.reason}`),
    );
  }
  const slowest = [...outcomes]
    .filter((o) => o.result === 'done')
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 5);
  if (slowest.length) {
    lines.push(
      '',
      'slowest:',
      ...slowest.map(
        (o) =>
          `  ${o.ms} ms  ${o.target.database.name} ${o.target.target} (${o.attempts} attempt${o.attempts > 1 ? 's' : ''})`,
      ),
    );
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { values } = parseCli('migrate', USAGE, {
    plan: { type: 'boolean' },
    to: { type: 'string' },
    concurrency: { type: 'string' },
    canary: { type: 'string' },
    aws: { type: 'boolean' },
  });
  const whole = (flag: string, v: string | undefined, fallback: number) => {
    if (v === undefined) return fallback;
    if (!/^[0-9]+$/.test(v)) throw new UsageError(`--${flag} must be a whole number (got "${v}")`);
    return Number(v);
  };
  const to = whole('to', values.to, LATEST_VERSION);
  const concurrency = whole('concurrency', values.concurrency, DEFAULT_CONCURRENCY);
  const canary =
    values.canary === undefined
      ? 1
      : /^[0-9]+$/.test(values.canary)
        ? Number(values.canary)
        : values.canary
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
  if (values.aws) return migrateAws({ plan: Boolean(values.plan), to, concurrency, canary });
  const platform = await openLocalPlatform({
    dir: LOCAL_DIR,
    pgPort: localPgPort(LOCAL_DIR),
  });
  try {
    const plan = await planFleet(platform.fleetDatabases(), to);
    if (values.plan) {
      console.log(planTable(plan));
      const pending = plan.filter((t) => t.action === 'migrate').length;
      console.log(
        `\n${pending} of ${plan.length} targets would be migrated to version ${to}; nothing was changed.`,
      );
      return 0;
    }
    const todo = plan.filter((t) => t.action === 'migrate');
    const progress = new Progress(todo.length);
    const result = await migrateFleet(plan, { concurrency, canary, onOutcome: (o) => progress.record(o) });
    progress.finish();
    platform.recordSchemaVersions(
      result.outcomes.filter((o) => o.result === 'done').map((o) => ({ ...o.target })),
    );
    console.log(summary(plan, result.outcomes, result.ms));
    if (result.stoppedAfterCanary) {
      console.log(
        '\nthe canary wave did not pass: nothing else was attempted. Fix the failure above and rerun.',
      );
    }
    const current =
      plan.filter((t) => t.action === 'current').length +
      result.outcomes.filter((o) => o.result === 'done').length;
    return current === plan.length ? 0 : 1;
  } finally {
    await platform.stop();
  }
}

class UsageError extends Error {}

async function migrateAws(o: {
  plan: boolean;
  to: number;
  concurrency: number;
  canary: number | string[];
}): Promise<number> {
  const cfn = new CloudFormationClient({});
  const lambda = new LambdaClient({});
  const provisioners = await findProvisioners(cfn);
  if (provisioners.length === 0) {
    console.error(
      'migrate: no provisioner found (no Pool, Bridge or silo tenant stack is deployed in this account and region)',
    );
    return 1;
  }
  console.error(
    `migrate: ${provisioners.length} provisioners (${provisioners.map((p) => p.stack).join(', ')})`,
  );
  const event = {
    action: o.plan ? ('plan-fleet' as const) : ('migrate-fleet' as const),
    toVersion: o.to,
    concurrency: o.concurrency,
    canary: o.canary,
  };
  let finished = 0;
  const { results, stoppedAfterCells } = await migrateAwsFleet(provisioners, event, {
    lambda,
    onResult: (r) =>
      console.error(
        `migrate: ${++finished}/${provisioners.length} ${r.provisioner.stack}: ${r.report ? `${r.report.done} done, ${r.report.failed.length} failed, ${r.report.skipped.length} skipped` : `error: ${r.error}`}`,
      ),
  });
  console.log(resultLines(results).join('\n'));
  if (stoppedAfterCells)
    console.log('\nthe shared cells did not finish cleanly: no silo was attempted. Fix and rerun.');
  return allCurrent(results, o.plan) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`migrate: ${awsErrorMessage(e)}${e instanceof UsageError ? `\n\n${USAGE}` : ''}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
