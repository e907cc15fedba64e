import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Moto, REGISTRY_TABLE, startMoto } from '../helpers/moto';
import { loadCatalog } from '../../lib/catalog';
import { fleetFromRegistry } from '../../lib/fleet-source';

let moto: Moto;
let fleet: typeof import('../../scripts/fleet');
beforeAll(async () => {
  moto = await startMoto();
  fleet = await import('../../scripts/fleet');
});
afterAll(async () => {
  await moto.stop();
});

const request = (id: string, model: string, settings: object = {}) =>
  JSON.stringify({ id, name: id.toUpperCase(), model, settings });

describe('one fleet: the registry is the source of truth', () => {
  test('every active tenant, however onboarded, becomes a catalog entry; the rest are listed with the reason', async () => {
    await moto.put({
      tenantId: 'acme',
      model: 'pool',
      status: 'active',
      request: request('acme', 'pool'),
      requestedBy: 'catalog',
    });
    await moto.put({
      tenantId: 'initrode',
      model: 'silo',
      status: 'active',
      request: request('initrode', 'silo', { vpcCidr: '10.20.0.0/20' }),
      requestedBy: 'arn:aws:iam::111122223333:role/ops',
    });
    await moto.put({
      tenantId: 'gone',
      model: 'bridge',
      status: 'offboarded',
      request: request('gone', 'bridge'),
    });
    await moto.put({ tenantId: 'legacy', model: 'pool', status: 'active' });
    // Enough tenants that the scan is paginated (moto pages at 1 MB like DynamoDB, so make items large).
    for (let i = 0; i < 60; i++) {
      await moto.put({
        tenantId: `bulk-${i}`,
        model: 'bridge',
        status: 'active',
        request: request(`bulk-${i}`, 'bridge'),
        pad: 'x'.repeat(20000),
      });
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-'));
    const file = path.join(dir, 'fleet.json');
    const lines: string[] = [];
    expect(await fleet.pull(['--out', file, '--table', REGISTRY_TABLE], (l) => lines.push(l))).toBe(0);
    const catalog = loadCatalog(file);
    expect(catalog.tenants.map((t) => t.id)).toEqual(
      expect.arrayContaining(['acme', 'initrode', 'bulk-0', 'bulk-59']),
    );
    expect(catalog.tenants).toHaveLength(62);
    expect(catalog.tenants.find((t) => t.id === 'initrode')!.silo!.vpcCidr).toBe('10.20.0.0/20');
    expect(lines).toEqual(
      expect.arrayContaining([
        '  skipped gone: status offboarded',
        '  skipped legacy: no request kept in the registry: deploy it once from its catalog entry to record it',
      ]),
    );
  });

  test("the pulled catalog keeps the deployed catalog's shared-cell plans, so a deploy from it sizes the cells the same", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-'));
    const plans = path.join(dir, 'tenants.json');
    fs.writeFileSync(plans, JSON.stringify({ tenants: [], sharedCells: { pool: { plannedTenants: 400 } } }));
    const file = path.join(dir, 'fleet.json');
    const out = ['--out', file, '--table', REGISTRY_TABLE, '--catalog', plans];
    expect(await fleet.pull(out, () => undefined)).toBe(0);
    expect(loadCatalog(file).sharedCells).toEqual({ pool: { plannedTenants: 400 } });
    expect(fleetFromRegistry([]).catalog).toEqual({ tenants: [] });
  });

  test('a registry whose requests break the catalog rules fails the pull, naming the tenant', () => {
    expect(() =>
      fleetFromRegistry([
        {
          tenantId: 'a-silo',
          model: 'silo',
          status: 'active',
          request: request('a-silo', 'silo', { vpcCidr: '10.30.0.0/20' }),
        },
        {
          tenantId: 'b-silo',
          model: 'silo',
          status: 'active',
          request: request('b-silo', 'silo', { vpcCidr: '10.30.0.0/20' }),
        },
      ]),
    ).toThrow('tenant "b-silo": field "settings.vpcCidr" 10.30.0.0/20 overlaps tenant "a-silo"');
  });
});
