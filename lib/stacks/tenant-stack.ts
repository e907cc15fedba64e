import { Construct } from 'constructs';
import { Stack, StackProps } from 'aws-cdk-lib';
import { Tenant } from '../catalog';
import { TenantProvisioning } from '../constructs/tenant-provisioning';

export { TENANT_RESOURCE_TYPES } from '../constructs/tenant-provisioning';

export interface TenantStackProps extends StackProps {
  readonly tenant: Tenant;
}

/**
 * One tenant's stack, whatever its model: a `TenantProvisioning` and nothing else. Deploying it onboards the
 * tenant; destroying it offboards the tenant; no other stack changes.
 */
export class TenantStack extends Stack {
  readonly tenant: Tenant;
  readonly provisioning: TenantProvisioning;

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    super(scope, id, props);
    this.tenant = props.tenant;
    // "Default" keeps the construct out of logical ids: resources keep the ids they had at the stack's root.
    this.provisioning = new TenantProvisioning(this, 'Default', { tenant: props.tenant });
  }

  get cell() {
    return this.provisioning.cell;
  }

  get tenantResource() {
    return this.provisioning.tenantResource;
  }
}
