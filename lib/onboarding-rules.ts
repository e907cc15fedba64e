/**
 * The rules an onboarding or offboarding request must pass, shared by the pipeline's Lambda and the local
 * `npm run onboard` / `npm run offboard`, so both refuse the same requests with the same messages. Pure: it
 * imports neither aws-cdk-lib nor any AWS SDK (the Lambda bundle stays small).
 */
import { parseCatalog, CatalogError, parseTenant, Tenant } from './catalog';
import { tenantIdProblem } from '../db/naming';

/** A request refused before anything changed. */
export class RequestRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestRejected';
  }
}

export interface OnboardingRequest {
  readonly tenantId?: unknown;
  readonly name?: unknown;
  readonly model?: unknown;
  readonly settings?: unknown;
}

/** What the registry holds for a tenant, if anything. */
export interface ExistingTenant {
  readonly status?: string;
  readonly model?: string;
}

/**
 * An onboarding request, validated with the catalog's rules. A tenant may be onboarded when it is new, or when
 * it was offboarded or failed before, in the same model.
 */
export function onboardingTenant(request: OnboardingRequest, existing: ExistingTenant | undefined): Tenant {
  const { tenant, problems } = parseTenant(
    {
      id: request.tenantId,
      name: request.name ?? request.tenantId,
      model: request.model,
      settings: request.settings,
    },
    'the request',
  );
  if (!tenant)
    throw new RequestRejected(`onboard request refused: ${problems.map((p) => p.message).join('; ')}`);
  if (existing && existing.status !== 'offboarded' && existing.status !== 'failed') {
    throw new RequestRejected(
      `onboard request: tenant "${tenant.id}" already exists (model ${existing.model}, status ${existing.status}): choose another id, or offboard it first`,
    );
  }
  if (existing?.model && existing.model !== tenant.model) {
    throw new RequestRejected(
      `onboard request: tenant "${tenant.id}" was a ${existing.model} tenant; it cannot come back as ${tenant.model}: choose another id`,
    );
  }
  return tenant;
}

/**
 * A silo tenant's VPC range against the silo tenants onboarded earlier by the pipeline (whose requests the
 * registry keeps; tenants in the catalog file are checked by the CDK app itself). Throws when they overlap.
 */
export function checkSiloRanges(tenant: Tenant, earlierRequests: readonly unknown[]): void {
  if (tenant.model !== 'silo' || earlierRequests.length === 0) return;
  const mine = {
    id: tenant.id,
    name: tenant.name,
    model: tenant.model,
    settings: { vpcCidr: tenant.silo!.vpcCidr },
  };
  try {
    parseCatalog({ tenants: [...earlierRequests, mine] }, 'the registry');
  } catch (e) {
    if (!(e instanceof CatalogError)) throw e;
    const clash = e.problems.find((p) => p.code === 'cidr-overlap' && p.tenantId === tenant.id);
    if (clash) throw new RequestRejected(`onboard request refused: ${clash.message}`);
  }
}

/** Checks an offboarding request's tenant id before any lookup. */
export function offboardingTenantId(tenantId: unknown): string {
  const problem = tenantIdProblem(tenantId);
  if (problem) throw new RequestRejected(`offboard request: tenant id ${problem}`);
  return tenantId as string;
}

/** An offboarding request against what the registry holds. */
export function checkOffboarding(tenantId: string, existing: ExistingTenant | undefined): void {
  if (!existing)
    throw new RequestRejected(`offboard request: tenant "${tenantId}" is unknown: nothing was changed`);
  if (existing.status === 'offboarded') {
    throw new RequestRejected(
      `offboard request: tenant "${tenantId}" is already offboarded: nothing was changed`,
    );
  }
}
