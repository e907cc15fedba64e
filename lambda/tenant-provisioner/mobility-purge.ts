/**
 * Purging the copy a move kept (lambda/tenant-provisioner/mobility-move.ts moved the tenant out of this cell), for the
 * onboarding workflow's execution of an approver's `purge` request (lib/constructs/onboarding/purge.ts).
 */
import { type RegistryItem } from '../../contracts';
import { dataModel, emptySilo } from '../../db/models';
import { deleteTenantArchives } from './archives';
import type { ApprovalDeps } from './mobility-approval';
import { startedAs } from './workflow-checks';
import type { MobilityDeps, MobilityReport } from './mobility';
import { reportWithoutData, THAW_WAIT_MS, waitForTenantLock, withClient } from './mobility-replace';
import type { Env } from './request';
import { ProvisioningInputError } from './request';

/**
 * `purge` (the runner of the cell a move left, for the workflow's execution of an approver's `purge` request): the
 * tenant's kept place in this cell removed (a kept silo's schema emptied, before the workflow's deploys remove the
 * silo), with every version of its archives in this cell's bucket (the move's export among them), so no copy of the
 * tenant stays in the cell it left. Idempotent.
 */
export async function purgeKeptCopy(
  tenantId: string,
  execution: string,
  env: Env,
  deps: MobilityDeps,
): Promise<MobilityReport> {
  const started = Date.now();
  const approved = () => expectPurgeHeld(tenantId, execution, env, deps);
  await approved();
  const lockClient = await deps.connect();
  let archives: number;
  try {
    const release = await waitForTenantLock(lockClient, tenantId, THAW_WAIT_MS);
    try {
      await approved();
      // A silo's schema is emptied (its database goes with the purge's deploys, and keeps no rows in its final
      // snapshot); a shared cell's place is removed.
      await withClient(deps, (c) =>
        env.model === 'silo' ? emptySilo(c) : dataModel(env.model).offboard(c, tenantId, 'destroy', {}),
      );
      archives = await deleteTenantArchives(deps.bucket, tenantId, deps.s3);
    } finally {
      await release();
    }
  } finally {
    await lockClient.end().catch(() => undefined);
  }
  deps.log('purged the copy a move kept', { tenantId, execution, archives });
  return reportWithoutData('purge', tenantId, env, deps, started);
}

/**
 * The registry says the workflow's `execution` holds the tenant to purge the copy a move kept in this cell (the
 * tenant active in the other cell), and Step Functions says the execution was started by the entry for that.
 */
async function expectPurgeHeld(
  tenantId: string,
  execution: string,
  env: Env,
  deps: ApprovalDeps,
): Promise<RegistryItem> {
  const entry = await deps.registryEntry(tenantId);
  const refuse = (why: string) =>
    new ProvisioningInputError(
      `tenant "${tenantId}"'s copy in this ${env.model} cell is not being purged by ${execution}: ${why}; nothing was removed`,
    );
  if (!entry) throw refuse(`the tenant registry (${env.registryTable}) has no such tenant`);
  if (entry.lock !== execution)
    throw refuse(entry.lock ? `it is held by ${entry.lock}` : 'no execution holds it');
  if (entry.purgeCopy !== env.model || entry.keptCopy !== env.model) {
    throw refuse(
      `its request purges ${entry.purgeCopy ?? 'nothing'}, and its kept copy is ${entry.keptCopy ?? 'none'}`,
    );
  }
  // The tenant itself is served by the other cell: never its live place.
  if (entry.model === env.model || (entry.status !== 'active' && entry.status !== 'offboarded')) {
    throw refuse(`it is ${entry.status} in ${entry.model}`);
  }
  const started = await startedAs(execution, env, deps, refuse);
  const t = started?.tenant;
  if (started?.action !== 'purge' || t?.tenantId !== tenantId || t?.purgeCopy !== env.model) {
    throw refuse(`the execution was not started to purge this tenant's ${env.model} copy`);
  }
  return entry;
}
