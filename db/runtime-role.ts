/**
 * The login role the API serves tenants as must not be able to make isolation meaningless: checked at start-up
 * (TenantDatabase.assertSafeRuntimeRole).
 */
import type { Pool } from 'pg';
import {
  OWNER_ROLE,
  RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT,
  RUNTIME_LOCK_TIMEOUT,
  RUNTIME_STATEMENT_TIMEOUT,
} from './roles';
import { TenantContextError } from './context';

/** The runtime roles' own settings, as the bootstrap sets them (db/bootstrap.ts). */
const EXPECTED_ROLE_SETTINGS = [
  `statement_timeout=${RUNTIME_STATEMENT_TIMEOUT}`,
  `idle_in_transaction_session_timeout=${RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT}`,
  `lock_timeout=${RUNTIME_LOCK_TIMEOUT}`,
];

/**
 * Refuses to serve as a role that would make isolation meaningless: a superuser or BYPASSRLS role skips
 * RLS (P1), a member of the owner role can act as the owner (P2), and a role that inherits a tenant role's
 * privileges reads that tenant without SET ROLE (B2). Call at start-up.
 */
export async function assertSafeRuntimeRole(pool: Pool): Promise<void> {
  const r = await pool.query<{
    rolname: string;
    rolsuper: boolean;
    rolbypassrls: boolean;
    owner_member: boolean;
    owns_tables: boolean;
    inherited_tenant_role: string | null;
    temp: boolean;
    create_in: string | null;
  }>(
    `SELECT r.rolname, r.rolsuper, r.rolbypassrls,
            coalesce((SELECT pg_has_role(r.oid, o.oid, 'MEMBER') FROM pg_roles o WHERE o.rolname = $1), false)
              AS owner_member,
            EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relowner = r.oid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                      AND n.nspname NOT LIKE 'pg\\_%') AS owns_tables,
            (SELECT t.rolname FROM pg_roles t
              WHERE t.rolname LIKE 't\\_%' AND t.oid <> r.oid AND pg_has_role(r.oid, t.oid, 'USAGE') LIMIT 1)
              AS inherited_tenant_role,
            has_database_privilege(r.oid, current_database(), 'TEMP') AS temp,
            (SELECT n.nspname FROM pg_namespace n
              WHERE has_schema_privilege(r.oid, n.oid, 'CREATE') AND n.nspname !~ '^pg_(temp|toast_temp)_' LIMIT 1)
              AS create_in
       FROM pg_roles r WHERE r.rolname = session_user`,
    [OWNER_ROLE],
  );
  const role = r.rows[0];
  const problems: string[] = [];
  if (role.rolsuper) problems.push('is a superuser (superusers skip Row-Level Security)');
  if (role.rolbypassrls) problems.push('has BYPASSRLS (it skips Row-Level Security)');
  if (role.owner_member) problems.push(`is a member of the owner role "${OWNER_ROLE}"`);
  if (role.owns_tables) problems.push('owns tables (owners can disable Row-Level Security on them)');
  if (role.inherited_tenant_role) {
    problems.push(`inherits the privileges of tenant role "${role.inherited_tenant_role}" without SET ROLE`);
  }
  // What injected SQL could create could shadow a name a kept statement resolves again when it is re-planned.
  if (role.temp) problems.push('may create temporary objects (TEMP on this database)');
  if (role.create_in) problems.push(`may create objects in schema "${role.create_in}"`);
  // I5: the role's own defaults are what the bootstrap set and nothing else (an injected ALTER ROLE
  // CURRENT_USER SET ... would reach every new connection; enter() overrides them per unit of work, and this
  // says so at start-up).
  const settings = await pool.query<{ setting: string }>(
    `SELECT unnest(s.setconfig) AS setting FROM pg_db_role_setting s
      WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = session_user)
        AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))`,
  );
  const unexpected = settings.rows.map((r) => r.setting).filter((x) => !EXPECTED_ROLE_SETTINGS.includes(x));
  if (unexpected.length > 0) {
    problems.push(
      `has role settings nobody provisioned (${unexpected.join(', ')}): run ALTER ROLE ${role.rolname} RESET ALL as the database's administrator, then provision again`,
    );
  }
  if (problems.length > 0) {
    throw new TenantContextError(
      `refusing to serve tenants as database role "${role.rolname}": it ${problems.join('; it ')}. ` +
        `Connect as the runtime login role created by the provisioner (app_pool, app_bridge or app_silo).`,
    );
  }
}
