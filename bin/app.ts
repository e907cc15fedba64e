import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { CatalogError, loadCatalog } from '../lib/catalog';
import { buildFleet, FleetError } from '../lib/fleet';

// A stack trace per construct and a 27 MB construct tree cost seconds on a 1,000-tenant fleet and serve only
// debugging: `cdk synth --debug` (CDK_DEBUG) brings the traces back. Findings still name the construct path.
const debug = process.env.CDK_DEBUG === 'true';
const app = new App({
  stackTraces: debug,
  treeMetadata: debug,
  context: debug ? {} : { 'aws:cdk:disable-creation-stack-traces': true },
});
const catalogPath =
  (app.node.tryGetContext('catalog') as string | undefined) ?? path.join(__dirname, '..', 'tenants.json');
const onlyTenant = app.node.tryGetContext('tenant') as string | undefined;
const region =
  (app.node.tryGetContext('region') as string | undefined) || process.env.CDK_DEFAULT_REGION || 'us-east-1';

try {
  // An onboarding pipeline adds the requested tenant (validated with the catalog's rules) and builds its stack.
  const request = app.node.tryGetContext('tenantRequest') as string | undefined;
  let extra: unknown[] = [];
  if (request !== undefined && request !== '') {
    try {
      extra = [typeof request === 'string' ? JSON.parse(request) : request];
    } catch (e) {
      throw new CatalogError('-c tenantRequest', [
        { code: 'invalid-document', message: `is not JSON (${(e as Error).message})` },
      ]);
    }
  }
  const catalog = loadCatalog(catalogPath, extra);
  buildFleet(app, catalog, {
    onlyTenant,
    env: { account: process.env.CDK_DEFAULT_ACCOUNT || undefined, region },
  });
} catch (e) {
  if (e instanceof CatalogError || e instanceof FleetError) {
    console.error(e.message);
    process.exit(1);
  }
  throw e;
}
