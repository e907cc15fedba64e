import type { IsolationModel } from './tenant-id';

/**
 * Where cross-stack values live in SSM Parameter Store. Stacks read each other's values from here rather than
 * from CloudFormation exports, which would lock the shared stacks to every tenant stack that imports them.
 */
export const SSM_ROOT = '/tenantforge';

export const ssmNames = {
  registryTableName: `${SSM_ROOT}/platform/registry-table-name`,
  registryTableArn: `${SSM_ROOT}/platform/registry-table-arn`,
  /** The KMS key that encrypts the registry: every reader and writer needs its rights through DynamoDB. */
  registryKeyArn: `${SSM_ROOT}/platform/registry-key-arn`,
  /** The VPC IP Address Manager pool silo VPCs take their ranges from. */
  siloIpamPoolId: `${SSM_ROOT}/platform/silo-ipam-pool-id`,
  /** The API image of this release (informational: stacks reference it by its tag at synth). */
  apiImageUri: `${SSM_ROOT}/platform/api-image-uri`,
  userPoolId: `${SSM_ROOT}/platform/user-pool-id`,
  userPoolClientId: `${SSM_ROOT}/platform/user-pool-client-id`,
  /** Set by the operator before the first deploy: the ACM certificate the load balancers serve. */
  certificateArn: `${SSM_ROOT}/platform/certificate-arn`,
  provisionerServiceToken: (model: Exclude<IsolationModel, 'silo'>) =>
    `${SSM_ROOT}/${model}/provisioner-service-token`,
  apiEndpoint: (model: Exclude<IsolationModel, 'silo'>) => `${SSM_ROOT}/${model}/api-endpoint`,
  /** A silo tenant's own API. */
  tenantApiEndpoint: (tenantId: string) => `${SSM_ROOT}/tenants/${tenantId}/api-endpoint`,
  /** The API service of a cell, for readiness checks: JSON `{ cluster, service, targetGroupArn }`. */
  apiService: (model: Exclude<IsolationModel, 'silo'>) => `${SSM_ROOT}/${model}/api-service`,
  tenantApiService: (tenantId: string) => `${SSM_ROOT}/tenants/${tenantId}/api-service`,
  apiServiceFor: (model: IsolationModel, tenantId: string) =>
    model === 'silo' ? ssmNames.tenantApiService(tenantId) : ssmNames.apiService(model),
  /** The API endpoint of whichever cell serves a tenant of `model`. */
  apiEndpointFor: (model: IsolationModel, tenantId: string) =>
    model === 'silo' ? ssmNames.tenantApiEndpoint(tenantId) : ssmNames.apiEndpoint(model),
  /** IAM resource-name patterns (no leading slash) of the parameters the readiness check reads. */
  readinessPatterns: [
    `${SSM_ROOT.slice(1)}/*/api-endpoint`,
    `${SSM_ROOT.slice(1)}/tenants/*/api-endpoint`,
    `${SSM_ROOT.slice(1)}/*/api-service`,
    `${SSM_ROOT.slice(1)}/tenants/*/api-service`,
  ],
};
