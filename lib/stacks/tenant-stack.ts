import { Construct } from 'constructs';
import { CustomResource, Stack, StackProps } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Tenant } from '../catalog';
import { Cell, SCHEMA_VERSION } from '../constructs/cell';
import { ssmNames } from '../ssm-names';

export interface TenantStackProps extends StackProps {
  readonly tenant: Tenant;
}

/** The custom resource type that provisions a tenant of each model. */
export const TENANT_RESOURCE_TYPES = {
  silo: 'Custom::SiloTenant',
  pool: 'Custom::PoolTenant',
  bridge: 'Custom::BridgeTenant',
} as const;

/**
 * One tenant, whatever its model. Deploying it onboards the tenant; destroying it offboards the tenant.
 * Silo: the whole cell (VPC, key, database, service, provisioner). Pool and bridge: one custom resource that
 * asks the shared cell's provisioner (found in SSM) to register the tenant or create its schema and role.
 */
export class TenantStack extends Stack {
  readonly tenant: Tenant;
  readonly cell?: Cell;
  readonly tenantResource: CustomResource;

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    super(scope, id, props);
    const t = props.tenant;
    this.tenant = t;
    let serviceToken: string;
    if (t.model === 'silo') {
      const silo = t.silo!;
      this.cell = new Cell(this, 'Cell', {
        model: 'silo',
        siloTenantId: t.id,
        cidr: silo.vpcCidr,
        description: `Silo tenant ${t.id}: all of this tenant's data`,
        instanceClass: silo.instanceClass,
        multiAz: silo.multiAz,
        backupRetentionDays: silo.backupRetentionDays,
        disposable: t.deletionPolicy === 'destroy',
      });
      serviceToken = this.cell.provisioner.serviceToken;
    } else {
      serviceToken = ssm.StringParameter.valueForStringParameter(
        this,
        ssmNames.provisionerServiceToken(t.model),
      );
    }
    this.tenantResource = new CustomResource(this, 'Tenant', {
      serviceToken,
      resourceType: TENANT_RESOURCE_TYPES[t.model],
      // A new SchemaVersion (a new migration in db/migrations) makes CloudFormation send an Update, which
      // brings this tenant's schema up to date: a fleet-wide upgrade is `cdk deploy --all`.
      properties: {
        TenantId: t.id,
        Name: t.name,
        Model: t.model,
        DeletionPolicy: t.deletionPolicy,
        SchemaVersion: SCHEMA_VERSION,
      },
    });
    if (this.cell) this.tenantResource.node.addDependency(this.cell.bootstrap);
  }
}
