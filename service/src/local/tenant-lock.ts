/**
 * One whole-tenant operation at a time on the local platform: move, restore --force, abort-move, purge and
 * offboarding each hold the tenant's lock (db/mobility/lock.ts) for as long as they run.
 */
import { holdTenantLock, TenantBusy } from '../../../db/mobility';
import type { LocalPlatform } from './platform';

/** A refused operation: nothing was changed. */
export class MobilityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MobilityError';
  }
}

/**
 * Runs `work` holding the tenant's operation lock (db/mobility/lock.ts, in the local pool cell's database): every
 * command that changes a tenant's data or status as a whole (move, restore --force, abort-move, purge, offboard)
 * takes it, so two never interleave. `held()` checks the lock's connection is still alive.
 */
export async function withTenantLock<T>(
  platform: LocalPlatform,
  tenantId: string,
  work: (held: () => Promise<void>) => Promise<T>,
): Promise<T> {
  const client = await platform.openMaster('pool', tenantId);
  try {
    let release: () => Promise<void>;
    try {
      release = await holdTenantLock(client, tenantId);
    } catch (e) {
      if (e instanceof TenantBusy) throw new MobilityError(e.message);
      throw e;
    }
    const held = async () => {
      try {
        await client.query('SELECT 1');
      } catch (e) {
        throw new MobilityError(
          `the operation on tenant "${tenantId}" lost its lock (its database connection ended: ${(e as Error).message}); it stops here`,
        );
      }
    };
    try {
      return await work(held);
    } finally {
      await release();
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}
