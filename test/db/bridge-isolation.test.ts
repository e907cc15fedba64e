import { PoolClient } from 'pg';
import { tenantDbNames } from '../../db/naming';
import { bootstrapDatabase } from '../../db/bootstrap';
import { provisionBridgeTenant } from '../../db/models';
import { sql } from '../../db/sql';
import { TenantDatabase } from '../../db/tenant-context';
import {
  createTestDatabase,
  enterAs,
  RUNTIME_PASSWORD,
  TEST_CONTEXT_KEY,
  sqlstateOf,
  TestDatabase,
  tryLeak,
} from './harness';

// Every row of the threat model's bridge table (docs/threat-model.md), tried for real as the runtime login role app_bridge.
let db: TestDatabase;
let tenants: TenantDatabase;
let app: PoolClient;

beforeAll(async () => {
  db = await createTestDatabase('bridge_isolation');
  const master = await db.master();
  await bootstrapDatabase(master, 'bridge', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { bridge: RUNTIME_PASSWORD },
  });
  for (const id of ['umbrella', 'hooli']) await provisionBridgeTenant(master, id);
  tenants = new TenantDatabase({
    contextKey: TEST_CONTEXT_KEY,
    pool: db.poolAs('app_bridge'),
    model: 'bridge',
  });
  for (const id of ['umbrella', 'hooli']) {
    await tenants
      .forTenant(id)
      .run(sql`INSERT INTO invoices (customer, reference) VALUES (${`${id} customer`}, 'ref-1')`);
  }
  // One of app_bridge's slot roles (db/slots.ts): what every runtime connection signs in as.
  app = await db.poolAs('app_bridge', { max: 1 }).connect();
});

afterAll(async () => {
  app?.release();
  await db.drop();
});

/** Runs `statement` on the raw app_bridge connection inside a transaction acting as `tenant`. */
async function asTenant(tenant: string, statement: string): Promise<string | undefined> {
  const { role, schema } = tenantDbNames(tenant);
  await app.query('BEGIN');
  try {
    await app.query(`SET LOCAL ROLE ${role}; SET LOCAL search_path = ${schema}`);
    await enterAs(app, tenant);
    return await sqlstateOf(app.query(statement));
  } finally {
    await app.query('ROLLBACK');
  }
}

describe('bridge isolation (docs/threat-model.md B1-B7), as app_bridge', () => {
  test('a tenant sees its own invoices by unqualified name', async () => {
    const r = await tenants
      .forTenant('umbrella')
      .run<{ customer: string }>(sql`SELECT customer FROM invoices`);
    expect(r.rows).toEqual([{ customer: 'umbrella customer' }]);
  });

  test("B1: a tenant cannot read another tenant's schema by qualified name", async () => {
    const outcome = await tryLeak('B1', 'SELECT * FROM t_hooli.invoices as umbrella', async () => {
      const viaApi = await sqlstateOf(tenants.forTenant('umbrella').run(sql`SELECT * FROM t_hooli.invoices`));
      const viaView = await sqlstateOf(
        tenants.forTenant('umbrella').run(sql`SELECT * FROM t_hooli.invoice_summaries`),
      );
      const write = await sqlstateOf(tenants.forTenant('umbrella').run(sql`DELETE FROM t_hooli.invoices`));
      return {
        leaked: [viaApi, viaView, write].some((c) => c === undefined),
        detail: `sqlstates ${viaApi},${viaView},${write}`,
      };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'sqlstates 42501,42501,42501' });
  });

  test('B2: the login role holds no tenant privilege until SET ROLE (NOINHERIT)', async () => {
    const outcome = await tryLeak(
      'B2',
      'read t_umbrella.invoices as app_bridge without SET ROLE',
      async () => {
        const code = await sqlstateOf(app.query('SELECT * FROM t_umbrella.invoices'));
        return { leaked: code === undefined, detail: `sqlstate ${code}` };
      },
    );
    expect(outcome).toEqual({ leaked: false, detail: 'sqlstate 42501' });
    const r = await app.query(
      "SELECT rolinherit, pg_has_role('app_bridge', 't_umbrella', 'USAGE') AS inherits, pg_has_role('app_bridge', 't_umbrella', 'SET') AS can_set FROM pg_roles WHERE rolname = 'app_bridge'",
    );
    expect(r.rows[0]).toEqual({ rolinherit: false, inherits: false, can_set: true });
    await expect(tenants.assertSafeRuntimeRole()).resolves.toBeUndefined();
  });

  test('B3: PUBLIC has no way in: no CONNECT, no TEMP, nothing in schema public, no EXECUTE on new functions', async () => {
    const su = await db.superuser();
    await su.query(`DROP ROLE IF EXISTS stranger; CREATE ROLE stranger LOGIN PASSWORD '${RUNTIME_PASSWORD}'`);
    const outcome = await tryLeak(
      'B3',
      'connect as a role nobody granted anything; use public and TEMP',
      async () => {
        let connect: string | undefined;
        try {
          await db.clientAs('stranger');
        } catch (e) {
          connect = (e as { code?: string }).code;
        }
        const temp = await asTenant('umbrella', 'CREATE TEMP TABLE loot (x int)');
        const pub = await asTenant('umbrella', 'CREATE TABLE public.loot (x int)');
        return {
          leaked: [connect, temp, pub].some((c) => c === undefined),
          detail: `connect ${connect}, temp ${temp}, public ${pub}`,
        };
      },
    );
    expect(outcome).toEqual({ leaked: false, detail: 'connect 42501, temp 42501, public 42501' });
    const master = await db.master();
    await master.query('BEGIN; SET LOCAL ROLE tenant_owner');
    await master.query('CREATE FUNCTION t_umbrella.answer() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$');
    const exec = await master.query(
      "SELECT has_function_privilege('t_umbrella', 't_umbrella.answer()', 'EXECUTE') AS x",
    );
    await master.query('ROLLBACK');
    expect(exec.rows[0].x).toBe(false);
  });

  test('B4: with a naming key, the catalogs reveal no tenant id', async () => {
    const keyed = await createTestDatabase('bridge_opaque');
    try {
      const master = await keyed.master();
      await bootstrapDatabase(master, 'bridge', {
        contextKey: TEST_CONTEXT_KEY,
        runtimePasswords: { bridge: RUNTIME_PASSWORD },
      });
      const key = 'naming-key-from-secrets-manager';
      const names = await provisionBridgeTenant(master, 'initrode', { namingKey: key });
      expect(names.schema).toMatch(/^t_[0-9a-f]{24}$/);
      const opaque = new TenantDatabase({
        contextKey: TEST_CONTEXT_KEY,
        pool: keyed.poolAs('app_bridge'),
        model: 'bridge',
        namingKey: key,
      });
      await opaque.forTenant('initrode').run(sql`INSERT INTO invoices (customer) VALUES ('x')`);
      const outcome = await tryLeak('B4', 'list schema and role names from the catalogs', async () => {
        const r = await opaque
          .forTenant('initrode')
          .run<{ name: string }>(
            sql`SELECT nspname AS name FROM pg_namespace UNION ALL SELECT rolname FROM pg_roles`,
          );
        const revealing = r.rows.filter((x) => x.name.includes('initrode'));
        return { leaked: revealing.length > 0, detail: `${revealing.length} names mention the tenant` };
      });
      expect(outcome).toEqual({ leaked: false, detail: '0 names mention the tenant' });
      // Without the key the API cannot even find the tenant's schema.
      const unkeyed = new TenantDatabase({
        contextKey: TEST_CONTEXT_KEY,
        pool: keyed.poolAs('app_bridge'),
        model: 'bridge',
      });
      expect(await sqlstateOf(unkeyed.forTenant('initrode').run(sql`SELECT 1`))).toBe('22023');
    } finally {
      await keyed.drop();
    }
  });

  test('B5: neither role nor search_path survives the transaction on a pooled connection', async () => {
    const single = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: db.poolAs('app_bridge', { max: 1 }),
      model: 'bridge',
    });
    const probe = single['pool'];
    const outcome = await tryLeak('B5', 'reuse the connection umbrella just used', async () => {
      await single.forTenant('umbrella').transaction((tx) => tx.query(sql`SELECT * FROM invoices`));
      await single.forTenant('umbrella').run(sql`SELECT * FROM invoices`);
      const state = await probe.query(
        // The login role is one of app_bridge's slot roles (db/slots.ts): named so, or the role it switched to.
        "SELECT CASE WHEN current_user = session_user AND session_user::text ~ '^app_bridge_s[0-9]+$' THEN 'app_bridge slot' ELSE current_user::text END AS who, current_setting('search_path') AS path, has_schema_privilege('t_umbrella', 'USAGE') AS usage",
      );
      const read = await sqlstateOf(probe.query('SELECT * FROM t_umbrella.invoices'));
      const s = state.rows[0];
      return {
        leaked: s.who !== 'app_bridge slot' || s.path.includes('t_umbrella') || s.usage || read === undefined,
        detail: `user ${s.who}, search_path ${s.path}, read ${read}`,
      };
    });
    expect(outcome).toEqual({
      leaked: false,
      detail: 'user app_bridge slot, search_path "$user", public, read 42501',
    });
  });

  test('B6: the one SECURITY DEFINER function reads no tenant data, and a tenant cannot create functions at all', async () => {
    // tenancy_api.verified_tenant(): the credential check; it reads only the key, takes no argument and pins
    // its search_path.
    const r = await app.query(
      `SELECT n.nspname || '.' || p.proname AS name, p.pronargs, p.proconfig
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prosecdef`,
    );
    expect(r.rows).toEqual([
      { name: 'tenancy_api.verified_tenant', pronargs: 0, proconfig: ['search_path=pg_catalog, pg_temp'] },
    ]);
    const outcome = await tryLeak('B6', 'create a SECURITY DEFINER function in its own schema', async () => {
      const code = await asTenant(
        'umbrella',
        'CREATE FUNCTION t_umbrella.peek() RETURNS bigint SECURITY DEFINER LANGUAGE sql AS $$ SELECT 1 $$',
      );
      return { leaked: code === undefined, detail: `sqlstate ${code}` };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'sqlstate 42501' });
  });

  test('B7: shared schemas are not writable (or readable) by tenants', async () => {
    const outcome = await tryLeak('B7', 'write to public and to the provisioner bookkeeping', async () => {
      const codes = [
        await asTenant('umbrella', "INSERT INTO tenancy.targets VALUES ('x', 'bridge', 'x', 1, 'active')"),
        await asTenant('umbrella', 'SELECT * FROM tenancy.targets'),
        await asTenant('umbrella', 'CREATE TABLE public.shared (x int)'),
        await asTenant('umbrella', 'CREATE SCHEMA mine'),
      ];
      return { leaked: codes.some((c) => c === undefined), detail: `sqlstates ${codes.join(',')}` };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'sqlstates 42501,42501,42501,42501' });
  });

  test('a tenant role cannot be assumed for a tenant the login role was never granted', async () => {
    const outcome = await tryLeak('B2', 'SET ROLE to a role app_bridge is not a member of', async () => {
      const su = await db.superuser();
      await su.query('DROP ROLE IF EXISTS t_outsider; CREATE ROLE t_outsider NOLOGIN');
      const code = await sqlstateOf(tenants.forTenant('outsider').run(sql`SELECT 1`));
      return { leaked: code === undefined, detail: `sqlstate ${code}` };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'sqlstate 42501' });
  });
});
