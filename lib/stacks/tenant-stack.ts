import { Construct } from 'constructs';
import { Stack, StackProps } from 'aws-cdk-lib';
import { LIFECYCLE_METADATA_KEY, StackLifecycle } from '../../contracts';
import { Tenant } from '../catalog';
import { TenantProvisioning, TenantProvisioningProps } from '../constructs/tenant-provisioning';

export { TENANT_RESOURCE_TYPES } from '../constructs/tenant-provisioning';

export interface TenantStackProps extends StackProps, TenantProvisioningProps {}

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
    const lifecycle: StackLifecycle = {
      deletionPolicy: props.tenant.deletionPolicy,
      phase: props.phase ?? 'steady',
    };
    this.templateOptions.metadata = { ...this.templateOptions.metadata, [LIFECYCLE_METADATA_KEY]: lifecycle };
    // "Default" keeps the construct out of logical ids: resources keep the ids they had at the stack's root.
    this.provisioning = new TenantProvisioning(this, 'Default', props);
  }

  get cell() {
    return this.provisioning.cell;
  }

  get tenantResource() {
    return this.provisioning.tenantResource;
  }
}
