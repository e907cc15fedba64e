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
