import { Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CatalogError, tenantRequestOf } from '../../lib/catalog';
import { TenantProvisioning } from '../../lib/constructs/tenant-provisioning';
import { movedRequest, requestWithoutKeptSilo } from '../../lib/move-rules';
import { newApp } from './fleet-helpers';
import { refusedUpdate, TemplateJson, updatePlan } from '../helpers/cfn-update';

describe('TenantProvisioning', () => {
  test('turns a single onboarding request into a tenant stack, as a pipeline does', () => {
    const app = newApp();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, 'Tenant-initrode', { env: { region: 'us-east-1' } });
    const tenant = TenantProvisioning.tenantFrom(
      { id: 'initrode', name: 'Initrode', model: 'bridge' },
      'request',
    );
    new TenantProvisioning(stack, 'Default', { tenant });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('Custom::BridgeTenant', {
      TenantId: 'initrode',
      Model: 'bridge',
      DeletionPolicy: 'retain',
    });
    t.resourceCountIs('Custom::BridgeTenant', 1);
  });

  test('refuses a request that breaks a catalog rule, with the same messages as the catalog', () => {
    expect(() =>
      TenantProvisioning.tenantFrom({ id: 'Bad Id', name: 'x', model: 'pool' }, 'onboarding request'),
    ).toThrow(CatalogError);
    expect(() =>
      TenantProvisioning.tenantFrom(
        { id: 'acme', name: 'Acme', model: 'pool', settings: { multiAz: true } },
        'onboarding request',
      ),
    ).toThrow(
      'onboarding request: the tenant catalog has 1 problem:\n  - tenant "acme": field "settings.multiAz" applies to silo tenants only',
    );
  });
});

describe('a move between the pool and bridge cells, as the deploys CloudFormation runs', () => {
  /** The tenant stack's template for one request (as the registry keeps it), optionally moving. */
  const templateOf = (
    request: Record<string, unknown>,
    movingTo?: 'pool' | 'bridge' | 'silo',
    domain?: { zoneId: string; zoneName: string },
  ): TemplateJson => {
    const app = newApp();
    const stack = new Stack(app, 'Tenant-acme', { env: { region: 'us-east-1' } });
    const tenant = TenantProvisioning.tenantFrom(request, 'request');
    new TenantProvisioning(stack, 'Default', {
      tenant,
      ...(movingTo ? { movingTo } : {}),
      ...(domain ? { domain } : {}),
    });
    return Template.fromStack(stack).toJSON() as TemplateJson;
  };
  const pool = { id: 'acme', name: 'Acme', model: 'pool' };
  const bridgeAfter = { id: 'acme', name: 'Acme', model: 'bridge', firstModel: 'pool' };

  test('the move deploy adds the destination beside an untouched source; the last deploy only removes the source', () => {
    const before = templateOf(pool);
    const during = templateOf(pool, 'bridge');
    const after = templateOf(bridgeAfter);
    expect(refusedUpdate(before, during)).toEqual([]);
    // The source's resource is not even updated: its provisioner is not called.
    expect(updatePlan(before, during)).toEqual({ created: ['TenantBridge'], deleted: [], updated: [] });
    expect(during.Resources.Tenant.Type).toBe('Custom::PoolTenant');
    expect(during.Resources.TenantBridge).toMatchObject({
      Type: 'Custom::BridgeTenant',
      Properties: {
        TenantId: 'acme',
        Model: 'bridge',
        Request: JSON.stringify({ ...bridgeAfter, settings: { deletionPolicy: 'retain' } }),
      },
    });
    expect(refusedUpdate(during, after)).toEqual([]);
    expect(updatePlan(during, after)).toEqual({ created: [], deleted: ['Tenant'], updated: [] });
    // A rollback before the switch removes the destination's resource and leaves the source as it was.
    expect(refusedUpdate(during, before)).toEqual([]);
    expect(updatePlan(during, before)).toEqual({ created: [], deleted: ['TenantBridge'], updated: [] });
  });

  test('with a DNS name, the move deploy already points it at the cell it moves to (it answers 503 in both meanwhile)', () => {
    const domain = { zoneId: 'Z123', zoneName: 'tenants.example.com' };
    const endpointOf = (t: TemplateJson) => {
      const json = JSON.stringify((t as unknown as { Parameters: unknown }).Parameters);
      return ['pool', 'bridge'].filter((m) => json.includes(`/${m}/api-endpoint`));
    };
    const before = templateOf(pool, undefined, domain);
    const during = templateOf(pool, 'bridge', domain);
    const after = templateOf(bridgeAfter, undefined, domain);
    expect(endpointOf(before)).toEqual(['pool']);
    expect(endpointOf(during)).toEqual(['bridge']);
    // The last deploy changes no DNS record: the name has propagated while the data moved.
    expect(updatePlan(during, after)).toEqual({ created: [], deleted: ['Tenant'], updated: [] });
    // A rollback points it back.
    expect(updatePlan(during, before).updated).toEqual([expect.stringMatching(/^HostName/)]);
  });

  test('and back: the tenant in its first model again is the stack it started as', () => {
    const during = templateOf(bridgeAfter, 'pool');
    const back = templateOf({ ...bridgeAfter, model: 'pool' });
    expect(refusedUpdate(templateOf(bridgeAfter), during)).toEqual([]);
    expect(updatePlan(templateOf(bridgeAfter), during)).toEqual({
      created: ['Tenant'],
      deleted: [],
      updated: [],
    });
    expect(updatePlan(during, back)).toEqual({ created: [], deleted: ['TenantBridge'], updated: [] });
    expect(back).toEqual(templateOf(pool));
  });

  test('a model changed in place (the catalog edited) is what CloudFormation refuses', () => {
    expect(refusedUpdate(templateOf(pool), templateOf({ ...pool, model: 'bridge' }))).toEqual([
      'Tenant: Update of resource type is not permitted (Custom::PoolTenant -> Custom::BridgeTenant)',
    ]);
  });

  test('a move to the same model, or of a tenant that still keeps the silo it left, is refused with the way out', () => {
    expect(() => templateOf(pool, 'pool')).toThrow('tenant "acme" is already a pool tenant: nothing to move');
    const keeping = {
      id: 'acme',
      name: 'Acme',
      model: 'pool',
      firstModel: 'silo',
      keptSilo: { id: 'acme', name: 'Acme', model: 'silo', settings: { vpcCidr: '10.20.0.0/20' } },
    };
    expect(() => templateOf(keeping, 'bridge')).toThrow(
      'tenant "acme" still keeps the silo it moved out of: purge it first (npm run request -- purge --tenant acme)',
    );
  });
});

describe('a move out of a silo, as the deploys CloudFormation runs', () => {
  const templateOf = (
    request: Record<string, unknown>,
    movingTo?: 'pool' | 'bridge',
    phase?: 'steady' | 'retire',
    domain?: { zoneId: string; zoneName: string },
  ): TemplateJson => {
    const app = newApp();
    const stack = new Stack(app, 'Tenant-acme', { env: { region: 'us-east-1' } });
    new TenantProvisioning(stack, 'Default', {
      tenant: TenantProvisioning.tenantFrom(request, 'request'),
      ipamPoolId: 'ipam-pool-0123456789abcdef0',
      ...(movingTo ? { movingTo } : {}),
      ...(phase ? { phase } : {}),
      ...(domain ? { domain } : {}),
    });
    return Template.fromStack(stack).toJSON() as TemplateJson;
  };
  const silo = { id: 'acme', name: 'Acme', model: 'silo', settings: { profile: 'production' } };
  const siloRequest = JSON.parse(tenantRequestOf(TenantProvisioning.tenantFrom(silo, 'request'))) as object;
  // As the switch records it: in the pool, the silo kept as it was.
  const poolKeeping = {
    id: 'acme',
    name: 'Acme',
    model: 'pool',
    firstModel: 'silo',
    settings: { deletionPolicy: 'retain' },
    keptSilo: siloRequest,
  };
  const poolPurged = {
    id: 'acme',
    name: 'Acme',
    model: 'pool',
    firstModel: 'silo',
    settings: { deletionPolicy: 'retain' },
  };
  const cellIds = (t: TemplateJson) => Object.keys(t.Resources).filter((id) => id.startsWith('Cell'));

  test('the move deploy adds the pool place beside the untouched silo; the deploy as moved only marks the silo kept', () => {
    const before = templateOf(silo);
    const during = templateOf(silo, 'pool');
    const after = templateOf(poolKeeping);
    expect(refusedUpdate(before, during)).toEqual([]);
    expect(updatePlan(before, during)).toEqual({ created: ['TenantPool'], deleted: [], updated: [] });
    expect(during.Resources.TenantPool).toMatchObject({
      Type: 'Custom::PoolTenant',
      Properties: { TenantId: 'acme', Model: 'pool', Request: JSON.stringify(poolKeeping) },
    });
    // As moved (the registry's request with the silo kept): the silo exactly as it was, its resource marked as the
    // kept copy (its provisioner's Update changes nothing), still protected.
    expect(refusedUpdate(during, after)).toEqual([]);
    expect(updatePlan(during, after)).toEqual({ created: [], deleted: [], updated: ['Tenant'] });
    const { KeptCopy, ...unchanged } = after.Resources.Tenant.Properties!;
    expect(KeptCopy).toBe('true');
    expect(unchanged).toEqual(during.Resources.Tenant.Properties);
    expect(after.Resources.CellDatabaseInstance05044F07.Properties!.DeletionProtection).toBe(true);
    // A rollback before the switch removes only the pool place.
    expect(updatePlan(during, before)).toEqual({ created: [], deleted: ['TenantPool'], updated: [] });
  });

  test("the purge: its retire phase lifts only the kept silo's protection, then the silo goes and nothing else", () => {
    const after = templateOf(poolKeeping);
    const retire = templateOf(poolKeeping, undefined, 'retire');
    const purged = templateOf(poolPurged);
    expect(updatePlan(after, retire)).toEqual({
      created: [],
      deleted: [],
      updated: ['CellDatabaseInstance05044F07', 'CellApiLoadBalancer5C1A0250'],
    });
    expect(retire.Resources.CellDatabaseInstance05044F07.Properties!.DeletionProtection).toBe(false);
    const removal = updatePlan(retire, purged);
    expect(refusedUpdate(retire, purged)).toEqual([]);
    expect(removal.created).toEqual([]);
    // The pool place's request no longer names the silo: its provisioner's Update (idempotent) is all it gets.
    expect(removal.updated).toEqual(['TenantPool']);
    expect(removal.deleted).toEqual(expect.arrayContaining(['Tenant', ...cellIds(retire)]));
    expect(cellIds(purged)).toEqual([]);
  });

  test('with a DNS name, the move deploy already points it at the cell it moves to, not the silo', () => {
    const domain = { zoneId: 'Z123', zoneName: 'tenants.example.com' };
    const record = (t: TemplateJson) =>
      JSON.stringify(
        Object.values(t.Resources).find((r) => r.Type === 'AWS::Route53::RecordSet')!.Properties,
      );
    expect(record(templateOf(silo, undefined, undefined, domain))).toContain('CellApiLoadBalancer');
    const during = record(templateOf(silo, 'pool', undefined, domain));
    expect(during).toContain('poolapiendpoint');
    expect(during).not.toContain('CellApiLoadBalancer');
    expect(record(templateOf(poolKeeping, undefined, undefined, domain))).toContain('poolapiendpoint');
  });

  test('a request that keeps a silo it cannot be (another id, another model, a silo keeping one) is refused', () => {
    const bad =
      (keptSilo: unknown, model = 'pool') =>
      () =>
        TenantProvisioning.tenantFrom({ ...poolKeeping, model, keptSilo }, 'request');
    expect(bad({ ...siloRequest, id: 'globex' })).toThrow(
      'field "keptSilo" is tenant "globex" in silo, not this tenant in a silo',
    );
    expect(bad({ ...siloRequest, model: 'bridge', settings: {} })).toThrow('not this tenant in a silo');
    expect(bad({ ...siloRequest, keptSilo: siloRequest })).toThrow('holds a "keptSilo" of its own');
    expect(bad(siloRequest, 'silo')).toThrow('field "keptSilo" is set on a silo tenant');
    expect(bad({ ...siloRequest, settings: { instanceClass: 'nope' } })).toThrow('field "keptSilo"');
  });

  test('back into a silo after a purge: the new silo names what it keeps with its own key, never as the first one did', () => {
    // The requests as the registry records them: the switch out of the silo, the purge, the switch back in.
    const first = tenantRequestOf(TenantProvisioning.tenantFrom(silo, 'request'));
    const out = movedRequest(first, 'pool');
    const purged = requestWithoutKeptSilo(out);
    const back = movedRequest(purged, 'silo', 'production');
    expect(JSON.parse(back)).toMatchObject({ model: 'silo', firstModel: 'silo' });
    const build = (request: string, movingTo?: 'silo' | 'pool') => {
      const app = newApp();
      const stack = new Stack(app, 'Tenant-acme', { env: { region: 'us-east-1' } });
      new TenantProvisioning(stack, 'Default', {
        tenant: TenantProvisioning.tenantFrom(JSON.parse(request), 'request'),
        ipamPoolId: 'ipam-pool-0123456789abcdef0',
        ...(movingTo
          ? { movingTo, ...(movingTo === 'silo' ? { movingProfile: 'production' as const } : {}) }
          : {}),
      });
      return Template.fromStack(stack).toJSON() as TemplateJson;
    };
    // What outlives a silo's stack, by name: log groups and the backup vault.
    const kept = (t: TemplateJson) =>
      Object.values(t.Resources)
        .filter((r) => r.Type === 'AWS::Logs::LogGroup' || r.Type === 'AWS::Backup::BackupVault')
        .map((r) => JSON.stringify(r.Properties?.LogGroupName ?? r.Properties?.BackupVaultName));
    const firstNames = kept(build(first));
    expect(firstNames.length).toBeGreaterThan(5);
    for (const name of firstNames) expect(name).toContain('AWS::StackId');
    // The move deploy that builds the silo again, and the stack as moved back: named by the new cell's key.
    for (const template of [build(purged, 'silo'), build(back)]) {
      const names = kept(template);
      expect(names.length).toBe(firstNames.length);
      for (const name of names) {
        expect(name).toContain('CellDataKey');
        expect(name).not.toContain('AWS::StackId');
      }
    }
    // Out of it again, the silo it keeps is built exactly as it was (the same names: CloudFormation changes nothing).
    const again = movedRequest(back, 'pool');
    expect(JSON.parse(again)).toMatchObject({
      model: 'pool',
      firstModel: 'silo',
      keptSilo: JSON.parse(back),
    });
    const siloPart = (t: TemplateJson) =>
      Object.fromEntries(Object.entries(t.Resources).filter(([id]) => id.startsWith('Cell')));
    expect(siloPart(build(again))).toEqual(siloPart(build(back)));
    // The catalog reads the marker back unchanged (fleet pull), and says nothing for a tenant back in a shared cell.
    expect(JSON.parse(tenantRequestOf(TenantProvisioning.tenantFrom(JSON.parse(back), 'pulled')))).toEqual(
      JSON.parse(back),
    );
    expect(
      TenantProvisioning.tenantFrom(
        { id: 'acme', name: 'Acme', model: 'pool', firstModel: 'pool' },
        'request',
      ).firstModel,
    ).toBeUndefined();
  });
});

describe('a move into a silo, as the deploys CloudFormation runs', () => {
  const templateOf = (
    request: Record<string, unknown>,
    movingTo?: 'silo',
    domain?: { zoneId: string; zoneName: string },
    phase?: 'create' | 'steady' | 'retire',
    movingProfile?: 'standard' | 'production' | 'idle-friendly',
  ): TemplateJson => {
    const app = newApp();
    const stack = new Stack(app, 'Tenant-acme', { env: { region: 'us-east-1' } });
    new TenantProvisioning(stack, 'Default', {
      tenant: TenantProvisioning.tenantFrom(request, 'request'),
      ipamPoolId: 'ipam-pool-0123456789abcdef0',
      ...(movingTo ? { movingTo } : {}),
      ...(movingProfile ? { movingProfile } : {}),
      ...(domain ? { domain } : {}),
      ...(phase ? { phase } : {}),
    });
    return Template.fromStack(stack).toJSON() as TemplateJson;
  };
  const pool = { id: 'acme', name: 'Acme', model: 'pool' };
  const siloAfter = { id: 'acme', name: 'Acme', model: 'silo', firstModel: 'pool' };
  const cellIds = (t: TemplateJson) => Object.keys(t.Resources).filter((id) => id.startsWith('Cell'));

  test("the move deploy adds the tenant's whole silo beside its untouched pool place; the last deploy removes only that", () => {
    const before = templateOf(pool);
    const during = templateOf(pool, 'silo');
    const after = templateOf(siloAfter);
    expect(refusedUpdate(before, during)).toEqual([]);
    const added = updatePlan(before, during);
    expect(added.deleted).toEqual([]);
    expect(added.updated).toEqual([]);
    expect(added.created).toEqual(expect.arrayContaining(['TenantSilo', 'CellDatabaseInstance05044F07']));
    expect(cellIds(during).length).toBeGreaterThan(50);
    expect(during.Resources.Tenant.Type).toBe('Custom::PoolTenant');
    expect(during.Resources.TenantSilo).toMatchObject({
      Type: 'Custom::SiloTenant',
      Properties: {
        TenantId: 'acme',
        Model: 'silo',
        // As the registry will keep it: the silo's default settings written out.
        Request: JSON.stringify({
          ...siloAfter,
          settings: {
            deletionPolicy: 'retain',
            instanceClass: 't4g.medium',
            multiAz: true,
            backupRetentionDays: 14,
          },
        }),
      },
    });
    // Its provisioner is the silo's own, called once the silo's database is bootstrapped.
    expect(JSON.stringify(during.Resources.TenantSilo.Properties!.ServiceToken)).toContain('CellProvisioner');
    expect((during.Resources.TenantSilo as { DependsOn?: string[] }).DependsOn).toEqual(
      expect.arrayContaining([expect.stringMatching(/^CellDatabaseBootstrap/)]),
    );
    expect(refusedUpdate(during, after)).toEqual([]);
    expect(updatePlan(during, after)).toEqual({ created: [], deleted: ['Tenant'], updated: [] });
    // A rollback before the switch removes the silo and leaves the pool place as it was.
    expect(refusedUpdate(during, before)).toEqual([]);
    const rollback = updatePlan(during, before);
    expect(rollback.created).toEqual([]);
    expect(rollback.updated).toEqual([]);
    // Exactly what the move deploy added: the silo's cell, its published endpoint, its provisioner's resource.
    expect(rollback.deleted.sort()).toEqual([...added.created].sort());
    expect(added.created).toEqual(
      expect.arrayContaining(['TenantSilo', 'ApiEndpointA9C748C3', ...cellIds(during)]),
    );
  });

  test('into an idle-friendly silo (the move names the profile): that profile built beside the pool place; the last deploy removes only that', () => {
    const before = templateOf(pool);
    const during = templateOf(pool, 'silo', undefined, undefined, 'idle-friendly');
    const after = templateOf({ ...siloAfter, settings: { profile: 'idle-friendly' } });
    const types = (t: TemplateJson) => Object.values(t.Resources).map((r) => r.Type);
    expect(types(during)).toContain('AWS::RDS::DBCluster');
    expect(types(during)).not.toContain('AWS::EC2::NatGateway');
    expect(JSON.parse(during.Resources.TenantSilo.Properties!.Request as string).settings).toMatchObject({
      profile: 'idle-friendly',
    });
    expect(refusedUpdate(before, during)).toEqual([]);
    expect(updatePlan(before, during).deleted).toEqual([]);
    expect(refusedUpdate(during, after)).toEqual([]);
    expect(updatePlan(during, after)).toEqual({ created: [], deleted: ['Tenant'], updated: [] });
    // Its phases, as the move deploys it (create, sealed in steady, retired on a rollback), change only the
    // protection of its Aurora cluster and load balancer.
    const [create, steady, retire] = (['create', 'steady', 'retire'] as const).map((phase) =>
      templateOf(pool, 'silo', undefined, phase, 'idle-friendly'),
    );
    const changed = updatePlan(create, steady);
    expect(changed.created).toEqual([]);
    expect(changed.deleted).toEqual([]);
    expect(changed.updated.map((id) => during.Resources[id].Type).sort()).toEqual([
      'AWS::ElasticLoadBalancingV2::LoadBalancer',
      'AWS::RDS::DBCluster',
    ]);
    expect(updatePlan(steady, retire)).toEqual(changed);
    const cluster = (t: TemplateJson) =>
      Object.values(t.Resources).find((r) => r.Type === 'AWS::RDS::DBCluster')!.Properties!
        .DeletionProtection;
    expect([cluster(create), cluster(steady), cluster(retire)]).toEqual([false, true, false]);
    // A profile is a silo's: with no move into a silo it is refused.
    expect(() => templateOf(pool, undefined, undefined, undefined, 'production')).toThrow(
      "movingProfile production is a silo's cost profile: give it with movingTo 'silo' only",
    );
  });

  test("the move's phases (create, sealed in steady, retired on a rollback) change only the silo's protection", () => {
    const [create, steady, retire] = (['create', 'steady', 'retire'] as const).map((phase) =>
      templateOf(pool, 'silo', undefined, phase),
    );
    const protection = {
      created: [],
      deleted: [],
      updated: ['CellDatabaseInstance05044F07', 'CellApiLoadBalancer5C1A0250'],
    };
    expect(updatePlan(create, steady)).toEqual(protection);
    expect(steady.Resources.CellDatabaseInstance05044F07.Properties!.DeletionProtection).toBe(true);
    expect(updatePlan(steady, retire)).toEqual(protection);
    expect(retire.Resources.CellDatabaseInstance05044F07.Properties!.DeletionProtection).toBe(false);
  });

  test("what a moved-in silo keeps when it goes is named with its own key's id, never the stack's", () => {
    const named = (t: TemplateJson) =>
      Object.values(t.Resources)
        .filter((r) => r.Type === 'AWS::Logs::LogGroup' || r.Type === 'AWS::Backup::BackupVault')
        .map((r) => JSON.stringify(r.Properties?.LogGroupName ?? r.Properties?.BackupVaultName));
    const moved = named(templateOf(pool, 'silo'));
    expect(moved.length).toBeGreaterThan(5);
    for (const name of moved) {
      expect(name).toContain('CellDataKey');
      expect(name).not.toContain('AWS::StackId');
    }
    // So the same stack can take a silo again after a rollback removed one; a silo onboarded as one keeps the
    // stack's incarnation, as before.
    const native = named(templateOf({ id: 'acme', name: 'Acme', model: 'silo' }));
    for (const name of native) expect(name).toContain('AWS::StackId');
  });

  test("with a DNS name, the move deploy points it at the silo's own load balancer", () => {
    const domain = { zoneId: 'Z123', zoneName: 'tenants.example.com' };
    const record = (t: TemplateJson) =>
      JSON.stringify(
        Object.values(t.Resources).find((r) => r.Type === 'AWS::Route53::RecordSet')!.Properties,
      );
    expect(record(templateOf(pool, undefined, domain))).toContain('poolapiendpoint');
    const during = record(templateOf(pool, 'silo', domain));
    expect(during).toContain('CellApiLoadBalancer');
    expect(during).not.toContain('apiendpoint');
  });
});
