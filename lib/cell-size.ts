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

export interface CellSize {
  /** RDS instance class, with the `db.` prefix. */
  readonly instanceClass: string;
  /** The storage the cell is expected to use (priced by npm run cost); it starts at 50 GB and autoscales. */
  readonly storageGb: number;
  /** The API service's minimum task count (autoscaling adds up to 4x). */
  readonly tasks: number;
}

const CLASS_STEPS: Readonly<Record<SharedModel, readonly (readonly [number, string])[]>> = {
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

/** Every shared cell starts with this much storage; autoscaling grows it (RDS can never shrink it). */
export const CELL_STORAGE_FLOOR_GIB = 50;

export function cellSizeFor(model: SharedModel, tenants: number): CellSize {
  const instanceClass = CLASS_STEPS[model].find(([upTo]) => tenants <= upTo)![1];
  return {
    instanceClass,
    // 0.2 GB per tenant, never under the 50 GB every cell starts with.
    storageGb: Math.max(CELL_STORAGE_FLOOR_GIB, Math.ceil(tenants * 0.2)),
    tasks: Math.max(2, Math.ceil(tenants / 250)),
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
