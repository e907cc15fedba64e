/**
 * How a shared cell is sized for its tenant count (the README's "Shared cells" rule): its database instance
 * class and storage, and its API's minimum task count. Cells are Multi-AZ at every size. The rule assumes the
 * sample workload of `npm run bench:api` (small B2B tenants averaging well under one request a second each):
 * a fleet with heavier tenants plans for more with `sharedCells.<model>.plannedTenants` in the catalog.
 *
 * - pool: tenants share tables, so the database grows with total load, not with the tenant count: general-
 *   purpose Graviton classes.
 * - bridge: every backend caches the catalog entries of each schema it touched (README: sizing a bridge
 *   cell), so memory grows with the tenant count: memory-optimized classes from 100 tenants on.
 *
 * This module imports nothing from aws-cdk-lib: the cost report and the fleet share it.
 */
export type SharedModel = 'pool' | 'bridge';

/**
 * How a shared cell is built (`sharedCells.<model>.profile` in the catalog), with the same names and egress as
 * the silo profiles (lib/silo-profiles.ts):
 * - `standard` (the default): the API tasks in private subnets behind a NAT gateway per AZ; the pool database on
 *   general-purpose classes past 100 tenants.
 * - `production`: highly available too (Multi-AZ database, tasks in two AZs), without a NAT gateway: each task
 *   has a public address and a security group that admits only the load balancer (the provisioner goes out over
 *   IPv6 through an egress-only gateway), as the silo `production` profile; the pool database stays on burstable
 *   Graviton classes up to 1,000 tenants. The README's "Shared cell profiles" states the trade-offs.
 */
export const SHARED_CELL_PROFILES = ['standard', 'production'] as const;
export type SharedCellProfileName = (typeof SHARED_CELL_PROFILES)[number];
export const DEFAULT_SHARED_CELL_PROFILE: SharedCellProfileName = 'standard';

export interface CellSize {
  /** RDS instance class, with the `db.` prefix. */
  readonly instanceClass: string;
  /** The storage the cell is expected to use (priced by npm run cost); it starts at 50 GB and autoscales. */
  readonly storageGb: number;
  /** The API service's minimum task count (autoscaling adds up to 4x). */
  readonly tasks: number;
  /** How the API tasks and the provisioner reach AWS (the profile's; lib/silo-profiles.ts `SiloEgress`). */
  readonly egress: 'nat-per-az' | 'task-public-ip';
}

type Steps = readonly (readonly [number, string])[];

const CLASS_STEPS: Readonly<Record<SharedModel, Steps>> = {
  pool: [
    [100, 'db.t4g.medium'],
    [1000, 'db.m6g.large'],
    [3000, 'db.m6g.xlarge'],
    [Infinity, 'db.m6g.2xlarge'],
  ],
  bridge: [
    [100, 'db.t4g.medium'],
    [300, 'db.r6g.large'],
    [1000, 'db.r6g.xlarge'],
    [Infinity, 'db.r6g.2xlarge'],
  ],
};

/**
 * The production profile's pool database: burstable Graviton (T4g, which RDS runs in Unlimited mode: it may use
 * the whole CPU for as long as it needs, and CPU above the class's baseline is billed as surplus credits) up to
 * 1,000 tenants. db.t4g.large has the memory and vCPUs of db.m6g.large at 81% of its price; with the surplus
 * credits (`npm run cost -- --db-cpu`) it stays the cheaper of the two up to 50% average CPU, past which the cell
 * is undersized anyway. Past 1,000 tenants, the standard classes.
 */
const PRODUCTION_POOL_STEPS: Steps = [
  [100, 'db.t4g.medium'],
  [1000, 'db.t4g.large'],
  ...CLASS_STEPS.pool.slice(2),
];

/** Every shared cell starts with this much storage; autoscaling grows it (RDS can never shrink it). */
export const CELL_STORAGE_FLOOR_GIB = 50;

export function cellSizeFor(
  model: SharedModel,
  tenants: number,
  profile: SharedCellProfileName = DEFAULT_SHARED_CELL_PROFILE,
): CellSize {
  const production = profile === 'production';
  const steps = production && model === 'pool' ? PRODUCTION_POOL_STEPS : CLASS_STEPS[model];
  const instanceClass = steps.find(([upTo]) => tenants <= upTo)![1];
  return {
    instanceClass,
    // 0.2 GB per tenant, never under the 50 GB every cell starts with.
    storageGb: Math.max(CELL_STORAGE_FLOOR_GIB, Math.ceil(tenants * 0.2)),
    tasks: Math.max(2, Math.ceil(tenants / 250)),
    egress: production ? 'task-public-ip' : 'nat-per-az',
  };
}

/** Connections one API task's pool opens at most (service/src/db-pool.ts, DB_POOL_SIZE). */
export const API_POOL_SIZE = 20;

/**
 * The slot roles a shared cell's runtime role gets (db/slots.ts: one login role per connection): twice the
 * connections its API can open at its largest (autoscaling's 4x its minimum tasks, doubled while a deployment
 * runs the old tasks beside the new: ECS's maximumPercent of 200), so a new connection seldom draws a slot in use,
 * and 16 for the mobility runner's.
 */
export function runtimeSlotsFor(apiMinTasks: number): number {
  return 2 * (2 * 4 * apiMinTasks * API_POOL_SIZE) + 16;
}
