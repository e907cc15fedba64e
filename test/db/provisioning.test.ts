import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { BOOTSTRAP_REVISION, LATEST_VERSION } from '../../db/migrations';
import { bootstrapDatabase } from '../../db/bootstrap';
import { bridgeTenantsBelow, targetState } from '../../db/migrate';
import { roleAdminFor } from '../../db/role-admin';
import {
  migratePool,
  migrateSilo,
  offboardBridgeTenant,
  offboardPoolTenant,
  offboardSilo,
  provisionBridgeTenant,
  registerPoolTenant,
  dataModel,
} from '../../db/models';
import { ident, sql } from '../../db/sql';
import { lockTarget } from '../../db/tx';
import { TenantDatabase } from '../../db/tenant-context';
import { createTestDatabase, RUNTIME_PASSWORD, TEST_CONTEXT_KEY, sqlstateOf, TestDatabase } from './harness';

const dbs: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(dbs.map((d) => d.drop()));
});
async function fresh(label: string): Promise<TestDatabase> {
  const d = await createTestDatabase(label);
  dbs.push(d);
  return d;
}

async function asOwner<T>(master: Client, work: () => Promise<T>): Promise<T> {
  await master.query('BEGIN; SET LOCAL ROLE tenant_owner');
  try {
    return await work();
  } finally {
    await master.query('ROLLBACK');
  }
}

describe('database bootstrap', () => {
  test('creates the owner and a runtime role that is not superuser, not BYPASSRLS, NOINHERIT, and runs twice harmlessly', async () => {
    const db = await fresh('bootstrap');
    const master = await db.master();
    await bootstrapDatabase(master, 'pool', {
      contextKey: TEST_CONTEXT_KEY,
      runtimePasswords: { pool: RUNTIME_PASSWORD },
    });
    await bootstrapDatabase(master, 'pool', { contextKey: TEST_CONTEXT_KEY });
    const r = await master.query(
      `SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolinherit, rolcreaterole, rolcreatedb
         FROM pg_roles WHERE rolname IN ('tenant_owner', 'app_pool') ORDER BY rolname`,
    );
    expect(r.rows).toEqual([
      {
        // A group: each connection signs in as one of its slot roles (db/slots.ts, test/db/slots.test.ts).
        rolname: 'app_pool',
        rolcanlogin: false,
        rolsuper: false,
        rolbypassrls: false,
        rolinherit: false,
        rolcreaterole: false,
        rolcreatedb: false,
      },
      {
        rolname: 'tenant_owner',
        rolcanlogin: false,
        rolsuper: false,
        rolbypassrls: false,
        rolinherit: false,
        rolcreaterole: false,
        rolcreatedb: false,
      },
    ]);
    // Every runtime session starts with a statement timeout and an idle-in-transaction timeout.
    // (As one of app_pool's slot roles, db/slots.ts: the bootstrap gives each the same defaults.)
    const app = await db.clientAs('app_pool_s1');
    const limits = await app.query(
      "SELECT current_setting('statement_timeout') AS st, current_setting('idle_in_transaction_session_timeout') AS idle",
    );
    await app.end();
    expect(limits.rows[0]).toEqual({ st: '5s', idle: '10s' });
    // PUBLIC lost CONNECT and TEMP on the database and everything on schema public.
    const acl = await master.query(
      `SELECT has_database_privilege('public', current_database(), 'CONNECT') AS connect,
              has_database_privilege('public', current_database(), 'TEMP') AS temp,
              has_schema_privilege('public', 'public', 'USAGE') AS usage,
              has_schema_privilege('public', 'public', 'CREATE') AS create`,
    );
    expect(acl.rows[0]).toEqual({ connect: false, temp: false, usage: false, create: false });
  });

  test('concurrent bootstraps and migrations of one database serialize instead of failing', async () => {
    const db = await fresh('concurrent');
    const clients = await Promise.all([db.master(), db.master(), db.master()]);
    await Promise.all(clients.map((c) => bootstrapDatabase(c, 'pool', { contextKey: TEST_CONTEXT_KEY })));
    await Promise.all(clients.map((c) => migratePool(c)));
    await Promise.all(clients.map((c, i) => registerPoolTenant(c, 'acme', `Acme ${i}`)));
    expect(await targetState(clients[0], 'pool').catch(() => undefined)).toBeUndefined(); // not readable as master
    const state = await asOwner(clients[0], () => targetState(clients[0], 'pool'));
    expect(state).toMatchObject({ model: 'pool', schema: 'pool', version: LATEST_VERSION, status: 'active' });
  });
});

test('db/bootstrap.ts has not changed since BOOTSTRAP_REVISION was last raised', () => {
  // A live database gets what the bootstrap installs only when its revision changes (lib/constructs/cell.ts).
  // If this fails: raise BOOTSTRAP_REVISION (db/migrations/index.ts) if what the bootstrap installs changed,
  // then record the new fingerprint and revision here.
  const fingerprint = createHash('sha256')
    .update(fs.readFileSync(path.join(__dirname, '../../db/bootstrap.ts')))
    .digest('hex');
  expect({ revision: BOOTSTRAP_REVISION, fingerprint }).toEqual({
    revision: 3,
    fingerprint: '9abe7f51125c9962de4a52084e2b17501ed02a98e12a7ea6bf5876d0f5afc5bc',
  });
});

describe('bridge tenants', () => {
  let db: TestDatabase;
  let master: Client;
  let api: TenantDatabase;
  beforeAll(async () => {
    db = await fresh('bridge_prov');
    master = await db.master();
    await bootstrapDatabase(master, 'bridge', {
      contextKey: TEST_CONTEXT_KEY,
      runtimePasswords: { bridge: RUNTIME_PASSWORD },
    });
    api = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: db.poolAs('app_bridge'),
      model: 'bridge',
    });
  });

  test('a retried Create is harmless: the same schema, role and data', async () => {
    const first = await provisionBridgeTenant(master, 'vandelay');
    await api.forTenant('vandelay').run(sql`INSERT INTO invoices (customer) VALUES ('Kramer')`);
    const again = await provisionBridgeTenant(master, 'vandelay');
    expect(again).toEqual({ schema: 't_vandelay', role: 't_vandelay', fromVersion: LATEST_VERSION });
    expect(first.fromVersion).toBe(0);
    const r = await api.forTenant('vandelay').run<{ customer: string }>(sql`SELECT customer FROM invoices`);
    expect(r.rows).toEqual([{ customer: 'Kramer' }]);
  });

  test('tenant roles are administered by a role-admin bucket, so the master user does not accumulate memberships', async () => {
    const r = await master.query(
      `SELECT r.rolname AS member, m.admin_option
         FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
        WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = 't_vandelay') ORDER BY 1`,
    );
    expect(r.rows).toEqual([
      { member: 'app_bridge', admin_option: false },
      { member: roleAdminFor('t_vandelay'), admin_option: true },
    ]);
    expect(roleAdminFor('t_vandelay')).toMatch(/^tenant_role_admin_\d{2}$/);
  });

  test('two provisioners creating the same tenant at once end with one schema and no error', async () => {
    const [a, b] = await Promise.all([db.master(), db.master()]);
    const results = await Promise.all([
      provisionBridgeTenant(a, 'pendant'),
      provisionBridgeTenant(b, 'pendant'),
    ]);
    expect(results.map((x) => x.fromVersion).sort()).toEqual([0, LATEST_VERSION]);
    const n = await master.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 't_pendant'");
    expect(n.rows[0].n).toBe(1);
  });

  test('an Update to a newer schema version migrates the tenant in place and keeps its rows', async () => {
    await provisionBridgeTenant(master, 'kramerica', { version: 1 });
    await api.forTenant('kramerica').run(sql`INSERT INTO invoices (customer) VALUES ('Bob Sacamano')`);
    expect(await sqlstateOf(api.forTenant('kramerica').run(sql`SELECT due_on FROM invoices`))).toBe('42703');
    expect(await bridgeTenantsBelow(master, 2).catch(() => 'denied')).toBe('denied');
    expect(await asOwner(master, () => bridgeTenantsBelow(master, 2))).toEqual(['kramerica']);
    const upgraded = await provisionBridgeTenant(master, 'kramerica', { version: 2 });
    expect(upgraded.fromVersion).toBe(1);
    const r = await api
      .forTenant('kramerica')
      .run<{ customer: string; due_on: null }>(sql`SELECT customer, due_on FROM invoice_summaries`);
    expect(r.rows).toEqual([{ customer: 'Bob Sacamano', due_on: null }]);
  });

  test('refuses a schema version that does not exist, and a downgrade, naming the fix', async () => {
    await expect(provisionBridgeTenant(master, 'vandelay', { version: 99 })).rejects.toThrow(
      'schema version 99 does not exist: this provisioner knows versions 1, 2, 3, 4',
    );
    await expect(provisionBridgeTenant(master, 'vandelay', { version: 1 })).rejects.toThrow(
      `bridge:vandelay is at schema version ${LATEST_VERSION}, newer than the requested 1: downgrades are not supported`,
    );
  });

  test('offboarding a disposable tenant drops its schema and role; others are untouched', async () => {
    await provisionBridgeTenant(master, 'disposable');
    await api.forTenant('disposable').run(sql`INSERT INTO invoices (customer) VALUES ('temp')`);
    await offboardBridgeTenant(master, 'disposable', 'destroy');
    await offboardBridgeTenant(master, 'disposable', 'destroy'); // a retried Delete
    const left = await master.query(
      "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 't_disposable')::int AS schemas, (SELECT count(*) FROM pg_roles WHERE rolname = 't_disposable')::int AS roles",
    );
    expect(left.rows[0]).toEqual({ schemas: 0, roles: 0 });
    const other = await api
      .forTenant('vandelay')
      .run<{ customer: string }>(sql`SELECT customer FROM invoices`);
    expect(other.rows).toEqual([{ customer: 'Kramer' }]);
  });
});

describe('pool tenants', () => {
  test('a pool tenant can only have rows once registered and active; destroy removes its rows and only its rows', async () => {
    const db = await fresh('pool_prov');
    const master = await db.master();
    await bootstrapDatabase(master, 'pool', {
      contextKey: TEST_CONTEXT_KEY,
      runtimePasswords: { pool: RUNTIME_PASSWORD },
    });
    await migratePool(master);
    const api = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: db.poolAs('app_pool'),
      model: 'pool',
    });
    // Not registered: refused by the database before any row is written.
    expect(
      await sqlstateOf(api.forTenant('stranger').run(sql`INSERT INTO pool.invoices (customer) VALUES ('x')`)),
    ).toBe('42501');
    for (const id of ['acme', 'globex']) {
      await registerPoolTenant(master, id, id);
      await api.forTenant(id).run(
        sql`WITH i AS (INSERT INTO pool.invoices (customer) VALUES (${id}) RETURNING id)
            INSERT INTO pool.invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
            SELECT id, 1, 'x', 1, 100 FROM i`,
      );
    }
    const count = (id: string, table = 'invoices') =>
      api.forTenant(id).run<{ n: number }>(sql`SELECT count(*)::int AS n FROM pool.${ident(table)}`);
    // Offboarded with its data kept: the database refuses the tenant at once, reads and writes alike.
    await offboardPoolTenant(master, 'acme', 'retain');
    expect(await sqlstateOf(count('acme'))).toBe('42501');
    expect(
      await sqlstateOf(api.forTenant('acme').run(sql`INSERT INTO pool.invoices (customer) VALUES ('late')`)),
    ).toBe('42501');
    // An explicit restore brings its kept rows back.
    await registerPoolTenant(master, 'acme', 'acme', { restore: true });
    expect((await count('acme')).rows[0].n).toBe(1);
    await offboardPoolTenant(master, 'acme', 'destroy');
    // Registered again as a new tenant, it has nothing: its rows went with it.
    await registerPoolTenant(master, 'acme', 'acme');
    expect((await count('acme', 'invoice_items')).rows[0].n).toBe(0);
    expect((await count('globex', 'invoice_items')).rows[0].n).toBe(1);
    // Frozen for a move, it stays frozen when provisioned again (a redeploy in the middle of the move): it reads,
    // and no write lands until the mover thaws it.
    await dataModel('pool').freeze(master, 'globex', {});
    await registerPoolTenant(master, 'globex', 'Globex renamed');
    expect((await count('globex')).rows[0].n).toBe(1);
    expect(
      await sqlstateOf(
        api.forTenant('globex').run(sql`INSERT INTO pool.invoices (customer) VALUES ('late')`),
      ),
    ).toBe('42501');
    await dataModel('pool').unfreeze(master, 'globex', {});
    await api.forTenant('globex').run(sql`INSERT INTO pool.invoices (customer) VALUES ('thawed')`);
    expect((await count('globex')).rows[0].n).toBe(2);
  });
});

describe('silo databases', () => {
  test('a silo database serves its one tenant as its own runtime role; offboarding keeps or drops the data', async () => {
    const db = await fresh('silo_prov');
    const master = await db.master();
    await bootstrapDatabase(master, 'silo', {
      contextKey: TEST_CONTEXT_KEY,
      runtimePasswords: { silo: RUNTIME_PASSWORD },
      siloRuntimeRole: 'app_silo_northwind',
    });
    await migrateSilo(master, LATEST_VERSION, 'app_silo_northwind');
    await migrateSilo(master, LATEST_VERSION, 'app_silo_northwind');
    const api = new TenantDatabase({
      contextKey: TEST_CONTEXT_KEY,
      pool: db.poolAs('app_silo_northwind'),
      model: 'silo',
      siloTenantId: 'northwind',
    });
    await api.assertSafeRuntimeRole();
    await api.forTenant('northwind').run(sql`INSERT INTO invoices (customer) VALUES ('patient zero')`);
    // The silo's runtime role may not connect to any other database on the server.
    const other = await fresh('silo_other');
    await bootstrapDatabase(await other.master(), 'silo', {
      contextKey: TEST_CONTEXT_KEY,
      runtimePasswords: { silo: RUNTIME_PASSWORD },
      siloRuntimeRole: 'app_silo_initech',
    });
    await expect(other.clientAs('app_silo_initech')).resolves.toBeDefined();
    await expect(other.clientAs('app_silo_northwind')).rejects.toMatchObject({ code: '42501' });
    await offboardSilo(master, 'retain', 'app_silo_northwind');
    expect(await sqlstateOf(api.forTenant('northwind').run(sql`SELECT * FROM app.invoices`))).toBe('42501');
    const kept = await asOwner(master, () => master.query('SELECT customer FROM app.invoices'));
    expect(kept.rows).toEqual([{ customer: 'patient zero' }]);
    await offboardSilo(master, 'destroy', 'app_silo_northwind');
    const schemas = await master.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'app'");
    expect(schemas.rows[0].n).toBe(0);
  });
});

describe('migrations step aside for long transactions', () => {
  test('a provisioning that cannot get its lock gives up after lock_timeout and is retried until it can', async () => {
    const { withLockRetries } = await import('../../lambda/tenant-provisioner');
    const db = await fresh('lock_retry');
    const master = await db.master();
    await bootstrapDatabase(master, 'bridge', {
      contextKey: TEST_CONTEXT_KEY,
      runtimePasswords: { bridge: RUNTIME_PASSWORD },
    });
    await master.query("SET lock_timeout = '200ms'");
    // Another session holds the tenant's provisioning lock, as a long migration or offboarding would.
    const holder = await db.master();
    await holder.query('BEGIN');
    await holder.query(lockTarget('bridge:kessler').toQuery());
    const attempts: number[] = [];
    const done = withLockRetries(
      () => provisionBridgeTenant(master, 'kessler'),
      (_m, f) => attempts.push(f.attempt as number),
      30,
      (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 100))),
    );
    await new Promise((r) => setTimeout(r, 700));
    await holder.query('COMMIT');
    await expect(done).resolves.toMatchObject({ schema: 't_kessler' });
    expect(attempts.length).toBeGreaterThanOrEqual(2);
  });

  test('past its deadline it fails with the reason and the fix, and nothing is half done', async () => {
    const { withLockRetries } = await import('../../lambda/tenant-provisioner');
    const db = await fresh('lock_deadline');
    const master = await db.master();
    await bootstrapDatabase(master, 'bridge', {
      contextKey: TEST_CONTEXT_KEY,
      runtimePasswords: { bridge: RUNTIME_PASSWORD },
    });
    await master.query("SET lock_timeout = '100ms'");
    const holder = await db.master();
    await holder.query('BEGIN');
    await holder.query(lockTarget('bridge:kessler').toQuery());
    await expect(
      withLockRetries(
        () => provisionBridgeTenant(master, 'kessler'),
        () => undefined,
        1,
        (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
      ),
    ).rejects.toThrow(/still waiting for a lock after \d+ attempts over 1 s: a long transaction holds it/);
    await holder.query('ROLLBACK');
    const schemas = await master.query("SELECT 1 FROM pg_namespace WHERE nspname = 't_kessler'");
    expect(schemas.rowCount).toBe(0);
  });
});
