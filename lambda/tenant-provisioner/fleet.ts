/**
 * Fleet migrations in AWS: each cell's fleet runner (fleet-entry.ts: the pool cell's, the bridge cell's, each
 * silo's own, beside its custom-resource handler) migrates the targets of its own database when invoked with a
 * fleet event, with the runner `npm run migrate` uses locally
 * (db/fleet-migrate.ts), which runs the custom resource's own migrateTarget. `npm run migrate -- --aws` invokes
 * every provisioner of the fleet and adds up their reports (scripts/migrate-aws.ts).
 *
 *   { "action": "plan-fleet" | "migrate-fleet", "toVersion"?: 5, "concurrency"?: 4, "canary"?: 1 | ["acme"] }
 *
 * After each migrated target the registry item of each of its tenants says its new schemaVersion (the API answers
 * 503 for a tenant whose schema is older than it serves), and the run's counts go to CloudWatch as metrics
 * (embedded metric format, namespace TenantForge/Migrations, dimension Cell).
 */
import type { Client } from 'pg';
import { planFleet, migrateFleet, type FleetDatabase, type PlannedTarget } from '../../db/fleet-migrate';
import { LATEST_VERSION, MIGRATIONS } from '../../db/migrations';
import { ADMIN_SCHEMA, OWNER_ROLE } from '../../db/roles';
import { validateTenantId } from '../../db/naming';
import { tenantOfStackName } from '../../contracts';
import type { Env } from './request';
import { ProvisioningInputError } from './request';

export interface FleetEvent {
  readonly action: 'plan-fleet' | 'migrate-fleet';
  readonly toVersion?: number;
  readonly concurrency?: number;
  readonly canary?: number | readonly string[];
}

export interface FleetReport {
  readonly cell: string;
  readonly action: FleetEvent['action'];
  readonly toVersion: number;
  readonly targets: number;
  readonly current: number;
  readonly done: number;
  readonly failed: readonly { target: string; reason: string }[];
  readonly skipped: readonly { target: string; reason: string }[];
  readonly plan?: readonly { target: string; from: number; action: string; runs: readonly string[] }[];
  readonly stoppedAfterCanary: boolean;
  readonly ms: number;
}

export interface FleetDeps {
  connect(): Promise<Client>;
  /** Sets a tenant's registry item's schemaVersion (returns false when the item is not there). */
  recordVersion(tenantId: string, version: number): Promise<boolean>;
  log(message: string, fields: Record<string, unknown>): void;
}

export function isFleetEvent(event: unknown): event is FleetEvent {
  return typeof event === 'object' && event !== null && 'action' in event && !('RequestType' in event);
}

/** Validates a fleet event's fields; the error names the field and the fix. */
export function parseFleetEvent(event: FleetEvent): Required<
  Pick<FleetEvent, 'action' | 'toVersion' | 'concurrency'>
> & {
  canary: number | readonly string[];
} {
  const bad = (field: string, fix: string) =>
    new ProvisioningInputError(
      `fleet event field "${field}" is ${JSON.stringify((event as unknown as Record<string, unknown>)[field])}: ${fix}`,
    );
  if (event.action !== 'plan-fleet' && event.action !== 'migrate-fleet') {
    throw bad('action', 'use "plan-fleet" (lists, changes nothing) or "migrate-fleet"');
  }
  const toVersion = event.toVersion ?? LATEST_VERSION;
  if (!MIGRATIONS.some((m) => m.version === toVersion)) {
    throw bad('toVersion', `this provisioner knows versions ${MIGRATIONS.map((m) => m.version).join(', ')}`);
  }
  const concurrency = event.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) {
    throw bad('concurrency', 'a whole number from 1 to 16');
  }
  const canary = event.canary ?? 1;
  if (Array.isArray(canary)) {
    canary.forEach((id) => validateTenantId(id, 'fleet event field "canary"'));
  } else if (!Number.isInteger(canary) || (canary as number) < 0) {
    throw bad('canary', 'how many targets go first (a whole number), or which tenant ids (an array)');
  }
  return { action: event.action, toVersion, concurrency, canary };
}

/** This provisioner's database as a fleet database: its cell, or (silo) its tenant's own. */
export function fleetDatabaseOf(env: Env, connect: () => Promise<Client>): FleetDatabase {
  const siloTenant = env.model === 'silo' ? tenantOfStackName(env.ownStack) : undefined;
  return {
    name: siloTenant ? `silo ${siloTenant}` : `${env.model} cell`,
    model: env.model,
    options: {},
    tenantId: siloTenant,
    connect,
  };
}

export async function runFleetEvent(event: FleetEvent, env: Env, deps: FleetDeps): Promise<FleetReport> {
  const parsed = parseFleetEvent(event);
  const database = fleetDatabaseOf(env, deps.connect);
  const started = Date.now();
  const plan = await planFleet([database], parsed.toVersion);
  const base = {
    cell: database.name,
    action: parsed.action,
    toVersion: parsed.toVersion,
    targets: plan.length,
    current: plan.filter((t) => t.action === 'current').length,
  };
  const planSkips = plan
    .filter((t) => t.action === 'skip')
    .map((t) => ({ target: t.target, reason: t.reason ?? 'skipped' }));
  if (parsed.action === 'plan-fleet') {
    return {
      ...base,
      done: 0,
      failed: [],
      skipped: planSkips,
      plan: plan.map((t) => ({ target: t.target, from: t.from, action: t.action, runs: t.migrations })),
      stoppedAfterCanary: false,
      ms: Date.now() - started,
    };
  }
  // Each migrated target's tenants are recorded as it finishes (a run cut short by the function's timeout keeps
  // what it did), and so are targets already current (a rerun after such a cut records what the cut run missed).
  const record = async (target: PlannedTarget) => {
    for (const tenantId of await tenantsOf(target, deps).catch(() => [] as string[])) {
      try {
        await deps.recordVersion(tenantId, target.to);
      } catch (e) {
        deps.log('could not record the schema version', {
          tenantId,
          target: target.target,
          error: String(e),
        });
      }
    }
  };
  const recording: Promise<void>[] = plan.filter((t) => t.action === 'current').map(record);
  // Canary tenants named for the fleet that this database does not hold: no canary wave here (the CLI runs the
  // shared cells, canaries included, before any silo).
  const canary = Array.isArray(parsed.canary)
    ? parsed.canary.filter((id) => plan.some((t) => t.action === 'migrate' && t.tenantId === id))
    : parsed.canary;
  const result = await migrateFleet(plan, {
    concurrency: parsed.concurrency,
    canary: Array.isArray(canary) && canary.length === 0 ? 0 : canary,
    onOutcome: (o) => {
      deps.log('target', {
        target: o.target.target,
        result: o.result,
        ms: o.ms,
        attempts: o.attempts,
        reason: o.reason,
      });
      if (o.result === 'done') recording.push(record(o.target));
    },
  });
  await Promise.all(recording);
  const report: FleetReport = {
    ...base,
    done: result.outcomes.filter((o) => o.result === 'done').length,
    failed: result.outcomes
      .filter((o) => o.result === 'failed')
      .map((o) => ({ target: o.target.target, reason: o.reason ?? 'failed' })),
    skipped: [
      ...planSkips,
      ...result.outcomes
        .filter((o) => o.result === 'skipped')
        .map((o) => ({ target: o.target.target, reason: o.reason ?? 'skipped' })),
    ],
    stoppedAfterCanary: result.stoppedAfterCanary ?? false,
    ms: Date.now() - started,
  };
  // CloudWatch metrics from the log line (embedded metric format): no PutMetricData permission needed.
  console.log(
    JSON.stringify({
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          {
            Namespace: 'TenantForge/Migrations',
            Dimensions: [['Cell']],
            Metrics: ['TargetsDone', 'TargetsFailed', 'TargetsSkipped', 'TargetsCurrent'].map((Name) => ({
              Name,
              Unit: 'Count',
            })),
          },
        ],
      },
      Cell: report.cell,
      TargetsDone: report.done,
      TargetsFailed: report.failed.length,
      TargetsSkipped: report.skipped.length,
      TargetsCurrent: report.current,
    }),
  );
  return report;
}

/** The tenants a migrated target serves: a bridge schema's or a silo's one tenant; the pool schema's every tenant. */
async function tenantsOf(t: PlannedTarget, deps: FleetDeps): Promise<string[]> {
  if (t.target !== 'pool') return t.tenantId ? [t.tenantId] : [];
  const client = await deps.connect();
  try {
    const r = (await client.query(
      `BEGIN; SET LOCAL ROLE ${OWNER_ROLE}; SELECT tenant_id FROM ${ADMIN_SCHEMA}.pool_tenants ORDER BY tenant_id; COMMIT`,
    )) as unknown as { rows: { tenant_id: string }[] }[];
    return r[2].rows.map((row) => row.tenant_id);
  } finally {
    await client.end();
  }
}
