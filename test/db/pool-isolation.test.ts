import { listStatement } from '../../db/invoices';
import { PoolClient } from 'pg';
import { bootstrapDatabase } from '../../db/bootstrap';
import { migratePool, registerPoolTenant } from '../../db/models';
import { sql } from '../../db/sql';
import { TenantDatabase } from '../../db/tenant-context';
import {
  createTestDatabase,
  RUNTIME_PASSWORD,
  serverUrl,
  sqlstateOf,
  superuserPassword,
  enterAs,
  TEST_CONTEXT_KEY,
  TestDatabase,
  tryLeak,
} from './harness';

// Every row of the threat model's pool table (docs/threat-model.md), tried for real as the runtime login role app_pool.
let db: TestDatabase;
let tenants: TenantDatabase;
let app: PoolClient; // a raw connection as app_pool (one of its slot roles), as a buggy or compromised API would have
const invoiceOf: Record<string, string> = {};

beforeAll(async () => {
  db = await createTestDatabase('pool_isolation');
  const master = await db.master();
  await bootstrapDatabase(master, 'pool', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { pool: RUNTIME_PASSWORD },
  });
  await migratePool(master);
  for (const id of ['acme', 'globex']) await registerPoolTenant(master, id, id.toUpperCase());
  tenants = new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: db.poolAs('app_pool'), model: 'pool' });
  for (const id of ['acme', 'globex']) {
    const r = await tenants.forTenant(id).run<{ id: string }>(
      sql`WITH i AS (INSERT INTO pool.invoices (customer, reference) VALUES (${`${id} customer`}, ${`${id}-ref`}) RETURNING id)
          INSERT INTO pool.invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
          SELECT id, 1, 'Consulting', 2, 5000 FROM i RETURNING invoice_id AS id`,
    );
    invoiceOf[id] = r.rows[0].id;
  }
  // One of app_pool's slot roles (db/slots.ts): what every runtime connection signs in as.
  app = await db.poolAs('app_pool', { max: 1 }).connect();
});

afterAll(async () => {
  app?.release();
  await db.drop();
});

/** Rows of `table` the raw connection sees in a transaction set to `tenant` (or with no context at all). */
async function visibleTenants(table: string, tenant?: string): Promise<string[]> {
  await app.query('BEGIN');
  try {
    // A valid credential for the tenant, as the API sets it (the raw connection holds the key).
    if (tenant !== undefined) await enterAs(app, tenant);
    const r = await app.query<{ tenant_id: string }>(`SELECT DISTINCT tenant_id FROM ${table} ORDER BY 1`);
    return r.rows.map((x) => x.tenant_id);
  } finally {
    await app.query('ROLLBACK');
  }
}

describe('pool isolation (docs/threat-model.md P1-P14), as app_pool', () => {
  test('a tenant sees only its own rows in every table', async () => {
    const outcome = await tryLeak('P0', 'read every table in acme context', async () => {
      const seen = [
        ...(await visibleTenants('pool.invoices', 'acme')),
        ...(await visibleTenants('pool.invoice_items', 'acme')),
      ];
      return { leaked: seen.some((t) => t !== 'acme'), detail: `saw tenants ${seen.join(',')}` };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'saw tenants acme,acme' });
  });

  test('P1: the runtime role is neither superuser nor BYPASSRLS and cannot make itself either', async () => {
    const r = await app.query('SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user');
    expect(r.rows[0]).toEqual({ rolsuper: false, rolbypassrls: false });
    const outcome = await tryLeak('P1', 'ALTER ROLE app_pool BYPASSRLS', async () => {
      const code = await sqlstateOf(app.query('ALTER ROLE app_pool BYPASSRLS'));
      return { leaked: code === undefined, detail: `sqlstate ${code}` };
    });
    expect(outcome.leaked).toBe(false);
  });

  test('P1: the API refuses to start as a superuser or BYPASSRLS role', async () => {
    const su = await db.superuser();
    await su.query(
      `DROP ROLE IF EXISTS bypass_pool; CREATE ROLE bypass_pool LOGIN BYPASSRLS PASSWORD '${RUNTIME_PASSWORD}'`,
    );
    await su.query(`GRANT CONNECT ON DATABASE ${db.name} TO bypass_pool`);
    const bypass = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: db.poolAs('bypass_pool'),
      model: 'pool',
    });
    await expect(bypass.assertSafeRuntimeRole()).rejects.toThrow(
      'refusing to serve tenants as database role "bypass_pool": it has BYPASSRLS (it skips Row-Level Security)',
    );
    const superuser = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: db.poolAs(serverUrl().username, {}, superuserPassword()),
      model: 'pool',
    });
    await expect(superuser.assertSafeRuntimeRole()).rejects.toThrow('it is a superuser');
    await expect(tenants.assertSafeRuntimeRole()).resolves.toBeUndefined();
  });

  test('P2: even the table owner sees no rows without tenant context (FORCE ROW LEVEL SECURITY)', async () => {
    const master = await db.master();
    const outcome = await tryLeak('P2', 'read pool.invoices as the owner role', async () => {
      await master.query('BEGIN');
      await master.query('SET LOCAL ROLE tenant_owner');
      const r = await master.query('SELECT count(*)::int AS n FROM pool.invoices');
      await master.query('ROLLBACK');
      return { leaked: r.rows[0].n !== 0, detail: `owner saw ${r.rows[0].n} rows` };
    });
    expect(outcome.leaked).toBe(false);
    const owner = await master.query(
      "SELECT pg_get_userbyid(c.relowner) AS owner, c.relforcerowsecurity AS forced FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pool' AND c.relname = 'invoices'",
    );
    expect(owner.rows[0]).toEqual({ owner: 'tenant_owner', forced: true });
    expect(await sqlstateOf(app.query('ALTER TABLE pool.invoices DISABLE ROW LEVEL SECURITY'))).toBe('42501');
  });

  test("P3: the summary view runs with the caller's rights, so RLS applies through it", async () => {
    const outcome = await tryLeak('P3', 'read pool.invoice_summaries in acme context', async () => {
      const seen = await visibleTenants('pool.invoice_summaries', 'acme');
      return { leaked: seen.join() !== 'acme', detail: `saw ${seen.join(',')}` };
    });
    expect(outcome.leaked).toBe(false);
    const r = await app.query(
      "SELECT reloptions FROM pg_class WHERE oid = 'pool.invoice_summaries'::regclass",
    );
    expect(r.rows[0].reloptions).toContain('security_invoker=true');
    // And the runtime role cannot create a view (or anything else) of its own.
    expect(await sqlstateOf(app.query('CREATE VIEW pool.everything AS SELECT * FROM pool.invoices'))).toBe(
      '42501',
    );
  });

  test('P4/P5: the SECURITY DEFINER functions read no tenant data; no LEAKPROOF one; the runtime role cannot create one', async () => {
    // tenancy_api.verified_tenant() (the credential check) and pool.current_tenant() (it, and the tenant's
    // registration) read only the key and the registrations, take no argument and pin their search_path;
    // nothing else may run with its owner's rights.
    const r = await app.query(
      `SELECT n.nspname || '.' || p.proname AS name, p.prosecdef, p.proleakproof, p.pronargs, p.proconfig
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND (p.prosecdef OR p.proleakproof)
        ORDER BY 1`,
    );
    expect(r.rows).toEqual(
      ['pool.current_tenant', 'pool.readable_tenant', 'tenancy_api.verified_tenant'].map((name) => ({
        name,
        prosecdef: true,
        proleakproof: false,
        pronargs: 0,
        proconfig: ['search_path=pg_catalog, pg_temp'],
      })),
    );
    const outcome = await tryLeak('P4', 'create a SECURITY DEFINER function as app_pool', async () => {
      const codes = [
        await sqlstateOf(
          app.query(
            'CREATE FUNCTION pool.peek() RETURNS bigint SECURITY DEFINER LANGUAGE sql AS $$ SELECT count(*) FROM pool.invoices $$',
          ),
        ),
        await sqlstateOf(
          app.query('CREATE FUNCTION public.peek() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$'),
        ),
        // pg_temp would need the TEMP privilege, which PUBLIC no longer has.
        await sqlstateOf(
          app.query('CREATE FUNCTION pg_temp.peek() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$'),
        ),
      ];
      return { leaked: codes.some((c) => c === undefined), detail: `sqlstates ${codes.join(',')}` };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'sqlstates 42501,42501,42501' });
    const leakproof = await tryLeak('P5', 'mark a function LEAKPROOF as app_pool', async () => {
      const code = await sqlstateOf(app.query('ALTER FUNCTION pg_catalog.lower(text) LEAKPROOF'));
      return { leaked: code === undefined, detail: `sqlstate ${code}` };
    });
    expect(leakproof.leaked).toBe(false);
  });

  test('P6: a duplicate key reveals nothing: another tenant may use the same unique value', async () => {
    const outcome = await tryLeak('P6', 'globex inserts the reference acme already uses', async () => {
      const code = await sqlstateOf(
        tenants
          .forTenant('globex')
          .run(sql`INSERT INTO pool.invoices (customer, reference) VALUES ('probe', 'acme-ref')`),
      );
      return {
        leaked: code === '23505',
        detail: code ? `sqlstate ${code}` : 'inserted: no collision revealed',
      };
    });
    expect(outcome).toEqual({ leaked: false, detail: 'inserted: no collision revealed' });
    // Within one tenant the constraint still holds.
    expect(
      await sqlstateOf(
        tenants
          .forTenant('acme')
          .run(sql`INSERT INTO pool.invoices (customer, reference) VALUES ('dup', 'acme-ref')`),
      ),
    ).toBe('23505');
  });

  test("P7: a foreign key cannot point at, or probe for, another tenant's invoice", async () => {
    const attach = (invoiceId: string) =>
      sqlstateOf(
        tenants.forTenant('globex').run(
          sql`INSERT INTO pool.invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
              VALUES (${invoiceId}, 9, 'probe', 1, 1)`,
        ),
      );
    const outcome = await tryLeak('P7', "globex attaches an item to acme's invoice", async () => {
      const acmeInvoice = await attach(invoiceOf.acme);
      const nonexistent = await attach('00000000-0000-4000-8000-000000000000');
      // Same answer for "exists in another tenant" and "does not exist": nothing to probe.
      return {
        leaked: acmeInvoice === undefined || acmeInvoice !== nonexistent,
        detail: `acme's id: ${acmeInvoice}, unknown id: ${nonexistent}`,
      };
    });
    expect(outcome).toEqual({ leaked: false, detail: "acme's id: 23503, unknown id: 23503" });
  });

  test("P8: TRUNCATE is not granted, so nobody can empty every tenant's rows", async () => {
    const outcome = await tryLeak('P8', 'TRUNCATE pool.invoices as app_pool', async () => {
      const code = await sqlstateOf(app.query('TRUNCATE pool.invoices CASCADE'));
      return { leaked: code === undefined, detail: `sqlstate ${code}` };
    });
    expect(outcome.leaked).toBe(false);
    const r = await app.query(
      "SELECT has_table_privilege('pool.invoices', 'TRUNCATE') AS t, has_table_privilege('pool.invoices', 'REFERENCES') AS r",
    );
    expect(r.rows[0]).toEqual({ t: false, r: false });
    expect(await visibleTenants('pool.invoices', 'globex')).toEqual(['globex']);
  });

  test('P9: values are data, never SQL: an injected set_config in a value stays a string', async () => {
    const payload = "x'); SELECT set_config('app.tenant_id', 'acme', true); --";
    const outcome = await tryLeak('P9', 'inject a context switch through a value', async () => {
      const r = await tenants
        .forTenant('globex')
        .run<{ customer: string; tenant_id: string }>(
          sql`INSERT INTO pool.invoices (customer) VALUES (${payload}) RETURNING customer, tenant_id`,
        );
      const seen = await tenants
        .forTenant('globex')
        .run<{ tenant_id: string }>(sql`SELECT DISTINCT tenant_id FROM pool.invoices`);
      return {
        leaked: r.rows[0].customer !== payload || seen.rows.some((x) => x.tenant_id !== 'globex'),
        detail: `stored as ${r.rows[0].tenant_id}'s customer name`,
      };
    });
    expect(outcome).toEqual({ leaked: false, detail: "stored as globex's customer name" });
  });

  test('P10: no tenant context (never set, or reset to empty) means no rows, not an error or all rows', async () => {
    const outcome = await tryLeak(
      'P10',
      'read pool.invoices with no context and with an emptied context',
      async () => {
        const none = await visibleTenants('pool.invoices');
        await app.query('BEGIN');
        await enterAs(app, 'acme');
        await app.query("SELECT set_config('app.tenant_id', '', true)");
        const emptied = await app.query('SELECT count(*)::int AS n FROM pool.invoices');
        await app.query('ROLLBACK');
        return {
          leaked: none.length > 0 || emptied.rows[0].n > 0,
          detail: `no context: ${none.length} tenants, emptied: ${emptied.rows[0].n} rows`,
        };
      },
    );
    expect(outcome).toEqual({ leaked: false, detail: 'no context: 0 tenants, emptied: 0 rows' });
  });

  test('P11: a tenant can neither write rows into another tenant nor move its rows there', async () => {
    const outcome = await tryLeak(
      'P11',
      'acme inserts as globex and moves its invoice to globex',
      async () => {
        const insert = await sqlstateOf(
          tenants
            .forTenant('acme')
            .run(sql`INSERT INTO pool.invoices (tenant_id, customer) VALUES ('globex', 'planted')`),
        );
        const move = await sqlstateOf(
          tenants.forTenant('acme').run(sql`UPDATE pool.invoices SET tenant_id = 'globex'`),
        );
        return {
          leaked: insert === undefined || move === undefined,
          detail: `insert ${insert}, move ${move}`,
        };
      },
    );
    expect(outcome).toEqual({ leaked: false, detail: 'insert 42501, move 42501' });
    // One permissive policy per command (migration 5): reads admit the tenant's verified credential while it is
    // active or frozen; writes only while it is active. Every one is bound to the tenant.
    const policies = await app.query(
      `SELECT tablename, cmd, permissive, qual, with_check FROM pg_policies WHERE schemaname = 'pool'
        ORDER BY tablename, cmd`,
    );
    const bound = (fn: string) => `(tenant_id = ( SELECT pool.${fn}() AS ${fn}))`;
    expect(
      policies.rows.map((p) => ({
        table: p.tablename,
        cmd: p.cmd,
        permissive: p.permissive,
        using: p.qual,
        check: p.with_check,
      })),
    ).toEqual(
      ['invoice_items', 'invoices'].flatMap((table) => [
        { table, cmd: 'DELETE', permissive: 'PERMISSIVE', using: bound('current_tenant'), check: null },
        { table, cmd: 'INSERT', permissive: 'PERMISSIVE', using: null, check: bound('current_tenant') },
        { table, cmd: 'SELECT', permissive: 'PERMISSIVE', using: bound('readable_tenant'), check: null },
        {
          table,
          cmd: 'UPDATE',
          permissive: 'PERMISSIVE',
          using: bound('current_tenant'),
          check: bound('current_tenant'),
        },
      ]),
    );
  });

  test("P12: no shared sequence exists whose gaps would reveal other tenants' volume", async () => {
    const outcome = await tryLeak('P12', 'look for sequences in the pool schema', async () => {
      const r = await app.query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pool' AND c.relkind = 'S'",
      );
      return { leaked: r.rows.length > 0, detail: `${r.rows.length} sequences` };
    });
    expect(outcome.leaked).toBe(false);
    expect(invoiceOf.acme).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('P13: EXPLAIN is refused in tenant context (its estimates cover every tenant)', async () => {
    const outcome = await tryLeak('P13', 'EXPLAIN through the tenant API', async () => {
      try {
        await tenants.forTenant('acme').run(sql`EXPLAIN SELECT * FROM pool.invoices`);
        return { leaked: true, detail: 'EXPLAIN ran' };
      } catch (e) {
        return { leaked: false, detail: (e as Error).message };
      }
    });
    expect(outcome.leaked).toBe(false);
    expect(outcome.detail).toContain('EXPLAIN is not allowed in tenant context');
  });

  test('P14: context never outlives its transaction on a pooled connection', async () => {
    const single = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: db.poolAs('app_pool', { max: 1 }),
      model: 'pool',
    });
    const raw = single['pool'];
    const outcome = await tryLeak(
      'P14',
      'reuse the connection acme just used, with no context of its own',
      async () => {
        await single.forTenant('acme').transaction((tx) => tx.query(sql`SELECT count(*) FROM pool.invoices`));
        await single.forTenant('acme').run(sql`SELECT count(*) FROM pool.invoices`);
        const after = await raw.query<{ n: number; ctx: string | null }>(
          "SELECT count(*)::int AS n, current_setting('app.tenant_id', true) AS ctx FROM pool.invoices",
        );
        const next = await single
          .forTenant('globex')
          .transaction((tx) =>
            tx.query<{ tenant_id: string }>(sql`SELECT DISTINCT tenant_id FROM pool.invoices`),
          );
        const leaked = after.rows[0].n > 0 || next.rows.some((r) => r.tenant_id !== 'globex');
        return {
          leaked,
          detail: `no-context reuse saw ${after.rows[0].n} rows (context ${JSON.stringify(after.rows[0].ctx)}); next tenant saw ${next.rows.map((r) => r.tenant_id).join(',')}`,
        };
      },
    );
    expect(outcome).toEqual({
      leaked: false,
      detail: 'no-context reuse saw 0 rows (context ""); next tenant saw globex',
    });
  });
});

describe('a page of invoices costs the page, not the tenant (the rows-per-second limit charges the page size)', () => {
  test("the list reads the listing index up to the page and aggregates only that page's items", async () => {
    // Enough invoices that a plan aggregating them all would show it.
    await tenants.forTenant('acme').run(
      sql`WITH i AS (INSERT INTO pool.invoices (customer) SELECT 'bulk ' || g FROM generate_series(1, 500) g RETURNING id)
          INSERT INTO pool.invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
          SELECT id, 1, 'Item', 1, 100 FROM i`,
    );
    const su = await db.superuser();
    try {
      await su.query('ANALYZE pool.invoices; ANALYZE pool.invoice_items');
    } finally {
      await su.end();
    }
    await app.query('BEGIN');
    try {
      await enterAs(app, 'acme');
      await app.query('SET LOCAL search_path = pool');
      const { text, values } = listStatement({ limit: 1 }).toQuery();
      const r = await app.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values);
      const plan = JSON.stringify(r.rows[0]['QUERY PLAN']);
      // A Limit over the listing index, and no aggregate or sort over the tenant's invoices.
      expect(plan).toContain('invoices_listing');
      expect(plan).not.toMatch(/"Node Type":"(Sort|Hash)"/);
      const top = (r.rows[0]['QUERY PLAN'] as { Plan: { 'Node Type': string; 'Actual Rows': number } }[])[0]
        .Plan;
      expect(top['Node Type']).toBe('Limit');
      expect(top['Actual Rows']).toBe(2); // the page and the one row that says there is more
    } finally {
      await app.query('ROLLBACK');
    }
  });
});
