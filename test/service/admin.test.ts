import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { spawnSync } from 'child_process';
import { Client } from 'pg';
import { AdminError, offboard, onboard } from '../../service/src/local/admin';
import { LocalPlatform } from '../../service/src/local/platform';
import { sql } from '../../db/sql';
import { MASTER_PASSWORD, MASTER_ROLE, RUNTIME_PASSWORD, serverUrl } from '../db/harness';

// npm run onboard / offboard, end to end against the run's real PostgreSQL server.
const REPO = path.join(__dirname, '..', '..');
let platform: LocalPlatform;
let dir: string;
let prefix: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'admin-test-'));
  prefix = `adm_${randomBytes(3).toString('hex')}_`;
  platform = await LocalPlatform.start({
    dir,
    serverUrl: serverUrl().toString(),
    databasePrefix: prefix,
    runtimePassword: RUNTIME_PASSWORD,
    master: { role: MASTER_ROLE, password: MASTER_PASSWORD },
  });
});
afterAll(async () => {
  await platform.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function schemasAndRoles(): Promise<string[]> {
  const u = serverUrl();
  u.pathname = `/${prefix}bridge`;
  const c = new Client({ connectionString: u.toString() });
  await c.connect();
  const r = await c.query(
    "SELECT nspname AS n FROM pg_namespace WHERE nspname LIKE 't\\_%' UNION SELECT rolname FROM pg_roles WHERE rolname LIKE 't\\_%' ORDER BY 1",
  );
  await c.end();
  return r.rows.map((x) => x.n);
}

describe('local onboarding and offboarding', () => {
  test('onboards a bridge tenant that the API can serve at once, then offboards it keeping its data', async () => {
    expect(await onboard(platform, { tenantId: 'globochem', model: 'bridge', name: 'Globochem' })).toBe(
      'onboarded bridge tenant "globochem" (Globochem): status active; administrator admin@globochem.example (npm run -s token -- globochem)',
    );
    const entry = (await platform.registry.get('globochem'))!;
    expect(entry).toMatchObject({ status: 'active', model: 'bridge', deletionPolicy: 'retain' });
    const db = platform.databaseFor(entry)!;
    await db.forTenant('globochem').run(sql`INSERT INTO invoices (customer) VALUES ('kept')`);
    expect(await offboard(platform, 'globochem')).toBe(
      'offboarded bridge tenant "globochem": its users disabled, access removed, data kept',
    );
    expect(await platform.registry.get('globochem')).toMatchObject({
      status: 'offboarded',
      dataRetained: true,
    });
    expect(await schemasAndRoles()).toContain('t_globochem');
    await expect(db.forTenant('globochem').run(sql`SELECT 1`)).rejects.toMatchObject({ code: '42501' });
  });

  test('a disposable silo tenant loses its data when offboarded', async () => {
    await onboard(platform, {
      tenantId: 'hyperion',
      model: 'silo',
      settings: { deletionPolicy: 'destroy', multiAz: false },
    });
    const db = platform.databaseFor((await platform.registry.get('hyperion'))!)!;
    await db.forTenant('hyperion').run(sql`INSERT INTO invoices (customer) VALUES ('temp')`);
    expect(await offboard(platform, 'hyperion')).toBe(
      'offboarded silo tenant "hyperion": its users disabled, disposable, its data was deleted',
    );
    expect(await platform.registry.get('hyperion')).toMatchObject({
      status: 'offboarded',
      dataRetained: false,
    });
  });

  test.each([
    [
      { tenantId: 'Bad Id!', model: 'pool' },
      'onboard request refused: the request: field "id": "Bad Id!" is invalid',
    ],
    [{ tenantId: 'postgres', model: 'pool' }, '"postgres" is reserved'],
    [
      { tenantId: 'veridian', model: 'shared' },
      'field "model" is "shared": use one of "silo", "pool", "bridge"',
    ],
    [
      { tenantId: 'veridian', model: 'pool', settings: { vpcCidr: '10.9.0.0/20' } },
      'applies to silo tenants only',
    ],
    [
      { tenantId: 'veridian', model: 'pool', restoreFrom: 'tenants/acme/a.tfa' },
      'on the local platform, onboard "veridian" with npm run tenant -- restore --from <file> --tenant <its tenant> --as veridian',
    ],
  ])('refuses the onboard request %j with a clear message, and changes nothing', async (request, message) => {
    const registryBefore = JSON.stringify(platform.registry.readAll());
    const before = await schemasAndRoles();
    await expect(onboard(platform, request)).rejects.toThrow(AdminError);
    await expect(onboard(platform, request)).rejects.toThrow(message);
    expect(JSON.stringify(platform.registry.readAll())).toBe(registryBefore);
    expect(await schemasAndRoles()).toEqual(before);
  });

  test('refuses to onboard a tenant that already exists, and changes nothing', async () => {
    await onboard(platform, { tenantId: 'initrode', model: 'pool' });
    const registryBefore = JSON.stringify(platform.registry.readAll());
    await expect(onboard(platform, { tenantId: 'initrode', model: 'bridge' })).rejects.toThrow(
      'onboard request: tenant "initrode" already exists (model pool, status active): choose another id, or offboard it first',
    );
    expect(JSON.stringify(platform.registry.readAll())).toBe(registryBefore);
  });

  test('refuses to offboard an unknown tenant, and changes nothing', async () => {
    const registryBefore = JSON.stringify(platform.registry.readAll());
    await expect(offboard(platform, 'nobody-here')).rejects.toThrow(
      'offboard request: tenant "nobody-here" is unknown: nothing was changed',
    );
    await expect(offboard(platform, 'Bad!')).rejects.toThrow('offboard request: tenant id "Bad!" is invalid');
    expect(JSON.stringify(platform.registry.readAll())).toBe(registryBefore);
  });
});

describe("the local platform's users", () => {
  const token = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts', 'token.ts'), ...args], {
      cwd: REPO,
      env: { ...process.env, LOCAL_DIR: dir },
      encoding: 'utf8',
    });

  test('onboarding invites the first administrator; npm run token signs only for enabled users of the tenant', async () => {
    await onboard(platform, { tenantId: 'vandelay', model: 'pool', adminEmail: 'Art@Vandelay.example' });
    expect(platform.users.signInAs('vandelay')).toEqual({
      email: 'art@vandelay.example',
      tenantId: 'vandelay',
      enabled: true,
    });
    const ok = token('vandelay');
    expect(ok.status).toBe(0);
    const claims = JSON.parse(Buffer.from(ok.stdout.trim().split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ 'custom:tenant_id': 'vandelay', email: 'art@vandelay.example' });

    const stranger = token('vandelay', '--user', 'george@vandelay.example');
    expect(stranger.status).toBe(1);
    expect(stranger.stderr).toContain(
      'token: george@vandelay.example is not a user of tenant "vandelay": its users are art@vandelay.example',
    );
    const nobody = token('kramerica');
    expect(nobody.stderr).toContain('token: tenant "kramerica" has no users on the local platform');

    await offboard(platform, 'vandelay');
    const disabled = token('vandelay');
    expect(disabled.status).toBe(1);
    expect(disabled.stderr).toContain(
      'token: art@vandelay.example of tenant "vandelay" is disabled (the tenant was offboarded)',
    );
    expect(await onboard(platform, { tenantId: 'vandelay', model: 'pool', restore: true })).toContain(
      'users enabled again: art@vandelay.example',
    );
    expect(token('vandelay').status).toBe(0);
  });

  test("another tenant's user cannot be named administrator: refused before anything changes", async () => {
    await onboard(platform, { tenantId: 'pendant', model: 'pool', adminEmail: 'boss@shared.example' });
    const registryBefore = JSON.stringify(platform.registry.readAll());
    await expect(
      onboard(platform, { tenantId: 'kramerica', model: 'pool', adminEmail: 'boss@shared.example' }),
    ).rejects.toThrow(
      new AdminError(
        'onboard request refused: boss@shared.example is already a user of another tenant: a user belongs to one tenant; name another administrator (--admin-email)',
      ),
    );
    expect(JSON.stringify(platform.registry.readAll())).toBe(registryBefore);
    expect(platform.users.all().filter((u) => u.tenantId === 'kramerica')).toEqual([]);
  });
});
