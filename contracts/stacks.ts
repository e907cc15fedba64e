/** CloudFormation stack names: what the CDK app creates and what the pipeline, preflight and tools look up. */

export const STACK_NAMES = {
  platform: 'Platform',
  pool: 'Pool',
  bridge: 'Bridge',
  onboarding: 'Onboarding',
} as const;

/** Every tenant stack's name starts with this. */
export const TENANT_STACK_PREFIX = 'Tenant-';

/** The CloudFormation stack that holds one tenant, whatever its model. */
export function tenantStackName(tenantId: string): string {
  return `${TENANT_STACK_PREFIX}${tenantId}`;
}

/** The tenant id of a tenant stack's name, or undefined for any other stack. */
export function tenantOfStackName(stackName: string): string | undefined {
  return stackName.startsWith(TENANT_STACK_PREFIX) ? stackName.slice(TENANT_STACK_PREFIX.length) : undefined;
}

/**
 * Where a tenant stack is in its life, chosen by whoever deploys it (`-c tenantPhase=...`):
 * - `create`: its first deploy by the onboarding workflow: nothing is deletion-protected yet, so a failed
 *   first deploy rolls back cleanly and can be retried;
 * - `steady` (the default, and what `cdk deploy --all` deploys): everything that holds data is protected;
 * - `retire`: the deploy the offboarding workflow runs just before destroying the stack: protection lifted by
 *   the stack itself, so no role needs the right to modify databases or load balancers.
 */
export const TENANT_PHASES = ['create', 'steady', 'retire'] as const;
export type TenantPhase = (typeof TENANT_PHASES)[number];

/** Template metadata every stack carries, so the lifecycle checks know what CloudFormation is meant to do with it. */
export const LIFECYCLE_METADATA_KEY = 'tenantforge:lifecycle';
export interface StackLifecycle {
  /** What deleting the stack does with its data. */
  readonly deletionPolicy: 'retain' | 'destroy';
  readonly phase: TenantPhase;
}

/**
 * The prefix of the managed policies the deploy path uses (deploy/*.json, npm run deploy-policies): the
 * CloudFormation execution policies of each CDK bootstrap, and the permissions boundary every role of each
 * scope's stacks carries (`tenantforge-<scope>-boundary`, applied by lib/fleet.ts).
 */
export const EXECUTION_POLICY_PREFIX = 'tenantforge';
export const permissionsBoundaryName = (scope: DeployScopeName) =>
  `${EXECUTION_POLICY_PREFIX}-${scope}-boundary`;
export type DeployScopeName = 'platform' | 'tenants';

/**
 * Two CDK bootstraps in each account and region. Tenant stacks deploy through their own (`tenants`), whose
 * CloudFormation execution role can create only what tenant stacks hold, and only IAM roles and policies named
 * for tenant stacks: the onboarding job may use only that one. The shared stacks deploy through the default.
 */
export const BOOTSTRAP_QUALIFIERS = { platform: 'hnb659fds', tenants: 'tftenants' } as const;

/** What each bootstrap's execution policies cover: the stacks (by name prefix) deployed through it. */
export const DEPLOY_SCOPES = {
  platform: { name: 'platform', stackPrefixes: Object.values(STACK_NAMES).map((n) => `${n}-`) },
  tenants: { name: 'tenants', stackPrefixes: [TENANT_STACK_PREFIX] },
} as const;

/**
 * Every log group a stack creates is named under its stack's prefix, so its key can admit CloudWatch Logs for
 * exactly those log groups (an encryption-context condition) and no other log group in the account. WAF's
 * log groups must start with `aws-waf-logs-`, so they have a prefix of their own.
 */
export const logGroupPrefix = (stackName: string) => `/tenantforge/${stackName}/`;
export const wafLogGroupPrefix = (stackName: string) => `aws-waf-logs-tenantforge/${stackName}/`;
