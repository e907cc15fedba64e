import { Construct } from 'constructs';
import { CustomResource } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { CatalogError, parseTenant, Tenant } from '../catalog';
import { PROVISIONER_RESOURCE_TYPES, ssmNames } from '../../contracts';
import { Cell, SCHEMA_VERSION } from './cell';

/** The custom resource type that provisions a tenant of each model. */
export const TENANT_RESOURCE_TYPES = {
  silo: PROVISIONER_RESOURCE_TYPES.silo,
  pool: PROVISIONER_RESOURCE_TYPES.pool,
  bridge: PROVISIONER_RESOURCE_TYPES.bridge,
} as const;

export interface TenantProvisioningProps {
  /** The tenant, validated with the catalog's rules (`TenantProvisioning.tenantFrom` for a raw request). */
  readonly tenant: Tenant;
}

/**
 * Turns one tenant into its infrastructure, whatever its model: the one way a tenant is provisioned, used by
 * the CDK app for every catalog entry (inside `TenantStack`) and by an onboarding pipeline for one tenant.
 *
 * - silo: a whole cell of its own (VPC, KMS key, RDS PostgreSQL, API service, provisioner) plus the
 *   `Custom::SiloTenant` resource that creates the application schema and records the tenant;
 * - pool / bridge: one `Custom::PoolTenant` / `Custom::BridgeTenant` resource that calls the shared cell's
 *   provisioner, whose service token it reads from SSM (no CloudFormation export ties it to the shared stack).
 *
 * Deleting it offboards the tenant: data is kept unless the tenant's deletion policy is `destroy`.
 *
 * @example
 * const stack = new Stack(app, tenantStackName(tenant.id));
 * new TenantProvisioning(stack, 'Default', { tenant: TenantProvisioning.tenantFrom(request, 'onboarding request') });
 */
export class TenantProvisioning extends Construct {
  /** Validates a raw tenant request (`{ id, name, model, settings }`) with the catalog's rules. */
  static tenantFrom(request: unknown, source: string): Tenant {
    const { tenant, problems } = parseTenant(request, 'the request');
    if (!tenant) throw new CatalogError(source, problems);
    return tenant;
  }

  readonly tenant: Tenant;
  /** Silo only: the tenant's own cell. */
  readonly cell?: Cell;
  readonly tenantResource: CustomResource;

  constructor(scope: Construct, id: string, props: TenantProvisioningProps) {
    super(scope, id);
    const t = props.tenant;
    this.tenant = t;
    let serviceToken: string;
    if (t.model === 'silo') {
      if (!t.silo) throw new Error(`TenantProvisioning ${id}: silo tenant "${t.id}" has no silo settings`);
      this.cell = new Cell(this, 'Cell', {
        model: 'silo',
        siloTenantId: t.id,
        cidr: t.silo.vpcCidr,
        description: `Silo tenant ${t.id}: all of this tenant's data`,
        instanceClass: t.silo.instanceClass,
        multiAz: t.silo.multiAz,
        backupRetentionDays: t.silo.backupRetentionDays,
        disposable: t.deletionPolicy === 'destroy',
      });
      serviceToken = this.cell.provisioner.serviceToken;
      new ssm.StringParameter(this, 'ApiEndpoint', {
        parameterName: ssmNames.tenantApiEndpoint(t.id),
        stringValue: `https://${this.cell.api.loadBalancer.loadBalancerDnsName}`,
      });
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
