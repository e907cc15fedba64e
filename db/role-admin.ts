/**
 * Role-admin buckets for bridge tenant roles.
 *
 * On PostgreSQL 16+, a non-superuser CREATEROLE user (the RDS master) becomes an ADMIN member of every role
 * it creates, and every later GRANT it makes walks that membership list: with thousands of tenant roles,
 * granting one took 0.3 ms at 0 tenants and 22 ms at 5,000 (bench/db.ts). So tenant roles are created and
 * administered by one of 64 NOLOGIN CREATEROLE "role admin" roles, chosen by a hash of the role name; each
 * holds 1/64th of the memberships, and the master only SETs ROLE to them inside the transaction.
 */
import { createHash } from 'crypto';
import type { ClientBase } from 'pg';
import { ident, sql } from './sql';
import { ensureRole, exec, roleExists, serverVersion } from './tx';

export const ROLE_ADMIN_BUCKETS = 64;
const roleAdminName = (bucket: number) => `tenant_role_admin_${String(bucket).padStart(2, '0')}`;

export function roleAdminFor(role: string): string {
  return roleAdminName(createHash('sha256').update(role).digest().readUInt16BE(0) % ROLE_ADMIN_BUCKETS);
}

/** Inside a transaction: act as the role admin of `role` (PostgreSQL 16+; before that, as the master itself). */
export async function actAsRoleAdmin(client: ClientBase, role: string): Promise<void> {
  if ((await serverVersion(client)) < 160000) return;
  const admin = roleAdminFor(role);
  if (!(await roleExists(client, admin))) {
    throw new Error(
      `role admin "${admin}" does not exist: run the database bootstrap for this bridge database first`,
    );
  }
  await exec(client, sql`SET LOCAL ROLE ${ident(admin)}`);
}

/** Bridge bootstrap: all role-admin buckets at once, under the bootstrap lock (no race between tenants). */
export async function ensureRoleAdmins(client: ClientBase): Promise<void> {
  if ((await serverVersion(client)) < 160000) return;
  for (let i = 0; i < ROLE_ADMIN_BUCKETS; i++) {
    const admin = roleAdminName(i);
    await ensureRole(client, admin, 'NOLOGIN NOINHERIT CREATEROLE');
    await exec(client, sql`GRANT ${ident(admin)} TO CURRENT_USER WITH INHERIT FALSE, SET TRUE`);
  }
}
