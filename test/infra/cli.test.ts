import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { REPO_ROOT } from './fleet-helpers';
import { loadCatalog, tenantRequestOf } from '../../lib/catalog';
import { movedRequest, requestWithoutKeptSilo } from '../../lib/move-rules';

/** Runs the real CLI the way a user or a pipeline does (offline, no credentials). */
function cdkSynth(args: string[]) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-out-'));
  const result = spawnSync(
    path.join(REPO_ROOT, 'node_modules', '.bin', 'cdk'),
    ['synth', '--quiet', '-o', out, ...args],
    {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', CDK_DEFAULT_ACCOUNT: '' },
    },
  );
  const templates = fs.existsSync(out)
    ? fs
        .readdirSync(out)
        .filter((f) => f.endsWith('.template.json'))
        .sort()
    : [];
  return { status: result.status, stderr: result.stderr, templates, out };
}

describe('cdk synth from the command line', () => {
  test('-c tenant=<id> writes the shared stacks and that one tenant stack', () => {
    const r = cdkSynth(['-c', 'tenant=acme']);
    expect(r.status).toBe(0);
    expect(r.templates).toEqual([
      'Bridge.template.json',
      'Onboarding.template.json',
      'Platform.template.json',
      'Pool.template.json',
      'Tenant-acme.template.json',
    ]);
  });

  test("the catalog's sharedCells reaches the app: a planned cell with no tenant yet is built, sized for its plan", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'catalog-'));
    const catalog = path.join(dir, 'tenants.json');
    fs.writeFileSync(
      catalog,
      JSON.stringify({
        tenants: [{ id: 'solo', name: 'Solo', model: 'silo', settings: { vpcCidr: '10.20.0.0/20' } }],
        sharedCells: { bridge: { plannedTenants: 500 } },
      }),
    );
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-out-'));
    const r = spawnSync(
      path.join(REPO_ROOT, 'node_modules', '.bin', 'cdk'),
      ['synth', '--quiet', '-o', out, '-c', `catalog=${catalog}`, 'Bridge'],
      { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, CDK_DEFAULT_ACCOUNT: '' } },
    );
    expect(r.status).toBe(0);
    const names = fs.readdirSync(out).filter((f) => f.endsWith('.template.json'));
    expect(names.sort()).toEqual([
      'Bridge.template.json',
      'Onboarding.template.json',
      'Platform.template.json',
      'Tenant-solo.template.json',
    ]);
    const bridge = JSON.parse(fs.readFileSync(path.join(out, 'Bridge.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string; Properties: { DBInstanceClass?: string } }>;
    };
    const db = Object.values(bridge.Resources).find((x) => x.Type === 'AWS::RDS::DBInstance')!;
    expect(db.Properties.DBInstanceClass).toBe('db.r6g.xlarge');
  });

  test('fails with the file, tenant, field and fix when the catalog is invalid', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'catalog-'));
    const catalog = path.join(dir, 'tenants.json');
    fs.writeFileSync(catalog, JSON.stringify({ tenants: [{ id: 'Acme!', name: 'Acme', model: 'pool' }] }));
    const r = cdkSynth(['-c', `catalog=${catalog}`]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${catalog}: the tenant catalog has 1 problem`);
    expect(r.stderr).toContain('tenant #1: field "id": "Acme!" is invalid: use 3-30 lowercase letters');
    expect(r.templates).toEqual([]);
  });

  test("-c tenantRequest=<json> (the onboarding pipeline's job) builds the requested tenant, checked with the catalog", () => {
    const ok = cdkSynth([
      '-c',
      'tenant=initrode',
      '-c',
      'tenantRequest={"id":"initrode","name":"Initrode","model":"bridge"}',
    ]);
    expect(ok.status).toBe(0);
    expect(ok.templates).toContain('Tenant-initrode.template.json');
    const dup = cdkSynth([
      '-c',
      'tenant=acme',
      '-c',
      'tenantRequest={"id":"acme","name":"Again","model":"pool"}',
    ]);
    expect(dup.status).not.toBe(0);
    expect(dup.stderr).toContain('-c tenantRequest: the tenant catalog has 1 problem');
    expect(dup.stderr).toContain('tenant "acme": ');
    expect(dup.stderr).toContain('already defines this tenant differently');
    // A request that looks moved is still another tenant when what no move changes differs (its name).
    const otherMoved = cdkSynth([
      '-c',
      'tenant=acme',
      '-c',
      'tenantRequest={"id":"acme","name":"Again","model":"bridge","firstModel":"pool"}',
    ]);
    expect(otherMoved.status).not.toBe(0);
    expect(otherMoved.stderr).toContain('already defines this tenant differently');
    // The request the registry keeps for a catalog tenant is the catalog's own entry: accepted as is.
    const same = cdkSynth([
      '-c',
      'tenant=acme',
      '-c',
      'tenantRequest={"id":"acme","name":"Acme Corp","model":"pool","settings":{"deletionPolicy":"retain"}}',
    ]);
    expect(same.status).toBe(0);
    expect(same.templates).toContain('Tenant-acme.template.json');
  });

  test("-c tenantRequest with movingTo (a move deploy) adds the destination cell's resource beside the source's", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-out-'));
    const r = spawnSync(
      path.join(REPO_ROOT, 'node_modules', '.bin', 'cdk'),
      [
        'synth',
        '--quiet',
        '-o',
        out,
        '-c',
        'tenant=initrode',
        '-c',
        'tenantRequest={"id":"initrode","name":"Initrode","model":"bridge","movingTo":"pool"}',
        'Tenant-initrode',
      ],
      { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, CDK_DEFAULT_ACCOUNT: '' } },
    );
    expect(r.status).toBe(0);
    const t = JSON.parse(fs.readFileSync(path.join(out, 'Tenant-initrode.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string }>;
    };
    expect(t.Resources.Tenant.Type).toBe('Custom::BridgeTenant');
    expect(t.Resources.TenantPool.Type).toBe('Custom::PoolTenant');
    // A move's last deploy of a catalog tenant (tenants.json still says pool): the entry as moved is built.
    const moved = spawnSync(
      path.join(REPO_ROOT, 'node_modules', '.bin', 'cdk'),
      [
        'synth',
        '--quiet',
        '-o',
        out,
        '-c',
        'tenant=acme',
        '-c',
        'tenantRequest={"id":"acme","name":"Acme Corp","model":"bridge","firstModel":"pool","settings":{"deletionPolicy":"retain"}}',
        'Tenant-acme',
      ],
      { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, CDK_DEFAULT_ACCOUNT: '' } },
    );
    expect(moved.stderr).not.toContain('already defines this tenant differently');
    expect(moved.status).toBe(0);
    const acme = JSON.parse(fs.readFileSync(path.join(out, 'Tenant-acme.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string }>;
    };
    expect(Object.entries(acme.Resources).filter(([, r]) => r.Type.startsWith('Custom::'))).toEqual([
      ['TenantBridge', expect.objectContaining({ Type: 'Custom::BridgeTenant' })],
    ]);
    // Into a silo: the tenant's whole silo beside its bridge place.
    const silo = cdkSynth([
      '-c',
      'tenant=initrode',
      '-c',
      'tenantRequest={"id":"initrode","name":"Initrode","model":"bridge","movingTo":"silo"}',
    ]);
    expect(silo.status).toBe(0);
    const both = JSON.parse(
      fs.readFileSync(path.join(silo.out, 'Tenant-initrode.template.json'), 'utf8'),
    ) as {
      Resources: Record<string, { Type: string }>;
    };
    expect(both.Resources.Tenant.Type).toBe('Custom::BridgeTenant');
    expect(both.Resources.TenantSilo.Type).toBe('Custom::SiloTenant');
    expect(Object.values(both.Resources).filter((r) => r.Type === 'AWS::RDS::DBInstance')).toHaveLength(1);
    // Into a silo of the profile the move names (the compliance packs pass on it as on any silo: synth fails on a
    // finding); the last deploy of a catalog tenant moved into such a silo builds the entry as moved.
    const idle = cdkSynth([
      '-c',
      'tenant=initrode',
      '-c',
      'tenantRequest={"id":"initrode","name":"Initrode","model":"bridge","movingTo":"silo","movingProfile":"idle-friendly"}',
    ]);
    expect({ status: idle.status, stderr: idle.status ? idle.stderr : '' }).toEqual({
      status: 0,
      stderr: '',
    });
    const idleBoth = JSON.parse(
      fs.readFileSync(path.join(idle.out, 'Tenant-initrode.template.json'), 'utf8'),
    ) as { Resources: Record<string, { Type: string }> };
    expect(idleBoth.Resources.Tenant.Type).toBe('Custom::BridgeTenant');
    expect(Object.values(idleBoth.Resources).filter((r) => r.Type === 'AWS::RDS::DBCluster')).toHaveLength(1);
    const movedIdle = cdkSynth([
      '-c',
      'tenant=acme',
      '-c',
      'tenantRequest={"id":"acme","name":"Acme Corp","model":"silo","firstModel":"pool","settings":{"deletionPolicy":"retain","profile":"idle-friendly","backupRetentionDays":14}}',
    ]);
    expect(movedIdle.stderr).not.toContain('already defines this tenant differently');
    expect(movedIdle.status).toBe(0);
    const badProfile = cdkSynth([
      '-c',
      'tenant=initrode',
      '-c',
      'tenantRequest={"id":"initrode","name":"Initrode","model":"bridge","movingTo":"pool","movingProfile":"production"}',
    ]);
    expect(badProfile.status).not.toBe(0);
    expect(badProfile.stderr).toContain(
      '-c tenantRequest: movingProfile is "production": give one of standard, production, idle-friendly, with movingTo "silo" only',
    );
    // Out of a silo: its pool place beside the untouched silo (the compliance packs pass: synth fails on a
    // finding); then as moved, the silo kept exactly as it was, its own tags included.
    type Resources = { Resources: Record<string, { Type: string }> };
    const inSilo = {
      id: 'initrode',
      name: 'Initrode',
      model: 'silo',
      settings: {
        deletionPolicy: 'retain',
        instanceClass: 't4g.medium',
        multiAz: true,
        backupRetentionDays: 14,
        vpcCidr: '10.20.0.0/20',
      },
    };
    const out2 = cdkSynth([
      '-c',
      'tenant=initrode',
      '-c',
      `tenantRequest=${JSON.stringify({ ...inSilo, movingTo: 'pool' })}`,
    ]);
    expect({ status: out2.status, stderr: out2.status ? out2.stderr : '' }).toEqual({
      status: 0,
      stderr: '',
    });
    const during = JSON.parse(
      fs.readFileSync(path.join(out2.out, 'Tenant-initrode.template.json'), 'utf8'),
    ) as Resources;
    expect(during.Resources.Tenant.Type).toBe('Custom::SiloTenant');
    expect(during.Resources.TenantPool.Type).toBe('Custom::PoolTenant');
    const keeping = cdkSynth([
      '-c',
      'tenant=initrode',
      '-c',
      `tenantRequest=${JSON.stringify({
        id: 'initrode',
        name: 'Initrode',
        model: 'pool',
        firstModel: 'silo',
        settings: { deletionPolicy: 'retain' },
        keptSilo: inSilo,
      })}`,
    ]);
    expect({ status: keeping.status, stderr: keeping.status ? keeping.stderr : '' }).toEqual({
      status: 0,
      stderr: '',
    });
    const after = JSON.parse(
      fs.readFileSync(path.join(keeping.out, 'Tenant-initrode.template.json'), 'utf8'),
    ) as Resources;
    const siloPart = (t: Resources) =>
      Object.fromEntries(
        Object.entries(t.Resources).filter(([id]) => /^(Cell|ApiEndpoint|ApiService)/.test(id)),
      );
    expect(Object.keys(siloPart(after)).length).toBeGreaterThan(50);
    expect(siloPart(after)).toEqual(siloPart(during));
    expect(JSON.stringify(after.Resources.CellDatabaseInstance05044F07)).toContain('"Value":"silo"');
  });

  test('a catalog silo moved out, purged and moved back: every deploy of the moves and of the purge is accepted, whether or not the catalog was pulled', () => {
    const catalog = loadCatalog(path.join(REPO_ROOT, 'tenants.json'));
    const northwind = catalog.tenants.find((t) => t.id === 'northwind')!;
    expect(northwind.model).toBe('silo');
    const kept = tenantRequestOf(northwind);
    const moved = movedRequest(kept, 'pool');
    const purged = requestWithoutKeptSilo(moved);
    const pulled = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'catalog-')), 'tenants.json');
    const raw = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tenants.json'), 'utf8')) as {
      tenants: { id: string }[];
    };
    raw.tenants = raw.tenants.map((t) => (t.id === 'northwind' ? JSON.parse(moved) : t));
    fs.writeFileSync(pulled, JSON.stringify(raw));
    // Then back into a silo: the move's first deploy (the silo built beside the pool place), and the last (the
    // tenant in its new silo, marked as not the stack's first: firstModel "silo").
    const back = movedRequest(purged, 'silo');
    expect(JSON.parse(back)).toMatchObject({ model: 'silo', firstModel: 'silo' });
    const backPhase = JSON.stringify({ ...JSON.parse(purged), movingTo: 'silo' });
    const outAgain = movedRequest(back, 'pool');
    const pulledAfterPurge = path.join(path.dirname(pulled), 'purged.json');
    fs.writeFileSync(
      pulledAfterPurge,
      JSON.stringify({
        ...raw,
        tenants: raw.tenants.map((t) => (t.id === 'northwind' ? JSON.parse(purged) : t)),
      }),
    );
    const deploys: [string, string, string?][] = [
      // The purge's two deploys (its retire phase, then without the silo), against the catalog as it was ...
      [moved, '', 'retire'],
      [purged, ''],
      // ... and as pulled after the move.
      [moved, pulled, 'retire'],
      [purged, pulled],
      // The move back, against the catalog as it was and as pulled after the purge.
      [backPhase, '', 'create'],
      [back, ''],
      [backPhase, pulledAfterPurge, 'create'],
      [back, pulledAfterPurge],
      // And out again, keeping the new silo, then its purge's retire deploy: against the catalog as it was.
      [outAgain, ''],
      [outAgain, '', 'retire'],
    ];
    for (const [request, catalogFile, phase] of deploys) {
      const r = cdkSynth([
        '-c',
        'tenant=northwind',
        '-c',
        `tenantRequest=${request}`,
        ...(catalogFile ? ['-c', `catalog=${catalogFile}`] : []),
        ...(phase ? ['-c', `tenantPhase=${phase}`] : []),
      ]);
      expect({ request, catalogFile, status: r.status, stderr: r.status ? r.stderr : '' }).toEqual({
        request,
        catalogFile,
        status: 0,
        stderr: '',
      });
    }
  });
});
