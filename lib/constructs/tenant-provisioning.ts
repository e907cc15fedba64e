import { Construct } from 'constructs';
import { CustomResource, Duration, Fn } from 'aws-cdk-lib';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { CatalogError, parseTenant, Tenant, tenantRequestOf } from '../catalog';
import { movedTenant, movedTo } from '../move-rules';
import {
  IsolationModel,
  PROVISIONER_RESOURCE_TYPES,
  SiloProfileName,
  ssmNames,
  TenantPhase,
} from '../../contracts';
import { ApiImage, ApiImageRef } from './api-image';
import { Cell, SCHEMA_VERSION } from './cell';
import { siloProfile } from '../silo-profiles';

/** The custom resource type that provisions a tenant of each model. */
export const TENANT_RESOURCE_TYPES = {
  silo: PROVISIONER_RESOURCE_TYPES.silo,
  pool: PROVISIONER_RESOURCE_TYPES.pool,
  bridge: PROVISIONER_RESOURCE_TYPES.bridge,
} as const;

/**
 * The logical id of a tenant's provisioning resource in its stack: `Tenant` in the model the tenant was first
 * provisioned in, `Tenant<Model>` in any other. CloudFormation refuses a template that changes a resource's type
 * under the same id ("Update of resource type is not permitted"), and a custom resource's ServiceToken cannot
 * change either, so a move between models adds the destination's resource beside the source's under its own id,
 * and the source's goes in a later deploy. Every tenant that never moved keeps `Tenant`, as before.
 */
export function tenantResourceId(model: IsolationModel, firstModel: IsolationModel = model): string {
  return model === firstModel ? 'Tenant' : `Tenant${model[0].toUpperCase()}${model.slice(1)}`;
}

/** Why `t` cannot be moved to `to` in AWS, or undefined when it can. */
export function moveProblem(t: Tenant, to: unknown): string | undefined {
  if (to === t.model) return `tenant "${t.id}" is already a ${t.model} tenant: nothing to move`;
  if (!(to === 'pool' || to === 'bridge' || to === 'silo')) {
    return `tenant "${t.id}": movingTo is ${JSON.stringify(to)}: use "pool", "bridge" or "silo"`;
  }
  if (t.keptSilo) {
    return `tenant "${t.id}" still keeps the silo it moved out of: purge it first (npm run request -- purge --tenant ${t.id})`;
  }
  return undefined;
}

/** A Route 53 hosted zone the platform engineer names: every tenant gets `<hostname>.<zoneName>`. */
export interface TenantDomain {
  readonly zoneId: string;
  readonly zoneName: string;
}

export interface TenantProvisioningProps {
  /** The tenant, validated with the catalog's rules (`TenantProvisioning.tenantFrom` for a raw request). */
  readonly tenant: Tenant;
  /**
   * The release's API image (silo tenants run it in their own cell).
   * @default - this source tree's image, as the Platform stack builds it (`ApiImage.reference()`)
   */
  readonly image?: ApiImageRef;
  /**
   * Where the tenant's stack is in its life (see `TenantPhase`).
   * @default 'steady'
   */
  readonly phase?: TenantPhase;
  /**
   * The VPC IP Address Manager pool a silo VPC takes its range from when the catalog sets none.
   * @default - the pool the Platform stack publishes in SSM
   */
  readonly ipamPoolId?: string;
  /**
   * A hosted zone to give the tenant a DNS name in.
   * @default - no DNS name; the tenant is reached through its cell's load balancer
   */
  readonly domain?: TenantDomain;
  /**
   * Bring back an offboarded tenant and its kept data (the onboarding workflow's explicit restore).
   * @default false - a retired tenant is never provisioned again
   */
  readonly restore?: boolean;
  /**
   * The tenant is being moved to this model (the onboarding workflow's `move`): the stack keeps the tenant's
   * resource exactly as it is and adds the destination cell's beside it, which provisions the tenant's empty place
   * there (the provisioner sees the move in the registry and records nothing). The move's last deploy builds the
   * tenant in its new model only, which retires the source's place with its data kept.
   * @default - not moving
   */
  readonly movingTo?: IsolationModel;
  /**
   * A move into a silo: the silo's cost profile (the catalog's `settings.profile`).
   * @default 'standard'
   */
  readonly movingProfile?: SiloProfileName;
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
  /** A tenant that moved out of its silo, until a purge: that silo's cell, kept as it was (frozen, not serving). */
  readonly keptCell?: Cell;
  readonly tenantResource: CustomResource;
  /** While the tenant moves (`movingTo`): its resource in the destination cell. */
  readonly destinationResource?: CustomResource;
  /** The tenant's DNS name, when the fleet has a domain. */
  readonly hostName?: string;

  constructor(scope: Construct, id: string, props: TenantProvisioningProps) {
    super(scope, id);
    const t = props.tenant;
    this.tenant = t;
    const moving = props.movingTo !== undefined && moveProblem(t, props.movingTo);
    if (moving) throw new Error(`TenantProvisioning ${id}: ${moving}`);
    if (props.movingProfile !== undefined && props.movingTo !== 'silo') {
      throw new Error(
        `TenantProvisioning ${id}: movingProfile ${props.movingProfile} is a silo's cost profile: give it with movingTo 'silo' only`,
      );
    }
    let serviceToken: string;
    if (t.model === 'silo') {
      this.cell = siloCell(this, t, props);
      serviceToken = this.cell.provisioner.serviceToken;
    } else {
      serviceToken = ssm.StringParameter.valueForStringParameter(
        this,
        ssmNames.provisionerServiceToken(t.model),
      );
    }
    this.tenantResource = tenantResource(this, t, serviceToken, { restore: props.restore });
    if (this.cell) this.tenantResource.node.addDependency(this.cell.bootstrap);
    if (t.keptSilo) {
      // The silo a move out of it kept: built exactly as it was (the same ids and properties, so CloudFormation
      // changes nothing in it) until a purge removes it; its API answers 503 (the registry places the tenant
      // elsewhere) and its data stays frozen. Its `retire` phase is the purge's, which lifts its protection.
      this.keptCell = siloCell(this, t.keptSilo, props);
      // Marked as the kept copy: its provisioner leaves it as it is (an update of a silo the tenant left is
      // otherwise refused, as a stale catalog's).
      tenantResource(this, t.keptSilo, this.keptCell.provisioner.serviceToken, {
        keptCopy: true,
      }).node.addDependency(this.keptCell.bootstrap);
    }
    if (props.movingTo === 'silo') {
      // Into a silo of its own: the whole cell, built beside the tenant's place in its shared cell, as the tenant
      // will be (its request as moved: the profile the move names, by default `standard`, and its settings).
      const moved = movedTenant(t, 'silo', props.movingProfile);
      this.cell = siloCell(this, moved, props);
      this.destinationResource = tenantResource(this, moved, this.cell.provisioner.serviceToken);
      this.destinationResource.node.addDependency(this.cell.bootstrap);
    } else if (props.movingTo !== undefined) {
      const to = props.movingTo;
      this.destinationResource = tenantResource(
        this,
        movedTo(t, to),
        ssm.StringParameter.valueForStringParameter(this, ssmNames.provisionerServiceToken(to)),
      );
    }

    if (props.domain) {
      this.hostName = `${t.hostname}.${props.domain.zoneName}`;
      const zone = route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', {
        hostedZoneId: props.domain.zoneId,
        zoneName: props.domain.zoneName,
      });
      // While the tenant moves it answers 503 in both cells, so its name already points at the cell it moves to
      // (its own, into a silo): the name has propagated by the time that cell serves it (a rollback's deploy points
      // it back).
      const servedBy = props.movingTo ?? t.model;
      const endpoint =
        servedBy === 'silo'
          ? `https://${this.cell!.api.loadBalancer.loadBalancerDnsName}`
          : ssm.StringParameter.valueForStringParameter(this, ssmNames.apiEndpoint(servedBy));
      // The cell's load balancer, from its published https:// endpoint.
      new route53.CnameRecord(this, 'HostName', {
        zone,
        recordName: t.hostname,
        domainName: Fn.select(1, Fn.split('https://', endpoint)),
        ttl: Duration.minutes(5),
      });
    }
  }
}

/**
 * A silo tenant's own cell (VPC, KMS key, database, API service, provisioner, runner), from its silo settings. A
 * silo a move built (the tenant has a first model: another, or `silo` when it came back to one) names what it keeps
 * after its stack goes with its own key's id instead of the stack's: a move rolled back, or a purge, removes a silo
 * from a stack that lives on, and a later move into a silo must not meet the log groups and vault an earlier one
 * left under the stack's names.
 */
function siloCell(scope: Construct, t: Tenant, props: TenantProvisioningProps): Cell {
  if (!t.silo) throw new Error(`TenantProvisioning: silo tenant "${t.id}" has no silo settings`);
  const profile = siloProfile(t.silo.profile);
  const db = profile.database;
  const cell = new Cell(scope, 'Cell', {
    model: 'silo',
    siloTenantId: t.id,
    image: props.image ?? ApiImage.reference(),
    ...(t.silo.vpcCidr
      ? { cidr: t.silo.vpcCidr }
      : {
          ipamPoolId:
            props.ipamPoolId ?? ssm.StringParameter.valueForStringParameter(scope, ssmNames.siloIpamPoolId),
        }),
    description: `Silo tenant ${t.id}: all of this tenant's data`,
    ...(db.engine === 'rds'
      ? { instanceClass: t.silo.instanceClass, multiAz: t.silo.multiAz, storageGiB: db.storageGiB }
      : { serverless: { minAcu: db.minAcu, maxAcu: db.maxAcu, autoPauseMinutes: db.autoPauseMinutes } }),
    egress: profile.egress,
    tasks: profile.tasks,
    backupRetentionDays: t.silo.backupRetentionDays,
    disposable: t.deletionPolicy === 'destroy',
    phase: props.phase,
    snapshotIdentifier: t.silo.restoredFromSnapshot,
    incarnationFromKey: t.firstModel !== undefined,
  });
  cell.publishApi(scope, {
    endpoint: ssmNames.tenantApiEndpoint(t.id),
    service: ssmNames.tenantApiService(t.id),
  });
  return cell;
}

/** The custom resource that provisions `t` in its model's cell (its logical id: tenantResourceId). */
function tenantResource(
  scope: Construct,
  t: Tenant,
  serviceToken: string,
  options: { restore?: boolean; keptCopy?: boolean } = {},
): CustomResource {
  return new CustomResource(scope, tenantResourceId(t.model, t.firstModel), {
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
      // The tenant as the registry keeps it: the registry is the fleet's source of truth.
      Request: tenantRequestOf(t),
      ...(options.restore ? { Restore: 'true' } : {}),
      ...(options.keptCopy ? { KeptCopy: 'true' } : {}),
    },
  });
}
