import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { IsolationModel, SILO_PROFILES, SiloProfileName, TENANT_PHASES, TenantPhase } from '../contracts';
import { moveProblem } from '../lib/constructs/tenant-provisioning';
import { CatalogError, loadCatalog, parseTenant, Tenant, tenantRequestOf } from '../lib/catalog';
import { buildFleet, FleetError } from '../lib/fleet';

// A stack trace per construct and a 27 MB construct tree cost seconds on a 1,000-tenant fleet and serve only
// debugging: `cdk synth --debug` (CDK_DEBUG) brings the traces back. Findings still name the construct path.
const debug = process.env.CDK_DEBUG === 'true';
const app = new App({
  stackTraces: debug,
  treeMetadata: debug,
  context: debug ? {} : { 'aws:cdk:disable-creation-stack-traces': true },
});
const context = (name: string) => app.node.tryGetContext(name) as string | undefined;
const catalogPath = context('catalog') ?? path.join(__dirname, '..', 'tenants.json');
/** A list option: `-c name=a,b` on the command line, or a JSON array in cdk.json. */
const listContext = (name: string): string[] | undefined => {
  const value = app.node.tryGetContext(name) as unknown;
  if (value === undefined || value === '') return undefined;
  const items = Array.isArray(value) ? value : String(value).split(',');
  return items.map((v) => String(v).trim()).filter(Boolean);
};
const region = context('region') || process.env.CDK_DEFAULT_REGION || 'us-east-1';

try {
  const catalog = loadCatalog(catalogPath);
  // An onboarding pipeline adds the requested tenant (validated with the catalog's rules) and builds its stack.
  const request = context('tenantRequest');
  const restoreTenants: string[] = [];
  const movingTenants: Record<string, IsolationModel> = {};
  const movingProfiles: Record<string, SiloProfileName> = {};
  let tenants = catalog.tenants;
  if (request !== undefined && request !== '') {
    const source = '-c tenantRequest';
    let raw: { restore?: unknown; movingTo?: unknown; movingProfile?: unknown } & Record<string, unknown>;
    try {
      raw = typeof request === 'string' ? JSON.parse(request) : request;
    } catch (e) {
      throw new CatalogError(source, [
        { code: 'invalid-document', message: `is not JSON (${(e as Error).message})` },
      ]);
    }
    // Beside the tenant's request as the registry keeps it, what this deploy does with it: bring back kept data
    // (restore), or add its place in the cell it moves to (movingTo: the onboarding workflow's move; into a silo,
    // of the cost profile movingProfile).
    const { restore, movingTo, movingProfile, ...entry } = raw;
    const { tenant, problems } = parseTenant(entry, 'the request');
    if (!tenant) throw new CatalogError(source, problems);
    // A catalog tenant's request (as the registry keeps it) is the catalog's own entry: nothing to add; or that
    // entry after moves (a move's deploys, and a purge's, before the catalog is pulled to say so: movedSince), which
    // this deploy builds instead. Any other request for an id the catalog holds is a conflict.
    const inCatalog = tenants.find((t) => t.id === tenant.id);
    const movedFromCatalog = inCatalog !== undefined && movedSince(inCatalog, tenant);
    if (movedFromCatalog) tenants = tenants.map((t) => (t.id === tenant.id ? tenant : t));
    else if (inCatalog && tenantRequestOf(inCatalog) !== tenantRequestOf(tenant)) {
      throw new CatalogError(source, [
        {
          code: 'duplicate-id',
          tenantId: tenant.id,
          field: 'id',
          message: `tenant "${tenant.id}": ${catalog.source} already defines this tenant differently (${tenantRequestOf(inCatalog)}): change the catalog entry, or use another id`,
        },
      ]);
    }
    if (!inCatalog) tenants = [...tenants, tenant];
    if (restore === true) restoreTenants.push(tenant.id);
    if (movingTo !== undefined) {
      const problem = moveProblem(tenant, movingTo);
      if (problem) throw new FleetError(`${source}: movingTo: ${problem}`);
      movingTenants[tenant.id] = movingTo as IsolationModel;
    }
    if (movingProfile !== undefined) {
      if (movingTo !== 'silo' || !SILO_PROFILES.includes(movingProfile as SiloProfileName)) {
        throw new FleetError(
          `${source}: movingProfile is ${JSON.stringify(movingProfile)}: give one of ${SILO_PROFILES.join(', ')}, with movingTo "silo" only`,
        );
      }
      movingProfiles[tenant.id] = movingProfile as SiloProfileName;
    }
  }
  const phase = context('tenantPhase');
  if (phase !== undefined && !TENANT_PHASES.includes(phase as TenantPhase)) {
    throw new FleetError(`-c tenantPhase=${phase}: use one of ${TENANT_PHASES.join(', ')}`);
  }
  const architecture = context('apiArchitecture');
  if (architecture !== undefined && architecture !== 'arm64' && architecture !== 'x86_64') {
    throw new FleetError(`-c apiArchitecture=${architecture}: use arm64 (the default) or x86_64`);
  }
  const zoneId = context('hostedZoneId');
  const zoneName = context('domainName');
  if ((zoneId === undefined) !== (zoneName === undefined)) {
    throw new FleetError('-c hostedZoneId and -c domainName go together: give both, or neither');
  }
  buildFleet(
    app,
    { source: catalog.source, tenants, ...(catalog.sharedCells ? { sharedCells: catalog.sharedCells } : {}) },
    {
      onlyTenant: context('tenant'),
      env: { account: process.env.CDK_DEFAULT_ACCOUNT || undefined, region },
      tenantPhase: phase as TenantPhase | undefined,
      restoreTenants,
      movingTenants,
      movingProfiles,
      apiArchitecture: architecture as 'arm64' | 'x86_64' | undefined,
      siloIpamPoolId: context('siloIpamPoolId'),
      domain: zoneId && zoneName ? { zoneId, zoneName } : undefined,
      onboarding: {
        requesters: listContext('onboardingRequesters'),
        approvers: listContext('onboardingApprovers'),
      },
    },
  );
} catch (e) {
  if (e instanceof CatalogError || e instanceof FleetError) {
    console.error(e.message);
    process.exit(1);
  }
  throw e;
}

/**
 * Whether `request` is the catalog's `entry` after moves (any number of them, the catalog not pulled since): the
 * same tenant by everything a move leaves alone (name, hostname, tier, deletion policy), and a move's fields on
 * either side. The workflow's request (the registry's) is then what the deploy builds. Two different tenants
 * under one id, or a request that edits a catalog tenant that never moved, still conflict.
 */
function movedSince(entry: Tenant, request: Tenant): boolean {
  const moved = [entry, request].some((t) => t.firstModel !== undefined || t.keptSilo !== undefined);
  const same = (['name', 'hostname', 'tier', 'deletionPolicy'] as const).every(
    (f) => entry[f] === request[f],
  );
  return moved && same;
}
