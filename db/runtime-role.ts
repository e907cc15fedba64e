/**
 * The login role the API serves tenants as must not be able to make isolation meaningless: checked at start-up
 * (TenantDatabase.assertSafeRuntimeRole).
 */
import type { ClientBase, Pool } from 'pg';
import {
  OWNER_ROLE,
  RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT,
  RUNTIME_LOCK_TIMEOUT,
  RUNTIME_STATEMENT_TIMEOUT,
} from './roles';
import { TenantContextError } from './context';

/** The runtime roles' own settings, as the bootstrap sets them (db/bootstrap.ts). */
/**
 * Role defaults a role may set on itself that nobody but a superuser can remove again (PostgreSQL refuses to
 * RESET them; RDS has no superuser), and that reach nothing: a transaction's own characteristics are set from the
 * `default_transaction_*` settings (pinned in the startup packet) as each transaction starts, and no statement of
 * ours uses random() (keys are gen_random_uuid(), from the strong source). Left where they are, and not refused: a
 * tenant's statement that set one would otherwise fail every start-up check, and every bootstrap, of the cell.
 */
export const INERT_ROLE_SETTINGS = [
  'transaction_read_only',
  'transaction_isolation',
  'transaction_deferrable',
  'seed',
];
const inert = (setting: string) =>
  INERT_ROLE_SETTINGS.includes(setting.slice(0, setting.indexOf('=')).toLowerCase());

const EXPECTED_ROLE_SETTINGS = [
  `statement_timeout=${RUNTIME_STATEMENT_TIMEOUT}`,
  `idle_in_transaction_session_timeout=${RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT}`,
  `lock_timeout=${RUNTIME_LOCK_TIMEOUT}`,
];

/**
 * Puts the runtime role's own defaults back to what the bootstrap set, as the role itself (any role may change
 * its own defaults, so SQL injected in one tenant's request can, and so can the API). Such a change reaches no unit
 * of work (enter() sets every setting that matters), but left in place it made every API task started after it
 * refuse to start (assertSafeRuntimeRole): one tenant's statement took the whole cell's capacity away as tasks were
 * replaced. Returns what it removed, to be logged as the security event it is. A setting it cannot remove stays,
 * and the assertion refuses it. Give it one connection (a pool's queries may each sign in as another slot role,
 * db/slots.ts): every new connection of a pool with slot roles runs it on itself (service/src/db-pool.ts).
 */
export async function repairRuntimeRoleSettings(pool: Pool | ClientBase): Promise<string[]> {
  const found = await pool.query<{ setting: string; db: string | null }>(
    `SELECT unnest(s.setconfig) AS setting, d.datname AS db
       FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
      WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = session_user)
        AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))`,
  );
  const removed: string[] = [];
  for (const { setting, db } of found.rows) {
    if (EXPECTED_ROLE_SETTINGS.includes(setting) || inert(setting)) continue;
    const name = setting.slice(0, setting.indexOf('='));
    const expected = EXPECTED_ROLE_SETTINGS.find((e) => e.startsWith(`${name}=`));
    const scope = db === null ? '' : ` IN DATABASE ${quoteIdent(db)}`;
    try {
      await pool.query(`ALTER ROLE CURRENT_USER${scope} RESET ${quoteIdent(name)}`);
      // One the bootstrap sets, changed: its own value again (role-wide, where the bootstrap sets it).
      if (expected && db === null) {
        await pool.query(
          `ALTER ROLE CURRENT_USER SET ${quoteIdent(name)} = ${quoteLiteral(expected.slice(name.length + 1))}`,
        );
      }
      removed.push(db === null ? setting : `${setting} (in database ${db})`);
    } catch {
      // Not this role's to change: the assertion names it.
    }
  }
  return removed;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

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
  const unexpected = settings.rows
    .map((r) => r.setting)
    .filter((x) => !EXPECTED_ROLE_SETTINGS.includes(x) && !inert(x));
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
