/**
 *   npm run deploy-policies
 *
 * Writes what the CDK bootstrap is given instead of AdministratorAccess (lib/deploy-policy.ts), from the
 * resource types a representative fleet uses (every kind of tenant: pool, bridge, silo from the address pool,
 * silo with a catalog range, disposable, restored; with tenant DNS names):
 *
 *   deploy/<scope>-permissions-boundary.json     the boundary every role of that scope's stacks carries
 *                                                ("tenantforge-<scope>-boundary")
 *   deploy/tenants-execution-policy-<n>.json     the execution policies of the tenants' bootstrap (tenant stacks
 *                                                only), "tenantforge-tenants-<n>"
 *   deploy/platform-execution-policy-<n>.json    the default bootstrap's (the shared stacks)
 *   deploy/tenants-bootstrap-template.json       the tenants' bootstrap itself, narrowed from the CDK CLI's
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
import { parseCli } from './cli';
import * as YAML from 'yaml';
import {
  boundaryPolicy,
  scopeRoleArns,
  executionPolicies,
  executionPolicyName,
  servicesOfRoles,
  tenantsBootstrapTemplate,
} from '../lib/deploy-policy';
import { buildFleet } from '../lib/fleet';
import { DEFAULT_SHARED_CELL_PROFILE, SHARED_CELL_PROFILES } from '../lib/cell-size';
import {
  BOOTSTRAP_QUALIFIERS,
  DEPLOY_SCOPES,
  DeployScopeName,
  permissionsBoundaryName,
  STACK_NAMES,
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
  { id: 'silo-production', name: 'Silo', model: 'silo', settings: { profile: 'production' } },
  { id: 'silo-idle', name: 'Silo', model: 'silo', settings: { profile: 'idle-friendly' } },
  {
    id: 'silo-idle-restored',
    name: 'Silo',
    model: 'silo',
    settings: { profile: 'idle-friendly', restoredFromSnapshot: 'silo-idle-restored-final-1' },
  },
];
type Template = { Resources?: Record<string, { Type: string; Properties?: unknown }> };

/** That fleet's templates, by the bootstrap that deploys them: the tenant stacks, and the shared stacks. */
export function fleetTemplates(): Record<DeployScopeName, Template[]> {
  const app = new App({ context: { 'aws:cdk:disable-creation-stack-traces': true } });
  buildFleet(app, parseCatalog({ tenants: REPRESENTATIVE_TENANTS }, 'representative fleet'), {
    env: { region: 'us-east-1' },
    domain: { zoneId: 'Z0000000000000', zoneName: 'saas.example.com' },
    skipChecks: true,
  });
  const templates: Record<DeployScopeName, Template[]> = { tenants: [], platform: [] };
  for (const stack of app.synth().stacks) {
    templates[tenantOfStackName(stack.stackName) !== undefined ? 'tenants' : 'platform'].push(
      stack.template as Template,
    );
  }
  // The shared cells in their other profile too (no NAT gateway, IPv6 out): a fleet has one of each cell, so a
  // second one with both cells planned in it.
  for (const profile of SHARED_CELL_PROFILES.filter((p) => p !== DEFAULT_SHARED_CELL_PROFILE)) {
    const cells = new App({ context: { 'aws:cdk:disable-creation-stack-traces': true } });
    buildFleet(
      cells,
      parseCatalog(
        {
          tenants: [],
          sharedCells: { pool: { plannedTenants: 0, profile }, bridge: { plannedTenants: 0, profile } },
        },
        `representative ${profile} cells`,
      ),
      { env: { region: 'us-east-1' }, skipChecks: true },
    );
    for (const stack of cells.synth().stacks) {
      if (stack.stackName === STACK_NAMES.pool || stack.stackName === STACK_NAMES.bridge)
        templates.platform.push(stack.template as Template);
    }
  }
  return templates;
}

/** The resource types of that fleet's templates, for the tenant stacks and for the shared stacks. */
export function fleetResourceTypes(templates = fleetTemplates()): Record<DeployScopeName, Set<string>> {
  const types = (ts: Template[]) =>
    new Set(ts.flatMap((t) => Object.values(t.Resources ?? {}).map((r) => r.Type)));
  return { tenants: types(templates.tenants), platform: types(templates.platform) };
}

/** The CDK CLI's own bootstrap template, which the tenants' bootstrap narrows. */
export function cdkBootstrapTemplate(): Record<string, unknown> {
  const file = require.resolve('aws-cdk/lib/api/bootstrap/bootstrap-template.yaml');
  return YAML.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** The deploy job's role name starts with this (CloudFormation names it <stack>-<logical id>-<random>). */
export const DEPLOY_JOB_ROLE_PREFIX = `${STACK_NAMES.onboarding}-DeployTenantRole`;

const escapeRegExp = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

/**
 * The services the roles of these templates pass roles to (their iam:PassRole statements' iam:PassedToService).
 * A statement that passes a role without naming the service is refused: the boundary admits passing to named
 * services only.
 */
export function passedToServices(templates: readonly Template[]): string[] {
  const to = new Set<string>();
  for (const t of templates) {
    for (const [id, r] of Object.entries(t.Resources ?? {})) {
      type Doc = { Statement: Record<string, unknown>[] };
      const p = (r.Properties ?? {}) as { PolicyDocument?: Doc; Policies?: { PolicyDocument: Doc }[] };
      const docs =
        r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy'
          ? [p.PolicyDocument!]
          : r.Type === 'AWS::IAM::Role'
            ? (p.Policies ?? []).map((inline) => inline.PolicyDocument)
            : [];
      for (const st of docs.flatMap((d) => d.Statement)) {
        const acts = [st.Action].flat() as string[];
        // Any action pattern that covers iam:PassRole (iam:PassRole, iam:Pass*, iam:*, *).
        const covers = (pattern: string) =>
          new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`, 'i').test('iam:PassRole');
        if (st.Effect === 'Deny' || !acts.some(covers)) continue;
        const services = (st.Condition as { StringEquals?: Record<string, string | string[]> } | undefined)
          ?.StringEquals?.['iam:PassedToService'];
        if (!services) {
          throw new Error(
            `${id}: a statement passes roles without an iam:PassedToService condition; name the service it passes them to`,
          );
        }
        [services].flat().forEach((svc) => to.add(svc));
      }
    }
  }
  return [...to].sort();
}

export function deployPolicyFiles(): Record<string, object> {
  const templates = fleetTemplates();
  const types = fleetResourceTypes(templates);
  const files: Record<string, object> = {};
  for (const scope of [DEPLOY_SCOPES.tenants, DEPLOY_SCOPES.platform]) {
    const used = new Map<string, Set<string>>();
    const services = servicesOfRoles(templates[scope.name], used);
    // Tenant stacks' roles get of the control-plane services exactly what they use: of Step Functions, reads of the
    // onboarding workflow's executions and the answer to a task; of CloudFormation, a silo provisioner's read of its
    // own stack's status.
    // ... and of ECS, a mobility runner's start of its runner task.
    const exact =
      scope === DEPLOY_SCOPES.tenants
        ? new Map(
            ['states', 'cloudformation', 'ecs']
              .filter((svc) => used.has(svc))
              .map((svc) => [svc, used.get(svc)!]),
          )
        : undefined;
    const passTo = passedToServices(templates[scope.name]);
    files[`${scope.name}-permissions-boundary.json`] = boundaryPolicy(
      services,
      exact,
      passTo.length > 0 ? { roles: scopeRoleArns(scope), to: passTo } : undefined,
    );
    executionPolicies(types[scope.name], scope).forEach(
      (doc, i) => (files[`${scope.name}-execution-policy-${i + 1}.json`] = doc),
    );
  }
  files['tenants-bootstrap-template.json'] = tenantsBootstrapTemplate(
    cdkBootstrapTemplate(),
    DEPLOY_JOB_ROLE_PREFIX,
  );
  return files;
}

/** The committed execution policy files of one bootstrap, in order, and the IAM policy name each is created as. */
export function executionPolicyFiles(scope: DeployScopeName): { file: string; policyName: string }[] {
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
export function bootstrapCommand(scope: DeployScopeName, region: string, account = '<account>'): string {
  const policies = executionPolicyFiles(scope)
    .map((p) => `arn:aws:iam::${account}:policy/${p.policyName}`)
    .join(',');
  if (scope === 'platform') {
    return `npx cdk bootstrap aws://${account}/${region} --cloudformation-execution-policies ${policies}`;
  }
  // The tenants' bootstrap is the narrowed template (lib/deploy-policy.ts tenantsBootstrapTemplate).
  return (
    `aws cloudformation deploy --region ${region} --stack-name CDKToolkit-tenants ` +
    `--template-file deploy/tenants-bootstrap-template.json --capabilities CAPABILITY_NAMED_IAM ` +
    `--parameter-overrides Qualifier=${BOOTSTRAP_QUALIFIERS.tenants} CloudFormationExecutionPolicies=${policies} ` +
    `TrustedDeployers=<ARN patterns of the people or pipelines that deploy tenant stacks, or leave empty>`
  );
}

/** Everything an account needs once per region, in order: the policies from deploy/, then the two bootstraps. */
export function setupCommands(region: string, account = '<account>'): string[] {
  const create = (name: string, file: string) =>
    `aws iam create-policy --policy-name ${name} --policy-document file://${file}`;
  return [
    ...(['platform', 'tenants'] as const).flatMap((scope) => [
      create(permissionsBoundaryName(scope), `deploy/${scope}-permissions-boundary.json`),
      ...executionPolicyFiles(scope).map((p) => create(p.policyName, p.file)),
    ]),
    bootstrapCommand('platform', region, account),
    bootstrapCommand('tenants', region, account),
  ];
}

const USAGE = `usage: npm run deploy-policies
       npm run -s deploy-policies -- --commands [<account> <region>]

Writes deploy/*.json: the permissions boundaries, the CloudFormation execution policies and the tenants'
bootstrap template, from the resource types a representative fleet uses. With --commands, prints instead the
commands that create those policies and the two CDK bootstraps that use them (changes nothing).
  --commands   print the set-up commands (optionally for an account and region)
  --help       this text`;

if (require.main === module) {
  const { values, positionals } = parseCli(
    'npm run deploy-policies',
    USAGE,
    { commands: { type: 'boolean' } },
    {
      positionals: 2,
    },
  );
  if (values.commands) {
    // Prints the commands, changes nothing.
    const [account, region] = positionals;
    console.log(setupCommands(region ?? '<region>', account ?? '<account>').join('\n'));
  } else if (positionals.length > 0) {
    console.error(
      `npm run deploy-policies: unexpected argument "${positionals[0]}" (only --commands takes any)\n\n${USAGE}`,
    );
    process.exit(2);
  } else {
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
}
