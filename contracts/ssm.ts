import type { IsolationModel } from './tenant-id';

/**
 * Where cross-stack values live in SSM Parameter Store. Stacks read each other's values from here rather than
 * from CloudFormation exports, which would lock the shared stacks to every tenant stack that imports them.
 */
export const SSM_ROOT = '/tenantforge';

export const ssmNames = {
  registryTableName: `${SSM_ROOT}/platform/registry-table-name`,
  registryTableArn: `${SSM_ROOT}/platform/registry-table-arn`,
  userPoolId: `${SSM_ROOT}/platform/user-pool-id`,
  userPoolClientId: `${SSM_ROOT}/platform/user-pool-client-id`,
  /** Set by the operator before the first deploy: the ACM certificate the load balancers serve. */
  certificateArn: `${SSM_ROOT}/platform/certificate-arn`,
  provisionerServiceToken: (model: Exclude<IsolationModel, 'silo'>) =>
    `${SSM_ROOT}/${model}/provisioner-service-token`,
  apiEndpoint: (model: Exclude<IsolationModel, 'silo'>) => `${SSM_ROOT}/${model}/api-endpoint`,
  /** A silo tenant's own API. */
  tenantApiEndpoint: (tenantId: string) => `${SSM_ROOT}/tenants/${tenantId}/api-endpoint`,
  /** The API endpoint of whichever cell serves a tenant of `model`. */
  apiEndpointFor: (model: IsolationModel, tenantId: string) =>
    model === 'silo' ? ssmNames.tenantApiEndpoint(tenantId) : ssmNames.apiEndpoint(model),
  /** IAM resource-name patterns (no leading slash) of every API endpoint parameter: the readiness check reads them. */
  apiEndpointPatterns: [`${SSM_ROOT.slice(1)}/*/api-endpoint`, `${SSM_ROOT.slice(1)}/tenants/*/api-endpoint`],
};
