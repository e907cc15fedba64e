/**
 * One data operation (export-and-replace, move, abort) per tenant at a time. The lock is a row lock in
 * tenancy.locks (no runtime role can see or take it), held by a connection of the operation for as long as it
 * runs: a second operation is refused at once, naming the tenant; if the process running the first one dies, its
 * connection ends and the lock with it.
 */
import type { ClientBase } from 'pg';
import { sql } from '../sql';
import { exec, lockTarget } from '../tx';

export class TenantBusy extends Error {
  constructor(tenantId: string) {
    super(
      `another export-and-replace, move or abort of tenant "${tenantId}" is running (another process holds its lock): wait for it to finish`,
    );
    this.name = 'TenantBusy';
  }
}

/** Takes the tenant's operation lock on `client` (a connection of its own); resolves to its release. */
export async function holdTenantLock(client: ClientBase, tenantId: string): Promise<() => Promise<void>> {
  await client.query('BEGIN');
  try {
    await exec(client, sql`SELECT set_config('lock_timeout', '200ms', true)`);
    await exec(client, lockTarget(`mobility:${tenantId}`));
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((e as { code?: string }).code === '55P03') throw new TenantBusy(tenantId);
    throw e;
  }
  return async () => {
    await client.query('COMMIT').catch(() => undefined);
  };
}
