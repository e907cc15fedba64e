import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { randomBytes } from 'crypto';
import type { AddressInfo } from 'net';
import type { FastifyInstance } from 'fastify';
import { parseCatalog, Tenant } from '../../lib/catalog';
import { ident, sql } from '../../db/sql';
import { createInvoice } from '../../db/invoices';
import {
  ArchiveKey,
  ArchiveWriter,
  canonicalSession,
  digestTables,
  tableColumns,
  TENANT_TABLES,
  MAX_ARCHIVE_LINE,
  restoreArchive,
  verifyArchive,
  waitForOlderTransactions,
} from '../../db/mobility';
import { LATEST_VERSION } from '../../db/migrations';
import { dataModel } from '../../db/models';
import { TENANT_EXPIRY_SETTING, type IsolationModel } from '../../contracts';
import { buildApp } from '../../service/src/app';
import { createAuthenticator } from '../../service/src/auth';
import { CachedRegistry } from '../../service/src/registry';
import { TenantLimiter, UNMETERED } from '../../service/src/tenant-limits';
import { LOCAL_CLIENT_ID, LOCAL_USER_POOL_ID } from '../../service/src/local/issuer';
import { LocalPlatform } from '../../service/src/local/platform';
import { MobilityError, TenantMobility } from '../../service/src/local/mobility';
import { offboard } from '../../service/src/local/admin';
import { MASTER_PASSWORD, MASTER_ROLE, RUNTIME_PASSWORD, serverUrl } from '../db/harness';

// Export, restore and move on the real local platform (the run's PostgreSQL server), through the runtime
// principals, with the API serving tenants while their data moves.
const SEEDED: Record<string, IsolationModel> = {
  'm-pool': 'pool',
  'm-bridge': 'bridge',
  'm-silo': 'silo',
  'n-pool': 'pool',
  'n-bridge': 'bridge',
  mover: 'pool',
  neighbour: 'pool',
  failing: 'bridge',
  frosty: 'pool',
  chilly: 'bridge',
  forced: 'bridge',
  'forced-live': 'pool',
  throwaway: 'pool',
  racer: 'bridge',
  'lock-loser': 'pool',
  aborter: 'bridge',
};

let platform: LocalPlatform;
let mobility: TenantMobility;
let dir: string;

const scope = (tenantId: string, model: IsolationModel) =>
  platform.databaseFor({ tenantId, model, status: 'active' })!.forTenant(tenantId);

async function seed(tenantId: string, model: IsolationModel, n: number, tag = 'seed'): Promise<void> {
  for (let i = 0; i < n; i++) {
    await createInvoice(scope(tenantId, model), {
      customer: `${tenantId} customer ${i} "quoted" \\ é ✓`,
      reference: `${tag}-${i}`,
      dueOn: i % 2 ? '2027-01-31' : undefined,
      items: [
        { description: `line one of ${i}`, quantity: i + 1, unitPriceCents: 1999 },
        { description: 'line two', quantity: 1, unitPriceCents: 0 },
      ],
    });
  }
}

/** Counts and checksums of a tenant's rows as its runtime principal reads them. */
async function digestOf(tenantId: string, model: IsolationModel) {
  return scope(tenantId, model).snapshot(async (tx) => {
    await canonicalSession(tx.query);
    const columns: Record<string, string[]> = {};
    for (const t of TENANT_TABLES) columns[t.name] = await tableColumns(tx.query, t.name);
    return digestTables(tx.query, columns);
  });
}

/** A count in a cell's bookkeeping, read as the owner role (the master user acts as it). */
const ownerCount = (model: IsolationModel, tenantId: string, query: string) =>
  platform.withMaster(model, tenantId, async (c) => {
    await c.query('BEGIN');
    try {
      await c.query('SET LOCAL ROLE tenant_owner');
      return (await c.query<{ n: number }>(query)).rows[0].n;
    } finally {
      await c.query('ROLLBACK');
    }
  });

const file = (name: string) => path.join(dir, `${name}-${randomBytes(3).toString('hex')}.tfa`);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mobility-test-'));
  const catalog = parseCatalog(
    {
      tenants: Object.entries(SEEDED).map(([id, model]) => ({
        id,
        name: id,
        model,
        ...(model === 'silo' ? { settings: { vpcCidr: '10.40.0.0/20' } } : {}),
        ...(id === 'throwaway' ? { settings: { deletionPolicy: 'destroy' } } : {}),
      })),
    },
    'mobility test catalog',
  );
  platform = await LocalPlatform.start({
    dir,
    serverUrl: serverUrl().toString(),
    databasePrefix: `mob_${randomBytes(3).toString('hex')}_`,
    runtimePassword: RUNTIME_PASSWORD,
    master: { role: MASTER_ROLE, password: MASTER_PASSWORD },
    poolSize: 4,
  });
  for (const t of catalog.tenants) await platform.provisionTenant(t as Tenant);
  mobility = new TenantMobility(platform, path.join(dir, 'moves'));
  for (const [id, model] of Object.entries(SEEDED)) await seed(id, model, 12);
}, 60000);

afterAll(async () => {
  await platform?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('freeze (M1, M2)', () => {
  test('a frozen pool tenant reads and writes nothing, not even with SQL that turns its transaction read-only mid-statement; thawing restores it', async () => {
    await platform.withMaster('pool', 'frosty', (c, o) => dataModel('pool').freeze(c, 'frosty', o));
    await expect(seed('frosty', 'pool', 1, 'frozen')).rejects.toMatchObject({ code: '42501' });
    const read = await scope('frosty', 'pool').run<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM invoices`,
    );
    expect(read.rows[0].n).toBe(12);
    // Injected SQL that makes the transaction read-only after the executor's check, before the policy runs.
    for (const statement of [
      sql`UPDATE invoices SET customer = 'changed while frozen' FROM (SELECT set_config('transaction_read_only', 'on', true)) s`,
      sql`DELETE FROM invoices USING (SELECT set_config('transaction_read_only', 'on', true)) s`,
      sql`INSERT INTO invoices (customer) SELECT 'sneaked in' FROM (SELECT set_config('transaction_read_only', 'on', true)) s`,
    ]) {
      await expect(scope('frosty', 'pool').run(statement)).rejects.toMatchObject({ code: '42501' });
    }
    expect((await digestOf('frosty', 'pool')).rows.invoices).toBe(12);
    // The neighbour is untouched.
    await seed('neighbour', 'pool', 1, 'while-frosty-frozen');
    await platform.withMaster('pool', 'frosty', (c, o) => dataModel('pool').unfreeze(c, 'frosty', o));
    await seed('frosty', 'pool', 1, 'thawed');
    expect((await digestOf('frosty', 'pool')).rows.invoices).toBe(13);
  });

  test('a frozen bridge tenant keeps SELECT and loses INSERT, UPDATE and DELETE; thawing gives them back', async () => {
    await platform.withMaster('bridge', 'chilly', (c, o) => dataModel('bridge').freeze(c, 'chilly', o));
    await expect(seed('chilly', 'bridge', 1, 'frozen')).rejects.toMatchObject({ code: '42501' });
    await expect(scope('chilly', 'bridge').run(sql`DELETE FROM invoices`)).rejects.toMatchObject({
      code: '42501',
    });
    const read = await scope('chilly', 'bridge').run<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM invoices`,
    );
    expect(read.rows[0].n).toBe(12);
    await platform.withMaster('bridge', 'chilly', (c, o) => dataModel('bridge').unfreeze(c, 'chilly', o));
    await seed('chilly', 'bridge', 1, 'thawed');
    expect((await digestOf('chilly', 'bridge')).rows.invoices).toBe(13);
  });

  test('a frozen tenant schema is not migrated (a release waits for the move), and is once thawed', async () => {
    await platform.withMaster('bridge', 'chilly', (c, o) => dataModel('bridge').freeze(c, 'chilly', o));
    await expect(
      platform.withMaster('bridge', 'chilly', (c, o) =>
        dataModel('bridge').provision(c, { id: 'chilly', name: 'chilly' }, o),
      ),
    ).rejects.toThrow('bridge:chilly is frozen while its data moves');
    await platform.withMaster('bridge', 'chilly', (c, o) => dataModel('bridge').unfreeze(c, 'chilly', o));
    await expect(
      platform.withMaster('bridge', 'chilly', (c, o) =>
        dataModel('bridge').provision(c, { id: 'chilly', name: 'chilly' }, o),
      ),
    ).resolves.toMatchObject({ version: LATEST_VERSION });
  });

  test('the freeze waits for a write that began before it, and the export then holds it (M2)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const writing = scope('frosty', 'pool').transaction(async (tx) => {
      await tx.query(sql`INSERT INTO invoices (customer, reference) VALUES ('in flight', 'in-flight')`);
      await gate;
    });
    await new Promise((r) => setTimeout(r, 50));
    const waited = platform.withMaster('pool', 'frosty', async (c, o) => {
      await dataModel('pool').freeze(c, 'frosty', o);
      const t0 = Date.now();
      await waitForOlderTransactions(c, dataModel('pool').runtimeRole(o));
      return Date.now() - t0;
    });
    setTimeout(release, 300);
    await writing;
    expect(await waited).toBeGreaterThanOrEqual(200);
    const out = file('frosty');
    await mobility.export('frosty', out);
    expect(zlib.gunzipSync(fs.readFileSync(out)).toString()).toContain('in flight');
    await platform.withMaster('pool', 'frosty', (c, o) => dataModel('pool').unfreeze(c, 'frosty', o));
  });
});

test('the wait after a freeze is for the runtime role only: an operator idle in a transaction does not hold it up', async () => {
  const operator = await platform.openMaster('pool', 'frosty');
  try {
    await operator.query('BEGIN');
    await operator.query('SELECT 1');
    const t0 = Date.now();
    await platform.withMaster('pool', 'frosty', (c, o) =>
      waitForOlderTransactions(c, dataModel('pool').runtimeRole(o), 2000),
    );
    expect(Date.now() - t0).toBeLessThan(1000);
  } finally {
    await operator.query('ROLLBACK');
    await operator.end();
  }
});

describe('export (M3)', () => {
  test("the export reads as the tenant's runtime principal: only its rows, and a neighbour's are out of its reach", async () => {
    const out = file('m-pool');
    const manifest = await mobility.export('m-pool', out);
    expect(manifest).toMatchObject({
      tenantId: 'm-pool',
      model: 'pool',
      schemaVersion: LATEST_VERSION,
      rows: { invoices: 12, invoice_items: 24 },
      encrypted: false,
    });
    expect(manifest.tables.find((t) => t.name === 'invoices')!.columns).not.toContain('tenant_id');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const text = zlib.gunzipSync(fs.readFileSync(out)).toString();
    expect(text).toContain('m-pool customer');
    expect(text).not.toContain('n-pool customer');
    // The principal the export runs as, in the transaction kind the export uses, sees no neighbour row.
    const seen = await scope('m-pool', 'pool').snapshot(async (tx) => {
      const r = await tx.query<{ n: number }>(
        sql`SELECT count(*)::int AS n FROM invoices WHERE tenant_id = ${'n-pool'}`,
      );
      return r.rows[0].n;
    });
    expect(seen).toBe(0);
    // A snapshot's credential outlives a long export (the API's units of work get two minutes).
    const expiry = await scope('m-pool', 'pool').snapshot(async (tx) => {
      const r = await tx.query<{ e: string }>(sql`SELECT current_setting(${TENANT_EXPIRY_SETTING}) AS e`);
      return Number(r.rows[0].e);
    });
    expect(expiry - Date.now() / 1000).toBeGreaterThan(3600);
    // Bridge: the neighbour's schema cannot even be named.
    const other = dataModel('bridge').schemaOf('n-bridge', {});
    await expect(
      scope('m-bridge', 'bridge').snapshot((tx) =>
        tx.query(sql`SELECT count(*) FROM ${ident(other)}.invoices`),
      ),
    ).rejects.toMatchObject({ code: '42501' });
  });

  test('an encrypted export is unreadable without the key and restores with it', async () => {
    const out = file('enc');
    const manifest = await mobility.export('m-bridge', out, { encrypt: true });
    expect(manifest.encrypted).toBe(true);
    const bytes = fs.readFileSync(out);
    expect(bytes.includes(Buffer.from('m-bridge customer'))).toBe(false);
    expect(() => zlib.gunzipSync(bytes)).toThrow();
    expect(await verifyArchive(out, platform.archiveKey)).toMatchObject({
      rows: manifest.rows,
      encrypted: true,
    });
    await expect(verifyArchive(out, ArchiveKey.fromHex('ab'.repeat(32), 'test'))).rejects.toThrow(
      /decrypted/,
    );
    await mobility.restore(out, { tenantId: 'm-bridge', as: 'enc-copy', model: 'pool' });
    expect(await digestOf('enc-copy', 'pool')).toEqual(await digestOf('m-bridge', 'bridge'));
  });
});

describe('round trips between every pair of models', () => {
  const sources: [string, IsolationModel][] = [
    ['m-pool', 'pool'],
    ['m-bridge', 'bridge'],
    ['m-silo', 'silo'],
  ];
  const models: IsolationModel[] = ['pool', 'bridge', 'silo'];
  test.each(sources.flatMap(([id, from]) => models.map((to) => [id, from, to] as const)))(
    '%s (%s) -> %s: export, restore as a new tenant, identical counts and checksums',
    async (id, from, to) => {
      const out = file(id);
      const manifest = await mobility.export(id, out);
      const copy = `rt-${from}-${to}`;
      const result = await mobility.restore(out, { tenantId: id, as: copy, model: to });
      expect(result).toMatchObject({
        tenantId: copy,
        model: to,
        created: true,
        schemaVersion: LATEST_VERSION,
      });
      expect(await platform.registry.get(copy)).toMatchObject({ status: 'active', model: to });
      const restored = await digestOf(copy, to);
      expect(restored).toEqual({ rows: manifest.rows, checksums: manifest.checksums });
      expect(restored).toEqual(await digestOf(id, from));
    },
    30000,
  );
});

describe('refusals leave the target unchanged', () => {
  let good: string;
  let before: Awaited<ReturnType<typeof digestOf>>;
  let registry: string;

  beforeAll(async () => {
    good = file('good');
    await mobility.export('m-bridge', good);
    before = await digestOf('n-bridge', 'bridge');
    registry = JSON.stringify(platform.registry.readAll());
  });

  const unchanged = async () => {
    expect(await digestOf('n-bridge', 'bridge')).toEqual(before);
    expect(await platform.registry.get('victim')).toBeUndefined();
    // Nothing was provisioned for the refused new tenant either.
    expect(
      await ownerCount(
        'bridge',
        'victim',
        `SELECT count(*)::int AS n FROM tenancy.targets WHERE target = 'bridge:victim'`,
      ),
    ).toBe(0);
    // No staging schema left behind.
    expect(
      await ownerCount(
        'bridge',
        'victim',
        `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'tf_restore_%'`,
      ),
    ).toBe(0);
  };

  /** The uncompressed lines of an archive, to forge variants of it. */
  const lines = (f: string) => zlib.gunzipSync(fs.readFileSync(f)).toString().split('\n');
  const writeLines = (ls: string[]) => {
    const f = file('forged');
    fs.writeFileSync(f, zlib.gzipSync(ls.join('\n')));
    return f;
  };

  test.each([
    [
      'truncated (bytes cut off the end)',
      () => {
        const f = file('cut');
        const b = fs.readFileSync(good);
        fs.writeFileSync(f, b.subarray(0, b.length - 40));
        return f;
      },
      /truncated or damaged|truncated/,
    ],
    [
      'truncated (whole lines dropped, then compressed again)',
      () => writeLines(lines(good).slice(0, -3)),
      /truncated/,
    ],
    [
      'altered (a value changed, then compressed again)',
      () =>
        writeLines(
          lines(good).map((l, i) => (i === 1 ? l.replace('m-bridge customer', 'n-bridge customer') : l)),
        ),
      /do not match its manifest|signature does not match/,
    ],
    [
      'altered (a row and its manifest changed together)',
      () => {
        const ls = lines(good);
        ls.splice(2, 1);
        return writeLines(ls);
      },
      /rows|signature/,
    ],
    [
      'not an archive',
      () => {
        const f = file('junk');
        fs.writeFileSync(f, zlib.gzipSync('{"hello":"world"}\n'));
        return f;
      },
      /not a tenant archive/,
    ],
  ])('%s', async (_what, make, reason) => {
    const f = make();
    await expect(mobility.restore(f, { tenantId: 'm-bridge', as: 'victim' })).rejects.toThrow(reason);
    await expect(mobility.restore(f, { tenantId: 'm-bridge', as: 'n-bridge', force: true })).rejects.toThrow(
      reason,
    );
    await unchanged();
  });

  test('a line longer than any row: refused after reading at most that much, in linear time', async () => {
    const f = file('long-line');
    fs.writeFileSync(f, zlib.gzipSync(Buffer.alloc(MAX_ARCHIVE_LINE + 1024, 'a')));
    const t0 = Date.now();
    await expect(mobility.restore(f, { tenantId: 'm-bridge', as: 'victim' })).rejects.toThrow(/longer than/);
    expect(Date.now() - t0).toBeLessThan(10000);
    await unchanged();
  });

  test('the data plane checks the archive is of the tenant it was told, on the read that loads it', async () => {
    await expect(
      platform.withMaster('bridge', 'n-bridge', (c, o) =>
        restoreArchive(c, good, platform.archiveKey, {
          tenantId: 'n-bridge',
          archiveTenantId: 'n-bridge',
          model: 'bridge',
          options: o,
          replace: true,
        }),
      ),
    ).rejects.toThrow(`is tenant "m-bridge"'s archive, not "n-bridge"'s`);
    await unchanged();
  });

  test('foreign: made by another installation (another archive key)', async () => {
    const f = file('foreign');
    const w = await ArchiveWriter.open(
      f,
      {
        tenantId: 'm-bridge',
        model: 'bridge',
        schemaVersion: LATEST_VERSION,
        tables: [{ name: 'invoices', columns: ['id'] }],
      },
      ArchiveKey.fromHex('cd'.repeat(32), 'another installation'),
    );
    await w.finish();
    await expect(mobility.restore(f, { tenantId: 'm-bridge', as: 'victim' })).rejects.toThrow(
      /another installation/,
    );
    await unchanged();
  });

  test('newer: a schema version this release does not know, named in the refusal', async () => {
    const f = file('newer');
    const w = await ArchiveWriter.open(
      f,
      {
        tenantId: 'm-bridge',
        model: 'bridge',
        schemaVersion: LATEST_VERSION + 1,
        tables: TENANT_TABLES.map((t) => ({ name: t.name, columns: ['id'] })),
      },
      platform.archiveKey,
    );
    await w.finish();
    await expect(mobility.restore(f, { tenantId: 'm-bridge', as: 'victim' })).rejects.toThrow(
      `is at schema version ${LATEST_VERSION + 1}, newer than this release's latest (${LATEST_VERSION})`,
    );
    await unchanged();
  });

  test("another tenant's archive under a tenant's name, and a restore over an active tenant without --force", async () => {
    await expect(mobility.restore(good, { tenantId: 'n-bridge' })).rejects.toThrow(/not "n-bridge"'s/);
    await expect(mobility.restore(good, { tenantId: 'm-bridge' })).rejects.toThrow(/is active .*--force/);
    expect(JSON.stringify(platform.registry.readAll())).toBe(registry);
    await unchanged();
  });

  test('a restore that fails half-way (a row breaks a constraint) writes nothing and leaves no tenant behind', async () => {
    const f = file('bad-row');
    const tables = TENANT_TABLES.map((t) => ({ name: t.name, columns: [] as string[] }));
    tables[0].columns = ['id', 'customer', 'reference', 'created_at', 'due_on'];
    tables[1].columns = ['invoice_id', 'line_no', 'description', 'quantity', 'unit_price_cents'];
    const w = await ArchiveWriter.open(
      f,
      { tenantId: 'm-bridge', model: 'bridge', schemaVersion: LATEST_VERSION, tables },
      platform.archiveKey,
    );
    const id = '00000000-0000-4000-8000-000000000001';
    await w.row('invoices', [id, 'ok', null, '2026-01-01 00:00:00+00', null]);
    await w.row('invoice_items', [id, '1', 'negative', '-5', '100']);
    await w.finish();
    await expect(mobility.restore(f, { tenantId: 'm-bridge', as: 'victim' })).rejects.toMatchObject({
      code: '23514',
    });
    await unchanged();
  });
});

test('--force exports what the tenant has first, then replaces it, all or nothing', async () => {
  const replacement = file('replacement');
  await mobility.export('m-bridge', replacement);
  const original = await digestOf('forced', 'bridge');
  const source = await digestOf('m-bridge', 'bridge');
  // Same tenant id is required: forge by exporting 'forced' later; here restore m-bridge's archive as 'forced'.
  const result = await mobility.restore(replacement, { tenantId: 'm-bridge', as: 'forced', force: true });
  expect(result.created).toBe(false);
  expect(await digestOf('forced', 'bridge')).toEqual(source);
  // Beside the archive restored, named after it, the tenant and the time (UTC, to the millisecond).
  expect(result.safetyFile!.startsWith(replacement.replace(/\.tfa$/, '.before-restore-forced-'))).toBe(true);
  expect(result.safetyFile).toMatch(/\.before-restore-forced-\d{8}T\d{6}\.\d{3}Z\.tfa$/);
  const safety = await verifyArchive(result.safetyFile!, platform.archiveKey);
  expect({ rows: safety.rows, checksums: safety.checksums }).toEqual(original);
  // And the safety archive brings the old data back.
  await mobility.restore(result.safetyFile!, { tenantId: 'forced', force: true });
  expect(await digestOf('forced', 'bridge')).toEqual(original);
});

test('--force over a live tenant freezes it first: every write it acknowledged is in the safety export or in the tenant, none lost', async () => {
  const replacement = file('live-replacement');
  await mobility.export('m-pool', replacement);
  const acked = new Set<string>();
  let refused = 0;
  let stop = false;
  let n = 0;
  const writer = async () => {
    while (!stop) {
      try {
        const inv = await createInvoice(scope('forced-live', 'pool'), {
          customer: 'live write',
          reference: `live-${n++}`,
          items: [{ description: 'x', quantity: 1, unitPriceCents: 1 }],
        });
        acked.add(inv.id);
      } catch (e) {
        if ((e as { code?: string }).code !== '42501') throw e;
        refused++;
      }
    }
  };
  const writers = [writer(), writer()];
  await new Promise((r) => setTimeout(r, 100));
  let result;
  try {
    result = await mobility.restore(replacement, { tenantId: 'm-pool', as: 'forced-live', force: true });
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  expect(refused).toBeGreaterThan(0);
  const safety = zlib.gunzipSync(fs.readFileSync(result.safetyFile!)).toString();
  const now = await scope('forced-live', 'pool').run<{ id: string }>(sql`SELECT id FROM invoices`);
  const held = new Set(now.rows.map((r) => r.id));
  const lost = [...acked].filter((id) => !held.has(id) && !safety.includes(id));
  expect(lost).toEqual([]);
  expect(await platform.registry.get('forced-live')).toMatchObject({ status: 'active', model: 'pool' });
});

test('an archive that cannot be written fails at once, naming the path; a restore --force whose safety export cannot be written leaves the tenant serving', async () => {
  await expect(mobility.export('m-pool', '/nonexistent-dir/x.tfa')).rejects.toThrow(
    'archive /nonexistent-dir/x.tfa: cannot be created',
  );
  const archive = file('unwritable-neighbourhood');
  await mobility.export('forced', archive);
  const before = await digestOf('forced', 'bridge');
  // Read through /proc/self/fd: the archive reads fine, but nothing can be created beside it (not even by root).
  const handle = await fs.promises.open(archive, 'r');
  try {
    await expect(
      mobility.restore(`/proc/self/fd/${handle.fd}`, { tenantId: 'forced', force: true }),
    ).rejects.toThrow(/cannot be created/);
  } finally {
    await handle.close();
  }
  expect(await platform.registry.get('forced')).toMatchObject({ status: 'active', model: 'bridge' });
  await seed('forced', 'bridge', 1, 'after-failed-force');
  expect((await digestOf('forced', 'bridge')).rows.invoices).toBe(before.rows.invoices + 1);
});

test('an older archive is migrated forward by the migrations', async () => {
  const f = file('v1');
  const tables = [
    { name: 'invoices', columns: ['id', 'customer', 'reference', 'created_at'] },
    {
      name: 'invoice_items',
      columns: ['invoice_id', 'line_no', 'description', 'quantity', 'unit_price_cents'],
    },
  ];
  const w = await ArchiveWriter.open(
    f,
    { tenantId: 'old-timer', model: 'bridge', schemaVersion: 1, tables },
    platform.archiveKey,
  );
  const id = '00000000-0000-4000-8000-00000000000a';
  await w.row('invoices', [id, 'From version 1', 'v1-ref', '2025-03-04 05:06:07.123456+00']);
  await w.row('invoice_items', [id, '1', 'an old line', '3', '700']);
  await w.finish();
  const result = await mobility.restore(f, { tenantId: 'old-timer', model: 'pool' });
  expect(result.schemaVersion).toBe(LATEST_VERSION);
  const r = await scope('old-timer', 'pool').run<{
    customer: string;
    due_on: string | null;
    total_cents: string;
  }>(sql`SELECT customer, due_on, total_cents FROM invoice_summaries`);
  expect(r.rows).toEqual([{ customer: 'From version 1', due_on: null, total_cents: '2100' }]);
});

describe('move (M1, M2)', () => {
  test('pool -> bridge under concurrent writes from the tenant and a neighbour: every acknowledged write arrives, every later one is refused with 503', async () => {
    const registry = new CachedRegistry(platform.registry);
    const app: FastifyInstance = buildApp({
      authenticate: createAuthenticator({
        userPoolId: LOCAL_USER_POOL_ID,
        clientId: LOCAL_CLIENT_ID,
        jwks: platform.issuer.jwks,
      }),
      // The API's own cache: an active tenant is served from memory for 10 s, so the database must refuse.
      registry,
      forgetTenant: (tenantId) => registry.forget(tenantId),
      databaseFor: (entry) => platform.databaseFor(entry),
      ready: () => platform.ready(),
      // The writers run flat out; tier limits are another suite's subject.
      limiter: new TenantLimiter(() => UNMETERED),
      logger: false,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const tokens = {
      mover: platform.issuer.idToken({ tenantId: 'mover' }),
      neighbour: platform.issuer.idToken({ tenantId: 'neighbour' }),
    };
    const ledger = { mover: new Set<string>(), neighbour: new Set<string>() };
    const refused = { mover: 0, neighbour: 0 };
    const other: string[] = [];
    let stop = false;
    let n = 0;
    const writer = async (tenant: 'mover' | 'neighbour') => {
      while (!stop) {
        const res = await fetch(`${base}/invoices`, {
          method: 'POST',
          headers: { authorization: `Bearer ${tokens[tenant]}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            customer: `${tenant} load`,
            reference: `load-${n++}`,
            items: [{ description: 'x', quantity: 1, unitPriceCents: 1 }],
          }),
        });
        const body = (await res.json()) as { id: string };
        if (res.status === 201) ledger[tenant].add(body.id);
        else if (res.status === 503 && res.headers.get('retry-after')) refused[tenant]++;
        else other.push(`${tenant} ${res.status} ${JSON.stringify(body)}`);
      }
    };
    const writers = [
      writer('mover'),
      writer('mover'),
      writer('mover'),
      writer('neighbour'),
      writer('neighbour'),
    ];
    await new Promise((r) => setTimeout(r, 400));
    let ackedAtFreeze = 0;
    let report;
    try {
      report = await mobility.move('mover', 'bridge', {
        afterFreeze: async () => {
          ackedAtFreeze = ledger.mover.size;
          // Writes keep arriving while frozen: each must be refused, not lost.
          await new Promise((r) => setTimeout(r, 300));
        },
      });
      // The API re-reads a refused tenant's entry within a second (the registry cache's inactive TTL).
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      stop = true;
      await Promise.all(writers);
      await app.close();
    }

    expect(other).toEqual([]);
    expect(report).toMatchObject({ from: 'pool', to: 'bridge' });
    expect(refused.mover).toBeGreaterThan(0);
    expect(refused.neighbour).toBe(0);
    expect(ackedAtFreeze).toBeGreaterThan(0);
    // Writes were acknowledged again after the switch, now by the bridge cell.
    expect(ledger.mover.size).toBeGreaterThan(ackedAtFreeze);
    const held = await scope('mover', 'bridge').run<{ id: string }>(
      sql`SELECT id FROM invoices WHERE customer = 'mover load'`,
    );
    expect(new Set(held.rows.map((r) => r.id))).toEqual(ledger.mover);
    const neighbour = await scope('neighbour', 'pool').run<{ id: string }>(
      sql`SELECT id FROM invoices WHERE customer = 'neighbour load'`,
    );
    expect(new Set(neighbour.rows.map((r) => r.id))).toEqual(ledger.neighbour);
    expect(await platform.registry.get('mover')).toMatchObject({
      model: 'bridge',
      status: 'active',
      keptCopy: 'pool',
    });
    // The kept pool copy is unreachable by the pool runtime principal.
    await expect(scope('mover', 'pool').run(sql`SELECT count(*) FROM invoices`)).rejects.toMatchObject({
      code: '42501',
    });
  }, 60000);

  test('then bridge -> silo -> pool, purging each kept copy; the data survives every hop', async () => {
    const original = await digestOf('mover', 'bridge');
    await expect(mobility.move('mover', 'silo')).rejects.toThrow(/purge/);
    expect(await mobility.purge('mover')).toMatch(/pool copy .* removed/);
    const poolRows = await ownerCount(
      'pool',
      'mover',
      `SELECT count(*)::int AS n FROM tenancy.pool_tenants WHERE tenant_id = 'mover'`,
    );
    expect(poolRows).toBe(0);
    await mobility.move('mover', 'silo');
    expect(await digestOf('mover', 'silo')).toEqual(original);
    await mobility.purge('mover');
    const report = await mobility.move('mover', 'pool');
    expect(report.frozenMs).toBeLessThan(report.totalMs + 1);
    expect(await digestOf('mover', 'pool')).toEqual(original);
    await mobility.purge('mover');
    expect((await platform.registry.get('mover'))?.keptCopy).toBeUndefined();
  }, 60000);

  test('a move that fails before its switch leaves the tenant where it was, serving, with nothing in the destination', async () => {
    const before = await digestOf('failing', 'bridge');
    await expect(
      mobility.move('failing', 'pool', {
        beforeSwitch: async () => {
          throw new Error('the switch was interrupted');
        },
      }),
    ).rejects.toThrow('the switch was interrupted');
    expect(await platform.registry.get('failing')).toMatchObject({
      model: 'bridge',
      status: 'active',
      failureReason: expect.stringContaining('the tenant stayed bridge'),
    });
    expect(await digestOf('failing', 'bridge')).toEqual(before);
    await seed('failing', 'bridge', 1, 'after-failed-move');
    const inPool = await ownerCount(
      'pool',
      'failing',
      `SELECT count(*)::int AS n FROM tenancy.pool_tenants WHERE tenant_id = 'failing'`,
    );
    expect(inPool).toBe(0);
  });

  test('an interrupted move (the mover died after the freeze) is undone by abort-move: thawed, the partial copy removed, serving again', async () => {
    const entry = (await platform.registry.get('chilly'))!;
    platform.registry.put({ ...entry, status: 'moving', movingTo: 'silo' });
    await platform.withMaster('bridge', 'chilly', (c, o) => dataModel('bridge').freeze(c, 'chilly', o));
    await platform.provisionPlace('silo', { id: 'chilly', name: 'chilly' });
    await expect(mobility.move('chilly', 'pool')).rejects.toThrow(/abort-move --tenant chilly/);
    expect(await mobility.abortMove('chilly')).toMatch(/stays bridge: the partial silo copy was removed/);
    expect(await platform.registry.get('chilly')).toMatchObject({ status: 'active', model: 'bridge' });
    expect((await platform.registry.get('chilly'))!.movingTo).toBeUndefined();
    await seed('chilly', 'bridge', 1, 'after-abort');
    expect(platform.databaseFor({ tenantId: 'chilly', model: 'silo', status: 'offboarded' })).toBeUndefined();
    await expect(mobility.abortMove('chilly')).rejects.toThrow(/not moving: nothing to do/);
  });

  test('while a move runs, abort-move and a second move are refused (one operation per tenant)', async () => {
    await mobility.move('racer', 'pool', {
      afterFreeze: async () => {
        await expect(mobility.abortMove('racer')).rejects.toThrow(
          /is running \(another process holds its lock\)/,
        );
        await expect(mobility.move('racer', 'silo')).rejects.toThrow(/is running/);
      },
    });
    expect(await platform.registry.get('racer')).toMatchObject({ model: 'pool', status: 'active' });
  });

  test('offboarding a disposable tenant removes the copy its move kept too', async () => {
    await mobility.move('throwaway', 'bridge');
    await platform.offboardTenant('throwaway', 'destroy');
    expect(
      await ownerCount(
        'pool',
        'throwaway',
        `SELECT count(*)::int AS n FROM tenancy.pool_tenants WHERE tenant_id = 'throwaway'`,
      ),
    ).toBe(0);
    expect(await platform.registry.get('throwaway')).toMatchObject({
      status: 'offboarded',
      dataRetained: false,
    });
    expect((await platform.registry.get('throwaway'))!.keptCopy).toBeUndefined();
  });

  test('the API answers a moving (or restoring) tenant 503 with Retry-After, and its neighbour 200', async () => {
    const app = buildApp({
      authenticate: createAuthenticator({
        userPoolId: LOCAL_USER_POOL_ID,
        clientId: LOCAL_CLIENT_ID,
        jwks: platform.issuer.jwks,
      }),
      registry: platform.registry,
      databaseFor: (entry) => platform.databaseFor(entry),
      ready: () => platform.ready(),
      logger: false,
    });
    const entry = (await platform.registry.get('n-pool'))!;
    const get = (tenantId: string) =>
      app.inject({
        url: '/invoices?limit=1',
        headers: { authorization: `Bearer ${platform.issuer.idToken({ tenantId })}` },
      });
    try {
      platform.registry.put({ ...entry, status: 'moving', movingTo: 'silo' });
      const moving = await get('n-pool');
      expect(moving.statusCode).toBe(503);
      expect(moving.headers['retry-after']).toBe('2');
      expect(moving.json().message).toMatch(/"n-pool" is being moved to the silo model/);
      platform.registry.put({ ...entry, status: 'moving', movingTo: 'pool' });
      expect((await get('n-pool')).json().message).toMatch(/being restored from an archive/);
      expect((await get('neighbour')).statusCode).toBe(200);
    } finally {
      platform.registry.put(entry);
      await app.close();
    }
  });

  test('a move that loses its lock (its connection ended) stops before the switch, and the tenant stays where it was', async () => {
    const before = await digestOf('lock-loser', 'pool');
    await expect(
      mobility.move('lock-loser', 'bridge', {
        beforeSwitch: async () => {
          await platform.withMaster('pool', 'lock-loser', (c) =>
            c.query(
              `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE usename = current_user AND datname = current_database()
                  AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()`,
            ),
          );
        },
      }),
    ).rejects.toThrow(/lost its lock/);
    expect(await platform.registry.get('lock-loser')).toMatchObject({ model: 'pool', status: 'active' });
    expect(await digestOf('lock-loser', 'pool')).toEqual(before);
    await seed('lock-loser', 'pool', 1, 'after-lost-lock');
  });

  test('offboarding and purging wait for no move: refused while one runs', async () => {
    await mobility.move('aborter', 'pool', {
      afterFreeze: async () => {
        await expect(offboard(platform, 'aborter')).rejects.toThrow(
          /being changed by another request|is running/,
        );
        await expect(mobility.purge('aborter')).rejects.toThrow(/is running/);
      },
    });
    expect(await platform.registry.get('aborter')).toMatchObject({
      model: 'pool',
      status: 'active',
      keptCopy: 'bridge',
    });
  });

  test('abort-move undoes a move to pool that stopped before the pool place existed', async () => {
    await mobility.purge('aborter');
    await mobility.move('aborter', 'bridge');
    await mobility.purge('aborter');
    const entry = (await platform.registry.get('aborter'))!;
    platform.registry.put({ ...entry, status: 'moving', movingTo: 'pool' });
    await platform.withMaster('bridge', 'aborter', (c, o) => dataModel('bridge').freeze(c, 'aborter', o));
    expect(await mobility.abortMove('aborter')).toMatch(/stays bridge/);
    await seed('aborter', 'bridge', 1, 'after-abort');
  });

  test('abort-move also undoes a restore into a new id that was interrupted', async () => {
    platform.registry.put({
      tenantId: 'half-done',
      model: 'silo',
      status: 'provisioning',
      name: 'half-done',
      lock: 'local-restore:0123456789abcdef',
    });
    await platform.provisionPlace('silo', { id: 'half-done', name: 'half-done' });
    expect(await mobility.abortMove('half-done')).toMatch(
      /unfinished restore into this new silo tenant was removed/,
    );
    expect(await platform.registry.get('half-done')).toBeUndefined();
    expect(await platform.hasPlace('silo', 'half-done')).toBe(false);
    // An onboarding's provisioning entry (no restore mark) is not touched.
    platform.registry.put({
      tenantId: 'onboarding',
      model: 'pool',
      status: 'provisioning',
      name: 'onboarding',
    });
    await expect(mobility.abortMove('onboarding')).rejects.toThrow(
      /is provisioning, not moving: nothing to do/,
    );
    platform.registry.remove('onboarding');
  });

  test('a restore into a new id is refused when the database still holds a place for that id', async () => {
    await platform.provisionPlace('bridge', { id: 'orphan', name: 'orphan' });
    const f = file('orphan');
    await mobility.export('m-bridge', f);
    await expect(
      mobility.restore(f, { tenantId: 'm-bridge', as: 'orphan', model: 'bridge' }),
    ).rejects.toThrow(/holds data for that id/);
    expect(await platform.hasPlace('bridge', 'orphan')).toBe(true);
    expect(await platform.registry.get('orphan')).toBeUndefined();
  });

  test('a freeze the database refuses leaves the tenant active, not stuck moving', async () => {
    // The registry says pool, but the pool cell has no such tenant: the freeze is refused before it commits.
    platform.registry.put({ tenantId: 'ghost', model: 'pool', status: 'active', name: 'ghost' });
    await expect(mobility.move('ghost', 'bridge')).rejects.toThrow(
      /not registered as active in this database/,
    );
    expect(await platform.registry.get('ghost')).toMatchObject({
      status: 'active',
      model: 'pool',
      failureReason: expect.stringContaining('move to bridge failed'),
    });
    expect((await platform.registry.get('ghost'))!.movingTo).toBeUndefined();
    platform.registry.remove('ghost');
  });

  test('refused: an unknown model, the same model, a tenant that is not active', async () => {
    await expect(mobility.move('n-pool', 'pool')).rejects.toThrow(MobilityError);
    await expect(mobility.move('n-pool', 'cloud' as IsolationModel)).rejects.toThrow(/silo, pool or bridge/);
    await expect(mobility.move('nobody', 'bridge')).rejects.toThrow(/not in the local registry/);
  });
});

test('every table of a tenant schema is one the mobility tools copy', async () => {
  const tables = await platform.withMaster('bridge', 'n-bridge', async (c) =>
    (
      await c.query<{ t: string }>(
        `SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1`,
        [dataModel('bridge').schemaOf('n-bridge', {})],
      )
    ).rows.map((r) => r.t),
  );
  expect(tables).toEqual(TENANT_TABLES.map((t) => t.name).sort());
});
