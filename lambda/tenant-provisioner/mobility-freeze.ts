/**
 * A restore over a live tenant's data in AWS (`restore --aws --force`): the tenant held and frozen while its data
 * is replaced, as the local platform does it (service/src/local/mobility.ts), with the registry in DynamoDB.
 *
 *   registry: active -> `moving` (to its own model), with this run's token as the tenant's lock (a conditional
 *   write: refused while an onboarding workflow or another run holds the tenant; the API answers it 503)
 *   -> the tenant's operation lock in its database (db/mobility/lock.ts), held to the end
 *   -> freeze its writes (M1) -> wait for transactions older than the freeze (M2) -> the work (a safety export,
 *   then the replacement, which lifts the freeze in its own transaction) -> registry: active, lock released.
 *
 * Any failure before the replacement commits thaws the tenant where it was and sets it active again, with the
 * reason. If the thaw itself fails, or the function is cut off, the tenant stays `moving` with the reason, and
 * `abort` (npm run tenant -- abort-move --aws) thaws it once the database answers: it takes the same operation
 * lock first, so it never thaws a run that is still going.
 */
import { randomBytes } from 'crypto';
import type { Client } from 'pg';
import type { RegistryCondition, RegistryField, RegistryItem } from '../../contracts';
import { isConnectionFault } from '../../db/faults';
import { holdTenantLock, waitForOlderTransactions } from '../../db/mobility';
import { dataModel } from '../../db/models';
import type { Env } from './request';
import { ProvisioningInputError } from './request';

/** The lock a mobility run writes into a tenant's registry item: nothing else writes one with this prefix. */
export const MOBILITY_LOCK_PREFIX = 'aws-mobility:';

export interface FreezeDeps {
  connect(): Promise<Client>;
  registryEntry(tenantId: string): Promise<RegistryItem | undefined>;
  /** A conditional UpdateItem of the tenant's registry item: false when the condition did not hold. */
  updateRegistry(
    tenantId: string,
    set: Partial<Omit<RegistryItem, 'tenantId' | 'updatedAt'>>,
    remove: RegistryField[],
    condition: RegistryCondition,
  ): Promise<boolean>;
  log(message: string, fields: Record<string, unknown>): void;
}

/**
 * Runs `work` with the tenant held, frozen and its older transactions ended (see the module comment). `work`
 * must lift the freeze in the transaction that commits its change (restoreArchive with `thaw`); whatever
 * happens before that, the tenant is thawed and active again.
 */
export async function withFrozenTenant<T>(
  tenantId: string,
  env: Env,
  deps: FreezeDeps,
  work: () => Promise<T>,
): Promise<T> {
  const token = `${MOBILITY_LOCK_PREFIX}${randomBytes(8).toString('hex')}`;
  const held = await deps.updateRegistry(
    tenantId,
    { status: 'moving', movingTo: env.model, lock: token },
    ['failureReason'],
    { exists: true, statusIn: ['active'], unlocked: true },
  );
  if (!held) {
    const now = await deps.registryEntry(tenantId);
    throw new ProvisioningInputError(
      `tenant "${tenantId}" is ${now ? `${now.status}${now.lock ? `, held by ${now.lock}` : ''}` : 'not in the registry'}: a restore over its data needs it active with no other operation running (an onboarding workflow, or another restore); nothing was written`,
    );
  }
  const release = (set: Partial<RegistryItem>, remove: RegistryField[]) =>
    deps.updateRegistry(tenantId, set, remove, { lockedBy: token });
  const lockClient = await deps.connect().catch(async (e) => {
    await release({ status: 'active' }, ['lock', 'movingTo']);
    throw e;
  });
  let froze: 'no' | 'yes' | 'unknown' = 'no';
  let unlock: (() => Promise<void>) | undefined;
  try {
    // Between the read that admitted the run and the lock, only a holder of the lock could change the model.
    const entry = await deps.registryEntry(tenantId);
    if (entry?.model !== env.model || entry.lock !== token) {
      throw new Error(
        `tenant "${tenantId}" changed while this restore took it (now ${entry ? `${entry.model}, ${entry.status}` : 'gone'}): nothing was written`,
      );
    }
    unlock = await holdTenantLock(lockClient, tenantId);
    const client = await deps.connect();
    try {
      try {
        await dataModel(env.model).freeze(client, tenantId, {});
        froze = 'yes';
      } catch (e) {
        froze = isConnectionFault(e) ? 'unknown' : 'no';
        throw e;
      }
      await waitForOlderTransactions(client, dataModel(env.model).runtimeRole({}));
    } finally {
      await client.end().catch(() => undefined);
    }
    const result = await work();
    froze = 'no';
    if (!(await release({ status: 'active' }, ['lock', 'movingTo']))) {
      throw new Error(
        `tenant "${tenantId}"'s data was replaced, but its registry entry no longer carries this run's lock (${token}): another operation changed it; check it with npm run fleet -- pull`,
      );
    }
    return result;
  } catch (e) {
    await thaw(tenantId, env, deps, froze, (set, remove) => release(set, remove), e as Error);
    throw e;
  } finally {
    await unlock?.();
    await lockClient.end().catch(() => undefined);
  }
}

/** After a failure: thawed (if it may be frozen) and active, with the reason; or `moving` naming `abort`. */
async function thaw(
  tenantId: string,
  env: Env,
  deps: FreezeDeps,
  froze: 'no' | 'yes' | 'unknown',
  release: (set: Partial<RegistryItem>, remove: RegistryField[]) => Promise<boolean>,
  failure: Error,
): Promise<void> {
  try {
    if (froze !== 'no') {
      const client = await deps.connect();
      try {
        await dataModel(env.model).unfreeze(client, tenantId, {});
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  } catch (e) {
    const reason = `restore failed (${failure.message}), then the thaw failed (${(e as Error).message}): the tenant stays read-only and answers 503; run npm run tenant -- abort-move --aws --tenant ${tenantId} once the database answers`;
    await release({ failureReason: reason }, []).catch(() => undefined);
    failure.message = reason;
    return;
  }
  await release(
    { status: 'active', failureReason: `restore failed, the tenant's data is as it was: ${failure.message}` },
    ['lock', 'movingTo'],
  ).catch((e) => deps.log('could not set the tenant active again', { tenantId, error: String(e) }));
}

/**
 * `abort`: a restore over this cell's tenant that was cut off (the function timed out) or could not thaw. Takes
 * the tenant's operation lock (refused while a run still holds it), lifts the freeze, and sets the tenant active.
 * Only a tenant `moving` to this cell's own model under a mobility run's lock (or none) qualifies: an onboarding
 * workflow's lock, or a move to another model, is never touched.
 */
export async function abortFrozen(
  tenantId: string,
  env: Env,
  deps: FreezeDeps,
): Promise<{ thawed: true; previousLock?: string }> {
  const entry = await deps.registryEntry(tenantId);
  if (
    !entry ||
    entry.status !== 'moving' ||
    entry.model !== env.model ||
    entry.movingTo !== env.model ||
    (entry.lock !== undefined && !entry.lock.startsWith(MOBILITY_LOCK_PREFIX))
  ) {
    throw new ProvisioningInputError(
      `tenant "${tenantId}" is ${entry ? `${entry.model}, ${entry.status}${entry.lock ? `, held by ${entry.lock}` : ''}` : 'not in the registry'}: abort thaws only a restore over this ${env.model} cell's tenant that was interrupted; nothing was changed`,
    );
  }
  const lockClient = await deps.connect();
  try {
    const unlock = await holdTenantLock(lockClient, tenantId);
    try {
      const client = await deps.connect();
      try {
        await dataModel(env.model).unfreeze(client, tenantId, {});
      } finally {
        await client.end().catch(() => undefined);
      }
      const condition: RegistryCondition = entry.lock
        ? { lockedBy: entry.lock, statusIn: ['moving'] }
        : { unlocked: true, statusIn: ['moving'] };
      if (!(await deps.updateRegistry(tenantId, { status: 'active' }, ['lock', 'movingTo'], condition))) {
        throw new Error(
          `tenant "${tenantId}" was thawed, but its registry entry changed meanwhile: read it again and run abort once more if it is still moving`,
        );
      }
      deps.log('aborted', { tenantId, previousLock: entry.lock });
      return { thawed: true, previousLock: entry.lock };
    } finally {
      await unlock();
    }
  } finally {
    await lockClient.end().catch(() => undefined);
  }
}
