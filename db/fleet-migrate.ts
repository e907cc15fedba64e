/**
 * Fleet migrations: every target of every database (the pool schema, each bridge tenant's schema, each silo
 * database's schema) brought to a schema version by the one function the provisioner's custom resource runs
 * (migrateTarget), a target at a time per lock.
 *
 * - The plan reads each database's own record of its targets (tenancy.targets: one query per database), so it
 *   covers every tenant the database holds, pipeline-onboarded ones included, and changes nothing.
 * - Each target migrates in its own transaction under its lock, with lock_timeout: it never queues behind a long
 *   transaction (its own lock, or a table's), so tenants' traffic never waits behind a waiting migration; a lock
 *   timeout is retried with backoff, then the target is skipped with the reason (being onboarded or migrated
 *   elsewhere). Once it holds its tables, their traffic waits for its DDL and backfill (README: Releases).
 * - A canary wave goes first; the rest only if every canary target succeeded.
 * - Bounded concurrency: workers, each with one connection at a time (targets are ordered by database).
 * - One target's failure is recorded with its reason and does not stop the others. Versions are recorded per
 *   target as each one commits, so a rerun continues where a run stopped.
 */
import type { ClientBase } from 'pg';
import { LATEST_VERSION, MIGRATIONS, type Migration } from './migrations';
import { assertCompatible } from './migrations/compatibility';
import { FrozenTargetError, migrateTarget, RetiredTenantError, type MigrationTarget } from './migrate';
import { dataModel, type ModelOptions } from './models';
import { validateTenantId, type IsolationModel } from './naming';
import { ADMIN_SCHEMA, OWNER_ROLE } from './roles';
import { inTransaction } from './tx';

/** One database of the fleet, reached as its administrative (master) user. */
export interface FleetDatabase {
  /** How people name it: `pool cell`, `bridge cell`, `silo contoso`. */
  readonly name: string;
  readonly model: IsolationModel;
  /** The model options its tenants were provisioned with (silo runtime role, bridge naming key). */
  readonly options: ModelOptions;
  /** A silo database's tenant. */
  readonly tenantId?: string;
  connect(): Promise<ClientBase & { end(): Promise<void> }>;
}

export interface PlannedTarget {
  readonly database: FleetDatabase;
  /** tenancy.targets' key: `pool`, `bridge:<tenant>`, `silo`. */
  readonly target: string;
  /** The tenant the target belongs to (bridge, silo), for --canary and reports. */
  readonly tenantId?: string;
  readonly from: number;
  readonly to: number;
  readonly action: 'migrate' | 'current' | 'skip';
  /** The migrations that would run, by version and name. */
  readonly migrations: readonly string[];
  readonly reason?: string;
}

export interface TargetOutcome {
  readonly target: PlannedTarget;
  readonly result: 'done' | 'failed' | 'skipped';
  readonly reason?: string;
  readonly ms: number;
  readonly attempts: number;
}

export interface FleetOptions {
  /** Targets migrating at once. @default DEFAULT_CONCURRENCY */
  readonly concurrency?: number;
  /** The first wave: this many targets, or these tenant ids (and `pool`). @default 1 */
  readonly canary?: number | readonly string[];
  /** How long a target waits for a lock before the attempt fails (ms). @default 2000 */
  readonly lockTimeoutMs?: number;
  /** Attempts per target when a lock times out. @default 4 */
  readonly attempts?: number;
  /** The migrations (tests and bench:migrate add their own). @default MIGRATIONS */
  readonly migrations?: readonly Migration[];
  readonly onOutcome?: (outcome: TargetOutcome) => void;
  /** Backoff between attempts (ms, times the attempt number). @default 250 */
  readonly backoffMs?: number;
}

export interface FleetResult {
  readonly outcomes: readonly TargetOutcome[];
  /** Set when the canary wave failed: nothing after it was attempted. */
  readonly stoppedAfterCanary?: boolean;
  readonly ms: number;
}

/**
 * Four workers fit a db.t4g.medium (2 vCPUs, about 90 connections at 4 GiB): migrations are mostly catalog work
 * on one core each, and four leave the API's connections and CPU their share.
 */
export const DEFAULT_CONCURRENCY = 4;

/** The migration plan of every target of `databases` to `toVersion`. Reads only. */
export async function planFleet(
  databases: readonly FleetDatabase[],
  toVersion = LATEST_VERSION,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<PlannedTarget[]> {
  assertCompatible(migrations.filter((m) => m.version <= toVersion));
  if (!migrations.some((m) => m.version === toVersion)) {
    throw new Error(
      `schema version ${toVersion} does not exist: the migrations are ${migrations.map((m) => m.version).join(', ')}`,
    );
  }
  const plan: PlannedTarget[] = [];
  for (const database of databases) {
    let client;
    try {
      client = await database.connect();
    } catch (e) {
      plan.push({
        database,
        target: '(database)',
        tenantId: database.tenantId,
        from: 0,
        to: toVersion,
        action: 'skip',
        migrations: [],
        reason: `cannot connect to ${database.name}: ${(e as Error).message}`,
      });
      continue;
    }
    let rows: { target: string; version: number; status: string }[];
    try {
      // tenancy.targets is the owner's (no runtime role can read it).
      rows = await inTransaction(client, async () => {
        await client.query(`SET LOCAL ROLE ${OWNER_ROLE}`);
        const r = await client.query<{ target: string; version: number; status: string }>(
          `SELECT target, version, status FROM ${ADMIN_SCHEMA}.targets ORDER BY target`,
        );
        return r.rows;
      });
    } catch (e) {
      if ((e as { code?: string }).code !== '42P01') throw e;
      rows = []; // never bootstrapped: nothing to migrate
    } finally {
      await client.end();
    }
    for (const row of rows) {
      const tenantId = row.target.startsWith('bridge:')
        ? validateTenantId(row.target.slice('bridge:'.length), `${database.name}: tenancy.targets`)
        : database.tenantId;
      const pending = migrations.filter((m) => m.version > row.version && m.version <= toVersion);
      const base = { database, target: row.target, tenantId, from: row.version, to: toVersion };
      if (row.status === 'offboarded') {
        plan.push({
          ...base,
          action: 'skip',
          migrations: [],
          reason: 'offboarded with its data kept: migrated when restored',
        });
      } else if (row.version > toVersion) {
        plan.push({
          ...base,
          action: 'skip',
          migrations: [],
          reason: `already at ${row.version}, newer than ${toVersion}: downgrades are not supported`,
        });
      } else {
        plan.push({
          ...base,
          action: pending.length ? 'migrate' : 'current',
          migrations: pending.map((m) => `${m.version} ${m.name}`),
        });
      }
    }
  }
  return plan;
}

/** The MigrationTarget (schema, grantee, rendering) a planned target stands for. */
function migrationTargetOf(t: PlannedTarget): MigrationTarget {
  const model = dataModel(t.database.model);
  if (t.target === 'pool') return model.migrationTarget('', t.database.options);
  if (t.target.startsWith('bridge:')) return model.migrationTarget(t.tenantId!, t.database.options);
  if (t.target === 'silo') return model.migrationTarget(t.tenantId ?? '', t.database.options);
  throw new Error(`unknown migration target "${t.target}" in ${t.database.name}`);
}

/** Runs the plan's `migrate` targets: the canary wave, then the rest. */
export async function migrateFleet(
  plan: readonly PlannedTarget[],
  options: FleetOptions = {},
): Promise<FleetResult> {
  const started = Date.now();
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new Error(`concurrency must be a whole number from 1 to 64 (got ${options.concurrency})`);
  }
  const todo = plan.filter((t) => t.action === 'migrate');
  const canarySpec = options.canary ?? 1;
  const canary =
    typeof canarySpec === 'number'
      ? todo.slice(0, canarySpec)
      : todo.filter((t) => canarySpec.includes(t.tenantId ?? t.target));
  if (typeof canarySpec !== 'number') {
    const missing = canarySpec.filter((id) => !todo.some((t) => (t.tenantId ?? t.target) === id));
    if (missing.length) {
      throw new Error(
        `--canary names ${missing.join(', ')}, which have nothing to migrate (or do not exist)`,
      );
    }
  }
  const rest = todo.filter((t) => !canary.includes(t));
  const outcomes: TargetOutcome[] = [];
  const record = (o: TargetOutcome) => {
    outcomes.push(o);
    options.onOutcome?.(o);
  };
  await runWave(canary, concurrency, options, record);
  if (outcomes.some((o) => o.result !== 'done')) {
    return { outcomes, stoppedAfterCanary: true, ms: Date.now() - started };
  }
  await runWave(rest, concurrency, options, record);
  return { outcomes, ms: Date.now() - started };
}

async function runWave(
  targets: readonly PlannedTarget[],
  concurrency: number,
  options: FleetOptions,
  record: (o: TargetOutcome) => void,
): Promise<void> {
  // Targets of one database go to one worker in a row where possible, so a worker reuses its connection.
  const queue = [...targets].sort((a, b) => a.database.name.localeCompare(b.database.name));
  const worker = async () => {
    let open: { database: FleetDatabase; client: ClientBase & { end(): Promise<void> } } | undefined;
    try {
      for (let next = queue.shift(); next; next = queue.shift()) {
        if (open && open.database !== next.database) {
          await open.client.end().catch(() => undefined);
          open = undefined;
        }
        if (!open) {
          try {
            open = { database: next.database, client: await next.database.connect() };
            open.client.on?.('error', () => undefined);
          } catch (e) {
            const reason = `cannot connect to ${next.database.name}: ${(e as Error).message}`;
            record({ target: next, result: 'failed', reason, ms: 0, attempts: 1 });
            continue;
          }
        }
        const outcome = await migrateOne(open.client, next, options);
        if (outcome.connectionLost) {
          await open.client.end().catch(() => undefined);
          open = undefined;
        }
        record(outcome.outcome);
      }
    } finally {
      await open?.client.end().catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
}

async function migrateOne(
  client: ClientBase,
  target: PlannedTarget,
  options: FleetOptions,
): Promise<{ outcome: TargetOutcome; connectionLost?: boolean }> {
  const attempts = options.attempts ?? 4;
  const lockTimeoutMs = options.lockTimeoutMs ?? 2000;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      await inTransaction(client, async () => {
        await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
        await migrateTarget(client, migrationTargetOf(target), target.to, { migrations: options.migrations });
      });
      return { outcome: { target, result: 'done', ms: Date.now() - started, attempts: attempt } };
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === '55P03' && attempt < attempts) {
        await new Promise((r) => setTimeout(r, (options.backoffMs ?? 250) * attempt));
        continue;
      }
      const ms = Date.now() - started;
      if (code === '55P03') {
        return {
          outcome: {
            target,
            result: 'skipped',
            reason: `busy: a lock was held for ${attempts} attempts of ${lockTimeoutMs} ms (the tenant is being onboarded or migrated elsewhere, or a long transaction holds its tables); rerun to finish it`,
            ms,
            attempts: attempt,
          },
        };
      }
      if (e instanceof RetiredTenantError) {
        return {
          outcome: { target, result: 'skipped', reason: 'offboarded meanwhile', ms, attempts: attempt },
        };
      }
      // Frozen while its data moves (a move, a restore over it), or the silo a move out of it kept until a purge:
      // not a failure of the release; rerun after the move (a kept silo goes with its purge).
      if (e instanceof FrozenTargetError) {
        return { outcome: { target, result: 'skipped', reason: e.message, ms, attempts: attempt } };
      }
      return {
        outcome: { target, result: 'failed', reason: (e as Error).message, ms, attempts: attempt },
        connectionLost: code === undefined || code.startsWith('08') || code === '57P01',
      };
    }
  }
}
