import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CatalogError, loadCatalog, parseCatalog, tenantRequestOf } from '../../lib/catalog';
import { derivedNameProblem, tenantDbNames } from '../../db/naming';
import { REPO_ROOT } from './fleet-helpers';

function problemsOf(tenants: unknown[]): string[] {
  try {
    parseCatalog({ tenants }, 'tenants.json');
  } catch (e) {
    expect(e).toBeInstanceOf(CatalogError);
    return (e as CatalogError).messages;
  }
  throw new Error('expected the catalog to be refused');
}

const pool = (id: string, extra: object = {}) => ({ id, name: `Tenant ${id}`, model: 'pool', ...extra });
const silo = (id: string, settings: object = {}) => ({ id, name: `Tenant ${id}`, model: 'silo', settings });

describe('tenant catalog', () => {
  test('the default catalog is valid and holds at least two tenants of each model', () => {
    const catalog = loadCatalog(path.join(REPO_ROOT, 'tenants.json'));
    for (const model of ['silo', 'pool', 'bridge']) {
      expect(catalog.tenants.filter((t) => t.model === model).length).toBeGreaterThanOrEqual(2);
    }
  });

  test('applies secure defaults: retain data, Multi-AZ, 14 days of backups', () => {
    const { tenants } = parseCatalog({ tenants: [silo('northwind'), pool('acme')] }, 'c.json');
    expect(tenants[0]).toMatchObject({
      deletionPolicy: 'retain',
      silo: { multiAz: true, backupRetentionDays: 14, instanceClass: 't4g.medium' },
    });
    expect(tenants[1]).toMatchObject({ deletionPolicy: 'retain' });
    expect(tenants[1].silo).toBeUndefined();
  });

  test.each([
    ['Acme!', 'tenant #1: field "id": "Acme!" is invalid: use 3-30 lowercase letters'],
    ['ab', '"ab" is invalid'],
    ['1acme', '"1acme" is invalid'],
    ['acme-', '"acme-" is invalid'],
    ['a'.repeat(31), 'is invalid: use 3-30'],
    ["acme'; drop table x", 'is invalid'],
    ['acme--x', 'contains "--"'],
    ['аcme', 'is invalid'], // Cyrillic "а"
  ])('rejects tenant id %j with a message naming the tenant, the field and the rule', (id, message) => {
    const [problem] = problemsOf([pool(id)]);
    expect(problem).toContain(message);
    expect(problem).toContain('field "id"');
  });

  test.each([
    'public',
    'postgres',
    'information-schema',
    'pg-catalog',
    'rds',
    'rdsadmin',
    'rds-x',
    'admin',
    'aws-x',
  ])('rejects reserved id %j', (id) => {
    expect(problemsOf([pool(id)])[0]).toContain(`"${id}" is reserved`);
  });

  test('rejects an id whose derived PostgreSQL names would exceed 63 bytes', () => {
    // The id rule caps ids at 30 characters; this guards the naming rule itself should either ever change.
    const long = 'a'.repeat(62);
    expect(Buffer.byteLength(tenantDbNames(long).database)).toBeGreaterThan(63);
    expect(derivedNameProblem(long)).toMatch(
      /PostgreSQL schema name "t_a+" would be 64 bytes, over PostgreSQL's 63/,
    );
    expect(derivedNameProblem('a'.repeat(30))).toBeUndefined();
  });

  test('rejects duplicate ids, naming both entries', () => {
    expect(problemsOf([pool('acme'), pool('globex'), pool('acme')])).toEqual([
      'tenant "acme" (#3): duplicate id, already used by tenant #1: ids must be unique',
    ]);
  });

  test('rejects unknown fields, unknown settings and unknown models', () => {
    const problems = problemsOf([
      pool('acme', { plan: 'gold' }),
      pool('globex', { settings: { deletionPolicy: 'retain', colour: 'red' } }),
      { id: 'hooli', name: 'Hooli', model: 'shared' },
    ]);
    expect(problems).toEqual([
      'tenant "acme": unknown field "plan": allowed fields are id, name, model, settings, firstModel, keptSilo',
      'tenant "globex": unknown field "settings.colour": allowed settings are deletionPolicy, hostname, tier, profile, instanceClass, multiAz, backupRetentionDays, vpcCidr, restoredFromSnapshot',
      'tenant "hooli": field "model" is "shared": use one of "silo", "pool", "bridge"',
    ]);
  });

  test('rejects unknown top-level fields and a catalog without a tenants array', () => {
    expect(() => parseCatalog({ tenant: [] }, 'x.json')).toThrow('x.json: the tenant catalog has 1 problem');
    expect(() => parseCatalog({ tenants: [], version: 2 }, 'x.json')).toThrow(
      'unknown top-level field "version"',
    );
  });

  test('rejects silo-only settings on pool and bridge tenants', () => {
    expect(problemsOf([pool('acme', { settings: { multiAz: true } })])).toEqual([
      'tenant "acme": field "settings.multiAz" applies to silo tenants only, and this tenant\'s model is "pool": remove it or use "model": "silo"',
    ]);
  });

  test('rejects bad silo settings, each with its fix', () => {
    const problems = problemsOf([
      silo('northwind', { instanceClass: 'db.r6g.large', backupRetentionDays: 3, multiAz: 'yes' }),
      silo('initech', { deletionPolicy: 'delete' }),
    ]);
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toContain(
      '"settings.instanceClass" is "db.r6g.large": use an RDS class without the "db." prefix',
    );
    expect(problems.join('\n')).toContain('"settings.multiAz" must be true or false');
    expect(problems.join('\n')).toContain(
      '"settings.backupRetentionDays" is 3: use a whole number of days from 7 to 35',
    );
    expect(problems.join('\n')).toContain(
      'tenant "initech": field "settings.deletionPolicy" is "delete": use "retain"',
    );
  });

  test("a silo is restored only from its own final snapshot, never another tenant's", () => {
    expect(problemsOf([silo('evil', { restoredFromSnapshot: 'northwind-final-20261127100000' })])).toEqual([
      'tenant "evil": field "settings.restoredFromSnapshot" is "northwind-final-20261127100000": a tenant is restored only from its own final snapshot, "evil-final-<time>"',
    ]);
    const own = parseCatalog(
      { tenants: [silo('northwind', { restoredFromSnapshot: 'northwind-final-20261127100000' })] },
      'test',
    );
    expect(own.tenants[0].silo?.restoredFromSnapshot).toBe('northwind-final-20261127100000');
  });

  test.each([
    ['10.16.0.0', 'use an IPv4 CIDR block'],
    ['10.16.0.0/24', 'use a prefix from /16 to /22'],
    ['8.8.0.0/16', 'use a private range'],
    ['10.16.0.1/20', 'host bits are set; did you mean "10.16.0.0/20"?'],
  ])('rejects silo CIDR %j', (cidr, message) => {
    expect(problemsOf([silo('northwind', { vpcCidr: cidr })])[0]).toContain(message);
  });

  test("rejects catalog silo ranges that overlap each other, the shared VPCs or the platform's address pool", () => {
    const problems = problemsOf([
      silo('northwind', { vpcCidr: '10.16.0.0/20' }),
      silo('initech', { vpcCidr: '10.16.8.0/21' }),
      silo('umbrella', { vpcCidr: '10.0.128.0/20' }),
      silo('hooli', { vpcCidr: '10.1.0.0/16' }),
      silo('zeta', { vpcCidr: '10.200.0.0/20' }),
    ]);
    const fix =
      "choose a free private range, or leave settings.vpcCidr out to get one from the platform's address pool";
    expect(problems).toEqual([
      `tenant "initech": field "settings.vpcCidr" 10.16.8.0/21 overlaps tenant "northwind" (10.16.0.0/20): ${fix}`,
      `tenant "umbrella": field "settings.vpcCidr" 10.0.128.0/20 overlaps the shared pool VPC (10.0.0.0/16): ${fix}`,
      `tenant "hooli": field "settings.vpcCidr" 10.1.0.0/16 overlaps the shared bridge VPC (10.1.0.0/16): ${fix}`,
      `tenant "zeta": field "settings.vpcCidr" 10.200.0.0/20 overlaps the platform's silo address pool (10.128.0.0/9): ${fix}`,
    ]);
  });

  test('a silo with no range in the catalog gets one from the address pool at deploy time, at any fleet size', () => {
    const { tenants } = parseCatalog(
      { tenants: Array.from({ length: 1000 }, (_, i) => silo(`silo-${i}`)) },
      'c.json',
    );
    expect(tenants).toHaveLength(1000);
    expect(tenants.every((t) => t.silo!.vpcCidr === undefined)).toBe(true);
  });

  test('hostnames: the tenant id by default, a DNS label when set, unique across the catalog', () => {
    const { tenants } = parseCatalog(
      { tenants: [pool('acme'), pool('globex', { settings: { hostname: 'gx' } })] },
      'c',
    );
    expect(tenants.map((t) => t.hostname)).toEqual(['acme', 'gx']);
    expect(problemsOf([pool('acme'), pool('globex', { settings: { hostname: 'acme' } })])).toEqual([
      'tenant "globex" (#2): hostname "acme" is already used by tenant "acme": set settings.hostname to another label',
    ]);
    expect(problemsOf([pool('acme', { settings: { hostname: 'Not A Label' } })])[0]).toContain(
      'field "settings.hostname" is "Not A Label": use a DNS label',
    );
  });

  test('duplicates and overlaps are reported even for entries that have other problems', () => {
    const problems = problemsOf([
      silo('northwind', { vpcCidr: '10.16.0.0/20', multiAz: 'yes' }),
      silo('northwind', { vpcCidr: '10.16.0.0/20', backupRetentionDays: 1 }),
    ]);
    expect(problems).toEqual([
      'tenant "northwind": field "settings.multiAz" must be true or false',
      'tenant "northwind": field "settings.backupRetentionDays" is 1: use a whole number of days from 7 to 35',
      'tenant "northwind" (#2): duplicate id, already used by tenant #1: ids must be unique',
      `tenant "northwind": field "settings.vpcCidr" 10.16.0.0/20 overlaps tenant "northwind" (10.16.0.0/20): choose a free private range, or leave settings.vpcCidr out to get one from the platform's address pool`,
    ]);
  });

  test("a tenant's request, as the registry keeps it, validates back to the same tenant", () => {
    const { tenants } = parseCatalog(
      {
        tenants: [
          silo('northwind', { vpcCidr: '10.16.0.0/20', multiAz: false }),
          pool('acme', { settings: { hostname: 'ac' } }),
          { id: 'moved', name: 'Moved', model: 'bridge', firstModel: 'pool' },
        ],
      },
      'c',
    );
    expect(tenants[2].firstModel).toBe('pool');
    for (const t of tenants) {
      expect(parseCatalog({ tenants: [JSON.parse(tenantRequestOf(t))] }, 'r').tenants[0]).toEqual(t);
    }
  });

  test("firstModel (written by a move) must name a model, and says nothing when it is a shared cell tenant's model", () => {
    expect(() =>
      parseCatalog({ tenants: [{ id: 'acme', name: 'Acme', model: 'bridge', firstModel: 'shared' }] }, 'c'),
    ).toThrow(
      'tenant "acme": field "firstModel" is "shared": it is written by a move (the model the tenant was first provisioned in) and must be one of "silo", "pool", "bridge"; copy it unchanged from the registry\'s request (npm run fleet -- pull)',
    );
    const [same] = parseCatalog(
      { tenants: [{ id: 'acme', name: 'Acme', model: 'pool', firstModel: 'pool' }] },
      'c',
    ).tenants;
    expect(same.firstModel).toBeUndefined();
    expect(JSON.parse(tenantRequestOf(same))).not.toHaveProperty('firstModel');
    // Except on a silo tenant: back in a silo after leaving its first one (its cell names what it keeps with its
    // own key's id: tenant-provisioning.test.ts).
    const [back] = parseCatalog(
      { tenants: [{ id: 'acme', name: 'Acme', model: 'silo', firstModel: 'silo' }] },
      'c',
    ).tenants;
    expect(back.firstModel).toBe('silo');
    expect(JSON.parse(tenantRequestOf(back))).toHaveProperty('firstModel', 'silo');
  });

  test('reports every problem at once, and names the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'catalog-'));
    const file = path.join(dir, 'fleet.json');
    fs.writeFileSync(file, JSON.stringify({ tenants: [pool('Bad!'), pool('acme'), pool('acme')] }));
    expect(() => loadCatalog(file)).toThrow(`${file}: the tenant catalog has 2 problems`);
    fs.writeFileSync(file, '{ "tenants": [ ');
    expect(() => loadCatalog(file)).toThrow(
      `${file}: the tenant catalog has 1 problem:\n  - is not valid JSON`,
    );
    expect(() => loadCatalog(path.join(dir, 'missing.json'))).toThrow('cannot read the catalog');
  });
});
