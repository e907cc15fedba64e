import { App, Aspects, CfnResource, DefaultStackSynthesizer, Stack, Tags, TagManager } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Catalog, SHARED_VPC_CIDRS } from './catalog';
import { applyCompliance } from './compliance';
import { PlatformStack } from './stacks/platform-stack';
import { BridgeStack, PoolStack, SharedCellStackProps } from './stacks/shared-cell-stack';
import { cellSizeFor, DEFAULT_SHARED_CELL_PROFILE, SharedModel } from './cell-size';
import { TenantStack } from './stacks/tenant-stack';
import { OnboardingStack } from './stacks/onboarding-stack';
import * as iam from 'aws-cdk-lib/aws-iam';
import {
  BOOTSTRAP_QUALIFIERS,
  DeployScopeName,
  IsolationModel,
  SiloProfileName,
  permissionsBoundaryName,
  LIFECYCLE_METADATA_KEY,
  STACK_NAMES,
  StackLifecycle,
  TenantPhase,
  tenantStackName,
} from '../contracts';
import { ApiArchitecture } from './constructs/api-image';
import { TenantDomain } from './constructs/tenant-provisioning';
import { principalArnProblem } from './constructs/onboarding/onboarding-entry';

/** A fleet that cannot be built as asked (a bad `-c` option): the message names the option and the fix. */
export class FleetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetError';
  }
}

export interface FleetOptions {
  /** Build only this tenant's stack (plus the shared stacks), e.g. from `-c tenant=<id>`. */
  readonly onlyTenant?: string;
  /** @default - the stacks are environment-agnostic except for the region */
  readonly env?: { account?: string; region?: string };
  /**
   * The lifecycle phase of the tenant stacks built (the onboarding workflow deploys one tenant in `create`,
   * then `steady`; offboarding deploys it in `retire` before destroying it).
   * @default 'steady'
   */
  readonly tenantPhase?: TenantPhase;
  /**
   * Tenants whose stacks bring back an offboarded tenant's kept data (an explicit restore request).
   * @default - none
   */
  readonly restoreTenants?: readonly string[];
  /**
   * Tenants being moved, and the model each moves to (the onboarding workflow's move deploy): each one's stack adds
   * its place in that cell beside the one it has.
   * @default - none
   */
  readonly movingTenants?: Readonly<Record<string, IsolationModel>>;
  /**
   * Tenants moving into a silo with a cost profile other than the default (the move request's `profile`).
   * @default - none
   */
  readonly movingProfiles?: Readonly<Record<string, SiloProfileName>>;
  /** @default 'arm64' */
  readonly apiArchitecture?: ApiArchitecture;
  /** @default - the Platform stack creates an IPAM and a pool */
  readonly siloIpamPoolId?: string;
  /** @default - tenants get no DNS names */
  readonly domain?: TenantDomain;
  /**
   * Who may ask the onboarding entry for what (IAM role or user ARNs): requesters within the catalog rules,
   * approvers also beyond them.
   * @default - nobody: every request is refused until principals are named
   */
  readonly onboarding?: { readonly requesters?: readonly string[]; readonly approvers?: readonly string[] };
  /**
   * Build without the compliance packs and lifecycle checks (tools that only count resources, e.g. preflight).
   * @default false - every stack is checked, and synth fails on any finding
   */
  readonly skipChecks?: boolean;
}

export interface Fleet {
  readonly platform: PlatformStack;
  /** Absent when no catalog tenant is pool and the catalog's `sharedCells` does not name it. */
  readonly pool?: PoolStack;
  /** Absent when no catalog tenant is bridge and the catalog's `sharedCells` does not name it. */
  readonly bridge?: BridgeStack;
  readonly onboarding: OnboardingStack;
  readonly tenants: TenantStack[];
}

/**
 * Builds the whole fleet into `app`: the shared stacks and one stack per tenant (or only the one named).
 * Compliance packs and acknowledgements are applied here, so no stack can be built without them.
 */
export function buildFleet(app: App, catalog: Catalog, options: FleetOptions = {}): Fleet {
  const env = options.env;
  let tenants = catalog.tenants;
  if (options.onlyTenant !== undefined) {
    tenants = tenants.filter((t) => t.id === options.onlyTenant);
    if (tenants.length === 0) {
      const ids = catalog.tenants.map((t) => t.id);
      const shown =
        ids.length > 20 ? `${ids.slice(0, 20).join(', ')} and ${ids.length - 20} more` : ids.join(', ');
      throw new FleetError(
        `-c tenant=${options.onlyTenant}: no tenant with that id in ${catalog.source}: add it to the catalog or pass one of its ids (${shown || 'it has none'})`,
      );
    }
  }
  const platform = new PlatformStack(app, STACK_NAMES.platform, {
    env,
    description: 'Sign-in, the tenant registry, the API image and the silo address pool',
    apiArchitecture: options.apiArchitecture,
    siloIpamPoolId: options.siloIpamPoolId,
  });
  const image = platform.apiImage.ref;
  // A shared cell exists only when a catalog tenant uses it or the catalog plans it. Its size comes from the plan
  // alone (`sharedCells.<model>.plannedTenants`, carried by `npm run fleet -- pull`), never from how many tenants
  // this catalog happens to list: two catalogs of one fleet (tenants.json, a pulled fleet.json) build the same
  // cell, and a deploy never lowers a database class nobody asked to lower.
  const cellFor = (model: SharedModel): SharedCellStackProps | undefined => {
    const listed = catalog.tenants.filter((t) => t.model === model).length;
    const planned = catalog.sharedCells?.[model]?.plannedTenants;
    const profile = catalog.sharedCells?.[model]?.profile;
    if (listed === 0 && planned === undefined) return undefined;
    return {
      env,
      cidr: SHARED_VPC_CIDRS[model],
      image,
      size: cellSizeFor(model, planned ?? 0, profile),
      description: `${STACK_NAMES[model]} cell`,
      ...(listed > (planned ?? 100)
        ? {
            sizeWarning: `${catalog.source} lists ${listed} ${model} tenants but plans the ${STACK_NAMES[model]} cell for ${planned ?? 'the default size (up to 100)'}: set "sharedCells": { "${model}": { "plannedTenants": ${listed} } } to size it for them (lib/cell-size.ts)`,
          }
        : {}),
    };
  };
  const poolProps = cellFor('pool');
  const bridgeProps = cellFor('bridge');
  const pool = poolProps ? new PoolStack(app, STACK_NAMES.pool, poolProps) : undefined;
  const bridge = bridgeProps ? new BridgeStack(app, STACK_NAMES.bridge, bridgeProps) : undefined;
  for (const [option, arns] of [
    ['onboardingRequesters', options.onboarding?.requesters],
    ['onboardingApprovers', options.onboarding?.approvers],
  ] as const) {
    for (const arn of arns ?? []) {
      const problem = principalArnProblem(arn);
      if (problem) throw new FleetError(`-c ${option}: ${problem}: name each principal by its full ARN`);
    }
  }
  const onboarding = new OnboardingStack(app, STACK_NAMES.onboarding, {
    env,
    domainName: options.domain?.zoneName,
    requesters: options.onboarding?.requesters,
    approvers: options.onboarding?.approvers,
    description: 'Onboarding and offboarding pipeline: one tenant stack at a time',
  });
  onboarding.addStackDependency(platform, 'reads the registry from SSM');
  tag(onboarding, 'shared', 'shared', 'platform');
  tag(platform, 'shared', 'shared', 'platform');
  for (const cell of [pool, bridge]) {
    if (!cell) continue;
    cell.addStackDependency(platform, 'reads the registry and user pool from SSM');
    // A standard cell keeps the tag it always had; another profile's cell says which it is.
    const profile = catalog.sharedCells?.[cell.model]?.profile ?? DEFAULT_SHARED_CELL_PROFILE;
    tag(
      cell,
      'shared',
      cell.model,
      profile === DEFAULT_SHARED_CELL_PROFILE ? 'shared-cell' : `shared-cell-${profile}`,
    );
  }
  const sharedStacks: Stack[] = [platform, onboarding, ...(pool ? [pool] : []), ...(bridge ? [bridge] : [])];
  for (const shared of sharedStacks) {
    const lifecycle: StackLifecycle = { deletionPolicy: 'retain', phase: 'steady' };
    shared.templateOptions.metadata = {
      ...shared.templateOptions.metadata,
      [LIFECYCLE_METADATA_KEY]: lifecycle,
    };
  }

  /** The shared cell each model's tenants live in (silo tenants have their own, inside their stack). */
  const sharedCells: Partial<Record<IsolationModel, Stack>> = { pool, bridge };
  const stacks = tenants.map((t) => {
    const stack = new TenantStack(app, tenantStackName(t.id), {
      env,
      // Through the tenants' own bootstrap: its execution role can create only what tenant stacks hold.
      synthesizer: new DefaultStackSynthesizer({ qualifier: BOOTSTRAP_QUALIFIERS.tenants }),
      tenant: t,
      image,
      phase: options.tenantPhase,
      domain: options.domain,
      restore: options.restoreTenants?.includes(t.id),
      movingTo: options.movingTenants?.[t.id],
      movingProfile: options.movingProfiles?.[t.id],
      description: `Tenant ${t.id} (${t.model})`,
    });
    stack.addStackDependency(platform, 'reads the registry, the image and the address pool from SSM');
    for (const model of [t.model, options.movingTenants?.[t.id]]) {
      const sharedCell = model && sharedCells[model];
      if (sharedCell) stack.addStackDependency(sharedCell, `calls the ${model} provisioner`);
    }
    tag(stack, t.id, t.model, t.silo?.profile ?? 'shared-cell');
    // A silo a move out of it kept keeps its own tags (and so its template): its cost is still the silo's.
    const kept = stack.provisioning.keptCell;
    if (kept && t.keptSilo) {
      // Its cell, and the parameters that publish its service (beside the cell, as for any silo).
      const published = ['ApiEndpoint', 'ApiService'].map((id) => stack.provisioning.node.tryFindChild(id));
      for (const scope of [kept, ...published]) {
        if (scope) tag(scope, t.id, 'silo', t.keptSilo.silo!.profile);
      }
    }
    return stack;
  });
  // Every role a stack creates carries its scope's permissions boundary (deploy/<scope>-permissions-boundary.json):
  // the execution policies create roles only with it, and it admits nothing in IAM.
  for (const stack of sharedStacks) applyBoundary(stack, 'platform');
  for (const stack of stacks) applyBoundary(stack, 'tenants');
  if (!options.skipChecks) applyCompliance(app);
  return { platform, pool, bridge, onboarding, tenants: stacks };
}

function applyBoundary(stack: Stack, scope: DeployScopeName): void {
  iam.PermissionsBoundary.of(stack).apply(
    iam.ManagedPolicy.fromManagedPolicyName(stack, 'PermissionsBoundary', permissionsBoundaryName(scope)),
  );
}

/**
 * Cost-allocation tags on every taggable resource: the tenant (`shared` for shared stacks), the model, and the
 * cost profile (a silo's profile; `shared-cell` for a standard shared cell and every shared-cell tenant's stack,
 * `shared-cell-production` for a production one; `platform`).
 */
function tag(scope: Construct, tenantId: string, model: string, profile: string): void {
  const tags = { 'tenant-id': tenantId, 'isolation-model': model, 'cost-profile': profile };
  for (const [key, value] of Object.entries(tags)) Tags.of(scope).add(key, value);
  // CDK's own custom-resource providers (the one that locks down a VPC's default security group, the one that
  // empties a disposable bucket) are raw CloudFormation resources that tag aspects do not reach: tag them too, so
  // their cost lands on the tenant as well.
  Aspects.of(scope).add({
    visit(node) {
      if (
        node instanceof CfnResource &&
        RAW_TAGGED_TYPES.has(node.cfnResourceType) &&
        !TagManager.isTaggable(node)
      ) {
        node.addPropertyOverride(
          'Tags',
          Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        );
      }
    },
  });
}

/** Types of CDK's raw provider resources that accept tags. */
const RAW_TAGGED_TYPES = new Set(['AWS::IAM::Role', 'AWS::Lambda::Function']);
