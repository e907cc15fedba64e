/**
 *   npm run deploy-policies
 *
 * Writes what the CDK bootstrap is given instead of AdministratorAccess (lib/deploy-policy.ts), from the
 * resource types a representative fleet uses (every kind of tenant: pool, bridge, silo from the address pool,
 * silo with a catalog range, disposable, restored; with tenant DNS names):
 *
 *   deploy/permissions-boundary.json             create as the managed policy named PERMISSIONS_BOUNDARY_NAME
 *   deploy/tenants-execution-policy-<n>.json     create each as "tenantforge-tenants-<n>": the execution policies
 *                                                of the tenants' bootstrap (tenant stacks only)
 *   deploy/platform-execution-policy-<n>.json    create each as "tenantforge-platform-<n>": the default
 *                                                bootstrap's (the shared stacks)
 *
 * A test fails when these files are stale or a template uses a resource type they do not cover.
 *
 *   npm run -s deploy-policies -- --commands [<account> <region>]
 *
 * prints the commands that create those policies and the two CDK bootstraps that use them (changes nothing).
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { parseCatalog } from '../lib/catalog';
import { boundaryPolicy, executionPolicies, executionPolicyName, PolicyDocument } from '../lib/deploy-policy';
import { buildFleet } from '../lib/fleet';
import {
  BOOTSTRAP_QUALIFIERS,
  DEPLOY_SCOPES,
  PERMISSIONS_BOUNDARY_NAME,
  tenantOfStackName,
} from '../contracts';

export const DEPLOY_DIR = path.join(__dirname, '..', 'deploy');

/** Every kind of tenant the catalog allows, so every resource type any fleet can hold appears. */
export const REPRESENTATIVE_TENANTS = [
  { id: 'pool-tenant', name: 'A pool tenant', model: 'pool' },
  { id: 'bridge-tenant', name: 'A bridge tenant', model: 'bridge' },
  { id: 'silo-from-pool', name: 'Silo', model: 'silo' },
  { id: 'silo-ranged', name: 'Silo', model: 'silo', settings: { vpcCidr: '10.16.0.0/20', multiAz: false } },
  { id: 'silo-disposable', name: 'Silo', model: 'silo', settings: { deletionPolicy: 'destroy' } },
  {
    id: 'silo-restored',
    name: 'Silo',
    model: 'silo',
    settings: { restoredFromSnapshot: 'silo-restored-final-1' },
  },
];

/** The resource types of that fleet's templates, for the tenant stacks and for the shared stacks. */
export function fleetResourceTypes(): Record<'tenants' | 'platform', Set<string>> {
  const app = new App({ context: { 'aws:cdk:disable-creation-stack-traces': true } });
  buildFleet(app, parseCatalog({ tenants: REPRESENTATIVE_TENANTS }, 'representative fleet'), {
    env: { region: 'us-east-1' },
    domain: { zoneId: 'Z0000000000000', zoneName: 'saas.example.com' },
    skipChecks: true,
  });
  const types = { tenants: new Set<string>(), platform: new Set<string>() };
  for (const stack of app.synth().stacks) {
    const into = tenantOfStackName(stack.stackName) !== undefined ? types.tenants : types.platform;
    for (const r of Object.values(
      (stack.template as { Resources: Record<string, { Type: string }> }).Resources,
    )) {
      into.add(r.Type);
    }
  }
  return types;
}

export function deployPolicyFiles(): Record<string, PolicyDocument> {
  const files: Record<string, PolicyDocument> = { 'permissions-boundary.json': boundaryPolicy() };
  const types = fleetResourceTypes();
  for (const scope of [DEPLOY_SCOPES.tenants, DEPLOY_SCOPES.platform]) {
    executionPolicies(types[scope.name], scope).forEach(
      (doc, i) => (files[`${scope.name}-execution-policy-${i + 1}.json`] = doc),
    );
  }
  return files;
}

/** The committed execution policy files of one bootstrap, in order, and the IAM policy name each is created as. */
export function executionPolicyFiles(scope: 'platform' | 'tenants'): { file: string; policyName: string }[] {
  return fs
    .readdirSync(DEPLOY_DIR)
    .filter((f) => f.startsWith(`${scope}-execution-policy-`) && f.endsWith('.json'))
    .map((f) => Number(/(\d+)\.json$/.exec(f)![1]))
    .sort((a, b) => a - b)
    .map((n) => ({
      file: `deploy/${scope}-execution-policy-${n}.json`,
      policyName: executionPolicyName(DEPLOY_SCOPES[scope], n),
    }));
}

/** The bootstrap command of one of the two bootstraps, with its execution policies. */
export function bootstrapCommand(
  scope: 'platform' | 'tenants',
  region: string,
  account = '<account>',
): string {
  const policies = executionPolicyFiles(scope)
    .map((p) => `arn:aws:iam::${account}:policy/${p.policyName}`)
    .join(',');
  const own =
    scope === 'tenants'
      ? ` --qualifier ${BOOTSTRAP_QUALIFIERS.tenants} --toolkit-stack-name CDKToolkit-tenants`
      : '';
  return `npx cdk bootstrap aws://${account}/${region}${own} --cloudformation-execution-policies ${policies}`;
}

/** Everything an account needs once per region, in order: the policies from deploy/, then the two bootstraps. */
export function setupCommands(region: string, account = '<account>'): string[] {
  const create = (name: string, file: string) =>
    `aws iam create-policy --policy-name ${name} --policy-document file://${file}`;
  return [
    create(PERMISSIONS_BOUNDARY_NAME, 'deploy/permissions-boundary.json'),
    ...(['platform', 'tenants'] as const).flatMap((scope) =>
      executionPolicyFiles(scope).map((p) => create(p.policyName, p.file)),
    ),
    bootstrapCommand('platform', region, account),
    bootstrapCommand('tenants', region, account),
  ];
}

if (require.main === module && process.argv.includes('--commands')) {
  // npm run -s deploy-policies -- --commands [<account> <region>]: prints the commands, changes nothing.
  const [account, region] = process.argv.slice(process.argv.indexOf('--commands') + 1);
  console.log(setupCommands(region ?? '<region>', account ?? '<account>').join('\n'));
} else if (require.main === module) {
  // Everything is computed before anything is removed: a missing resource type leaves the old files as they were.
  const files = deployPolicyFiles();
  fs.mkdirSync(DEPLOY_DIR, { recursive: true });
  for (const f of fs.readdirSync(DEPLOY_DIR).filter((n) => n.endsWith('.json')))
    fs.rmSync(path.join(DEPLOY_DIR, f));
  for (const [name, doc] of Object.entries(files)) {
    fs.writeFileSync(path.join(DEPLOY_DIR, name), JSON.stringify(doc, null, 2) + '\n');
    console.log(`wrote deploy/${name}`);
  }
}
