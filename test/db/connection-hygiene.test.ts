import { Client, Pool } from 'pg';
import { TenantIdError } from '../../db/naming';
import { bootstrapDatabase } from '../../db/bootstrap';
import {
  migratePool,
  offboardBridgeTenant,
  offboardPoolTenant,
  provisionBridgeTenant,
  registerPoolTenant,
} from '../../db/models';
import { sql } from '../../db/sql';
import { TenantContextError, TenantDatabase } from '../../db/tenant-context';
import {
  createTestDatabase,
  RUNTIME_PASSWORD,
  TEST_CONTEXT_KEY,
  sqlstateOf,
  TestDatabase,
  tryLeak,
} from './harness';

// One connection per pool, so every request reuses the connection the previous one released.
let poolDb: TestDatabase;
let bridgeDb: TestDatabase;
let poolRaw: Pool;
let bridgeRaw: Pool;
let pooled: TenantDatabase;
let bridged: TenantDatabase;

beforeAll(async () => {
  poolDb = await createTestDatabase('hygiene_pool');
  bridgeDb = await createTestDatabase('hygiene_bridge');
  const pm = await poolDb.master();
  await bootstrapDatabase(pm, 'pool', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { pool: RUNTIME_PASSWORD },
  });
  await migratePool(pm);
  await registerPoolTenant(pm, 'acme', 'Acme');
  const bm = await bridgeDb.master();
  await bootstrapDatabase(bm, 'bridge', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { bridge: RUNTIME_PASSWORD },
  });
  await provisionBridgeTenant(bm, 'soylent');
  poolRaw = poolDb.poolAs('app_pool', { max: 1 });
  bridgeRaw = bridgeDb.poolAs('app_bridge', { max: 1 });
  pooled = new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: poolRaw, model: 'pool' });
  bridged = new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: bridgeRaw, model: 'bridge' });
  await pooled.forTenant('acme').run(sql`INSERT INTO pool.invoices (customer) VALUES ('acme customer')`);
  await bridged.forTenant('soylent').run(sql`INSERT INTO invoices (customer) VALUES ('soylent customer')`);
});

afterAll(async () => {
  await poolDb.drop();
  await bridgeDb.drop();
});

/** What the next user of the single pooled connection sees without setting any context. */
async function leftover(): Promise<{ poolRows: number; bridgeUser: string; bridgeRead?: string }> {
  const p = await poolRaw.query<{ n: number }>('SELECT count(*)::int AS n FROM pool.invoices');
  // The login role is one of app_bridge's slot roles (db/slots.ts): named so, or the role it switched to.
  const b = await bridgeRaw.query<{ u: string }>(
    "SELECT CASE WHEN current_user = session_user AND session_user::text ~ '^app_bridge_s[0-9]+$' THEN 'app_bridge slot' ELSE current_user::text END AS u",
  );
  const read = await sqlstateOf(bridgeRaw.query('SELECT * FROM t_soylent.invoices'));
  return { poolRows: p.rows[0].n, bridgeUser: b.rows[0].u, bridgeRead: read };
}

const clean = { poolRows: 0, bridgeUser: 'app_bridge slot', bridgeRead: '42501' };

describe('pooled-connection hygiene: the next user of a connection sees no tenant context', () => {
  test.each([
    [
      'after a commit',
      async () => {
        await pooled.forTenant('acme').transaction((tx) => tx.query(sql`SELECT * FROM pool.invoices`));
        await bridged.forTenant('soylent').transaction((tx) => tx.query(sql`SELECT * FROM invoices`));
      },
    ],
    [
      'after a rollback (the work threw)',
      async () => {
        await expect(
          pooled.forTenant('acme').transaction(async (tx) => {
            await tx.query(sql`SELECT * FROM pool.invoices`);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        await expect(
          bridged.forTenant('soylent').transaction(async (tx) => {
            await tx.query(sql`SELECT * FROM invoices`);
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
      },
    ],
    [
      'after an SQL error mid-transaction',
      async () => {
        await expect(
          pooled.forTenant('acme').transaction((tx) => tx.query(sql`SELECT * FROM no_such_table`)),
        ).rejects.toThrow('does not exist');
        await expect(pooled.forTenant('acme').run(sql`SELECT 1/0`)).rejects.toThrow('division by zero');
        await expect(bridged.forTenant('soylent').run(sql`SELECT 1/0`)).rejects.toThrow('division by zero');
        await expect(
          bridged
            .forTenant('soylent')
            .transaction((tx) => tx.query(sql`INSERT INTO invoices (customer) VALUES ('')`)),
        ).rejects.toThrow('violates check constraint');
      },
    ],
    [
      'after a statement timeout',
      async () => {
        const slow = new TenantDatabase({
          contextKey: TEST_CONTEXT_KEY,
          pool: poolRaw,
          model: 'pool',
          statementTimeoutMs: 50,
        });
        await expect(slow.forTenant('acme').run(sql`SELECT pg_sleep(1)`)).rejects.toThrow(
          'statement timeout',
        );
      },
    ],
  ])('%s', async (when, scenario) => {
    await scenario();
    const outcome = await tryLeak('P14', `reuse a pooled connection ${when}`, async () => {
      const seen = await leftover();
      return {
        leaked: seen.poolRows !== 0 || seen.bridgeUser !== 'app_bridge slot' || seen.bridgeRead !== '42501',
        detail: JSON.stringify(seen),
      };
    });
    expect(JSON.parse(outcome.detail)).toEqual(clean);
    expect(outcome.leaked).toBe(false);
    // The one connection went back to the pool (nothing leaked or held).
    expect(poolRaw.totalCount).toBeLessThanOrEqual(1);
    expect(poolRaw.idleCount).toBe(poolRaw.totalCount);
  });

  test('a transaction handle used after its transaction ended is refused', async () => {
    let escaped: { query: (s: ReturnType<typeof sql>) => Promise<unknown> } | undefined;
    await pooled.forTenant('acme').transaction(async (tx) => {
      escaped = tx;
    });
    await expect(escaped!.query(sql`SELECT * FROM pool.invoices`)).rejects.toThrow(
      'this tenant transaction has already ended',
    );
  });

  test('an offboarded bridge tenant can no longer be served, and its data is still there', async () => {
    const master = await bridgeDb.master();
    await provisionBridgeTenant(master, 'initech');
    await bridged.forTenant('initech').run(sql`INSERT INTO invoices (customer) VALUES ('kept')`);
    await offboardBridgeTenant(master, 'initech', 'retain');
    expect(await sqlstateOf(bridged.forTenant('initech').run(sql`SELECT * FROM invoices`))).toBe('42501');
    // The owner, too, reads a tenant's rows only with the tenant's credential (computed in the database).
    await master.query("BEGIN; SET LOCAL ROLE tenant_owner; SELECT tenancy.owner_enter('initech')");
    const kept = await master.query('SELECT customer FROM t_initech.invoices');
    await master.query('ROLLBACK');
    expect(kept.rows).toEqual([{ customer: 'kept' }]);
    // Provisioning it again as if it were new is refused; an explicit restore brings back the same data.
    await expect(provisionBridgeTenant(master, 'initech')).rejects.toThrow(
      'bridge:initech was offboarded with its data kept: it is provisioned again only by an explicit restore',
    );
    await provisionBridgeTenant(master, 'initech', { restore: true });
    const back = await bridged
      .forTenant('initech')
      .run<{ customer: string }>(sql`SELECT customer FROM invoices`);
    expect(back.rows).toEqual([{ customer: 'kept' }]);
  });
});

describe('hostile tenant ids are refused before any SQL is built', () => {
  const hostile = [
    "acme'; DROP TABLE pool.invoices; --",
    'acme;',
    'acme/*',
    'acme--',
    'аcme', // Cyrillic а
    'ACME',
    'Acme',
    'a'.repeat(64),
    'public',
    'pg-catalog',
    '',
    ' acme',
    'acme\u0000',
    't_acme',
    '../acme',
  ];

  test.each(hostile.map((id) => [JSON.stringify(id), id]))('%s', async (_label, id) => {
    const master = await poolDb.master();
    const sent: unknown[] = [];
    const spy = jest.spyOn(master, 'query').mockImplementation(((q: unknown) => {
      sent.push(q);
      return Promise.reject(new Error('no SQL may reach the server for a hostile id'));
    }) as unknown as Client['query']);
    await expect(provisionBridgeTenant(master, id)).rejects.toThrow(TenantIdError);
    await expect(registerPoolTenant(master, id, 'x')).rejects.toThrow(TenantIdError);
    await expect(offboardPoolTenant(master, id, 'destroy')).rejects.toThrow(TenantIdError);
    await expect(offboardBridgeTenant(master, id, 'destroy')).rejects.toThrow(TenantIdError);
    spy.mockRestore();
    expect(sent).toEqual([]);

    const connects = jest.spyOn(poolRaw, 'connect');
    // The id is checked when the database is bound to the tenant, before any work can be handed to it.
    expect(() => pooled.forTenant(id)).toThrow(TenantIdError);
    expect(() => bridged.forTenant(id)).toThrow(TenantIdError);
    expect(connects).not.toHaveBeenCalled();
    connects.mockRestore();
  });

  test('the messages name the value, where it came from and the rule', async () => {
    expect(() => pooled.forTenant('Acme!')).toThrow(
      'tenant context: tenant id "Acme!" is invalid: use 3-30 lowercase letters, digits and hyphens',
    );
    await expect(provisionBridgeTenant(await bridgeDb.master(), 'postgres')).rejects.toThrow(
      'provisionBridgeTenant: tenant id "postgres" is reserved',
    );
  });

  test('nothing was created in either database by the refused ids', async () => {
    const master = await poolDb.master();
    const roles = await master.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 't\\_%' ORDER BY 1");
    expect(roles.rows.map((r) => r.rolname)).not.toContain('t_acme');
    const b = await bridgeDb.master();
    const schemas = await b.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%' ORDER BY 1");
    expect(schemas.rows.map((r) => r.nspname)).toEqual(['t_initech', 't_soylent']);
    await master.query('BEGIN; SET LOCAL ROLE tenant_owner');
    const registered = await master.query('SELECT tenant_id FROM tenancy.pool_tenants ORDER BY 1');
    await master.query('ROLLBACK');
    expect(registered.rows).toEqual([{ tenant_id: 'acme' }]);
  });

  test('a silo database refuses every tenant but its own', async () => {
    const silo = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: poolRaw,
      model: 'silo',
      siloTenantId: 'northwind',
    });
    expect(() => silo.forTenant('acme')).toThrow(
      new TenantContextError(
        'tenant "acme" is not served by this silo database, which belongs to tenant "northwind"',
      ),
    );
    expect(silo.serves({ tenantId: 'acme', model: 'silo' })).toBe(false);
    expect(silo.serves({ tenantId: 'northwind', model: 'pool' })).toBe(false);
    expect(silo.serves({ tenantId: 'northwind', model: 'silo' })).toBe(true);
  });
});

describe('bridge connections: bounded caches', () => {
  test('a connection that has served maxTenantsPerConnection distinct tenants is closed, not reused', async () => {
    const bm = await bridgeDb.master();
    for (const id of ['tyrell', 'wayland', 'cyberdyne']) await provisionBridgeTenant(bm, id);
    const raw = bridgeDb.poolAs('app_bridge', { max: 1 });
    const db = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: raw,
      model: 'bridge',
      maxTenantsPerConnection: 2,
    });
    const pid = async (tenant: string) =>
      (await db.forTenant(tenant).run<{ pid: number }>(sql`SELECT pg_backend_pid() AS pid`)).rows[0].pid;
    const first = await pid('tyrell');
    expect(await pid('tyrell')).toBe(first); // the same tenant again: still one tenant served
    expect(await pid('wayland')).toBe(first); // the second distinct tenant: served, then the connection closes
    const second = await pid('cyberdyne');
    expect(second).not.toBe(first);
    await raw.end();
  });

  test('each tenant is routed to one partition, always the same, and tenants spread over the partitions', async () => {
    const parts = [bridgeDb.poolAs('app_bridge', { max: 1 }), bridgeDb.poolAs('app_bridge', { max: 1 })];
    const db = new TenantDatabase({ contextKey: TEST_CONTEXT_KEY, pool: parts, model: 'bridge' });
    const pidOf = async (tenant: string) =>
      (await db.forTenant(tenant).run<{ pid: number }>(sql`SELECT pg_backend_pid() AS pid`)).rows[0].pid;
    const tenants = ['soylent', 'tyrell', 'wayland', 'cyberdyne'];
    const first = await Promise.all(tenants.map(pidOf));
    expect(await Promise.all(tenants.map(pidOf))).toEqual(first);
    expect(new Set(first).size).toBe(2);
    await Promise.all(parts.map((p) => p.end()));
  });
});
