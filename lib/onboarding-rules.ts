/**
 * The rules an onboarding or offboarding request must pass, shared by the pipeline's Lambda and the local
 * `npm run onboard` / `npm run offboard`, so both refuse the same requests with the same messages. Pure: it
 * imports neither aws-cdk-lib nor any AWS SDK (the Lambda bundle stays small).
 */
import { ARCHIVE_OBJECT_KEY, type RegistryItem } from '../contracts';
import { parseTenant, rangeProblems, Tenant } from './catalog';
import { siloProfile } from './silo-profiles';
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
  /**
   * Bring back an offboarded tenant whose data was kept. Without it, an offboarded id is never reused: a
   * retired id handed to a new customer would show them the old customer's data.
   */
  readonly restore?: unknown;
  /**
   * The tenant's first administrator: the platform creates the user, with the tenant claim set by the platform
   * (nothing the user can change), and sends an invitation. Required for a new tenant through the pipeline.
   */
  readonly adminEmail?: unknown;
  /**
   * Start the new tenant with the data of an archive (`tenants/<id>/<name>.tfa` in the archive bucket of the
   * cell of the requested model, as `npm run tenant -- export --aws` wrote it): pool or bridge only, for a new
   * id (or a retry of a failed onboarding), from an approver only. It may be another tenant's archive: that is
   * the point (a tenant re-created under a new id, a copy for a customer's second organisation), and why it
   * needs an approver.
   */
  readonly restoreFrom?: unknown;
  /**
   * The shared cell whose archive bucket holds `restoreFrom` (`pool` or `bridge`), when it is not the cell of the
   * requested model: a new bridge tenant started from a pool tenant's archive, or the other way round (the local
   * platform's `restore --model --as`). The workflow has that cell's runner vouch for the archive and hand it over.
   * @default the requested model's cell
   */
  readonly restoreFromModel?: unknown;
}

/** The catalog rules a request must stay within to be accepted from a requester; beyond them, an approver. */
export interface ApprovalRules {
  /** RDS instance classes (without `db.`) a silo may ask for without approval. */
  readonly instanceClasses: readonly string[];
}

export const DEFAULT_APPROVAL_RULES: ApprovalRules = {
  instanceClasses: ['t4g.small', 't4g.medium', 't4g.large', 'r6g.large', 'r7g.large'],
};

/**
 * Why a request needs an approver, if it does: settings outside the catalog rules that cost a lot or weaken
 * protection (a large instance class, a disposable tenant whose data goes with its stack, a single-AZ silo).
 */
export function approvalReasons(tenant: Tenant, rules: ApprovalRules = DEFAULT_APPROVAL_RULES): string[] {
  const reasons: string[] = [];
  if (tenant.deletionPolicy === 'destroy') {
    reasons.push('settings.deletionPolicy "destroy" (its data is deleted with its stack)');
  }
  const silo = tenant.silo;
  if (silo && siloProfile(silo.profile).database.engine === 'rds') {
    if (!silo.multiAz) reasons.push('settings.multiAz false (a single-AZ database)');
    if (!rules.instanceClasses.includes(silo.instanceClass)) {
      reasons.push(
        `settings.instanceClass "${silo.instanceClass}" (outside ${rules.instanceClasses.join(', ')})`,
      );
    }
  } else if (silo) {
    // Aurora Serverless v2 (idle-friendly) has no instance class to pick, but one writer and one task: like a
    // single-AZ database, it is not highly available.
    reasons.push(
      `settings.profile "${silo.profile}" (one database writer and one API task: not highly available)`,
    );
  }
  return reasons;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{2,63}$/;

/** The request's admin email, checked: a new tenant through the pipeline must name its first administrator. */
export function adminEmailOf(request: OnboardingRequest, required: boolean): string | undefined {
  if (request.adminEmail === undefined && !required) return undefined;
  if (typeof request.adminEmail !== 'string' || !EMAIL.test(request.adminEmail)) {
    throw new RequestRejected(
      `onboard request refused: "adminEmail" is ${JSON.stringify(request.adminEmail)}: give the email address of the tenant's first administrator (the platform invites them)`,
    );
  }
  return request.adminEmail.toLowerCase();
}

/** What the registry holds for a tenant, if anything. */
export type ExistingTenant = Pick<RegistryItem, 'status' | 'model'> &
  Partial<
    Pick<
      RegistryItem,
      'dataRetained' | 'lock' | 'failedDuring' | 'movingTo' | 'keptCopy' | 'deletionPolicy' | 'name'
    >
  >;

/** What an accepted onboarding request does. */
export interface OnboardingDecision {
  readonly tenant: Tenant;
  /** True when the request brings back an offboarded tenant and its kept data. */
  readonly restore: boolean;
  /** The archive the new tenant starts from (`restoreFrom`), checked. */
  readonly restoreArchive?: string;
  /** The shared cell whose bucket holds that archive, when it is not the tenant's own (`restoreFromModel`). */
  readonly restoreArchiveModel?: 'pool' | 'bridge';
}

/**
 * An onboarding request, validated with the catalog's rules and against what the registry holds:
 * - a new id is onboarded;
 * - a tenant whose onboarding failed may be onboarded again, in the same model (a retry); one whose offboarding
 *   failed may not (only offboarded again);
 * - an offboarded tenant comes back only when the request says `restore: true` and its data was kept;
 * - anything else (active, being onboarded or offboarded) is refused.
 */
export function onboardingDecision(
  request: OnboardingRequest,
  existing: ExistingTenant | undefined,
): OnboardingDecision {
  // Which snapshot a silo's database comes from is the platform's to say (on a restore, the tenant's own final
  // snapshot); a request naming one could bring up another tenant's data under a new id.
  if (
    (request.settings as { restoredFromSnapshot?: unknown } | undefined)?.restoredFromSnapshot !== undefined
  ) {
    throw new RequestRejected(
      `onboard request refused: settings.restoredFromSnapshot is set by the platform when it restores a tenant, never by a request: leave it out (send "restore": true, the --restore flag, to bring back an offboarded tenant's own data)`,
    );
  }
  const { tenant, problems } = parseTenant(
    {
      id: request.tenantId,
      // A tenant brought back keeps its display name unless the request gives another.
      name: request.name ?? (request.restore === true ? existing?.name : undefined) ?? request.tenantId,
      model: request.model,
      settings: request.settings,
    },
    'the request',
  );
  if (!tenant)
    throw new RequestRejected(`onboard request refused: ${problems.map((p) => p.message).join('; ')}`);
  if (request.restore !== undefined && typeof request.restore !== 'boolean') {
    throw new RequestRejected(`onboard request refused: "restore" must be true or false`);
  }
  const restore = request.restore === true;
  const id = tenant.id;
  const restoreArchive = restoreArchiveOf(request, tenant, restore);
  const fromModel = restoreArchiveModelOf(request, tenant, restoreArchive);
  const restoreArchiveModel = fromModel ? { restoreArchiveModel: fromModel } : {};
  if (!existing) {
    if (restore) {
      throw new RequestRejected(
        `onboard request: tenant "${id}" cannot be restored: the registry has never known it; leave "restore" out to onboard it as new`,
      );
    }
    return { tenant, restore: false, restoreArchive, ...restoreArchiveModel };
  }
  if (existing.lock) {
    throw new RequestRejected(
      `onboard request: tenant "${id}" is being changed by another request (${existing.lock}): nothing was changed; wait for it to finish`,
    );
  }
  if (existing.status !== 'failed' && existing.status !== 'offboarded') {
    throw new RequestRejected(
      `onboard request: tenant "${id}" already exists (model ${existing.model}, status ${existing.status}): choose another id, or offboard it first`,
    );
  }
  if (existing.model !== tenant.model) {
    throw new RequestRejected(
      `onboard request: tenant "${id}" was a ${existing.model} tenant; it cannot come back as ${tenant.model}: choose another id`,
    );
  }
  switch (existing.status) {
    case 'failed':
      if (existing.failedDuring === 'offboarding') {
        throw new RequestRejected(
          `onboard request: tenant "${id}" failed while it was being offboarded: its users are disabled and it is on its way out; send an offboard request to finish that, then restore it if it should come back`,
        );
      }
      return { tenant, restore: false, restoreArchive, ...restoreArchiveModel };
    case 'offboarded':
      if (!restore) {
        throw new RequestRejected(
          `onboard request: tenant id "${id}" belonged to a tenant that was offboarded, and ids are never reused for a new customer: choose another id, or send "restore": true (the --restore flag) to bring that tenant back with its kept data`,
        );
      }
      if (existing.dataRetained === false) {
        throw new RequestRejected(
          `onboard request: tenant "${id}" cannot be restored: it was disposable and its data was deleted when it was offboarded`,
        );
      }
      return { tenant, restore: true };
  }
}

/** The request's `restoreFrom`, checked: an archive key (of the requested model's cell, or `restoreFromModel`'s), for a new tenant. */
function restoreArchiveOf(request: OnboardingRequest, tenant: Tenant, restore: boolean): string | undefined {
  const from = request.restoreFrom;
  if (from === undefined) return undefined;
  const refused = (why: string) =>
    new RequestRejected(`onboard request refused: "restoreFrom" is ${JSON.stringify(from)}: ${why}`);
  if (typeof from !== 'string' || !ARCHIVE_OBJECT_KEY.test(from)) {
    throw refused(
      'give the key of an archive in the cell\'s archive bucket, as npm run tenant -- export --aws printed it: "tenants/<tenant id>/<name>.tfa"',
    );
  }
  if (restore) {
    throw refused(
      '"restore": true brings back the tenant\'s own kept data, "restoreFrom" starts a new tenant from an archive: send one or the other',
    );
  }
  if (tenant.model === 'silo' && request.restoreFromModel === undefined) {
    throw refused(
      'a new silo\'s archive bucket is its own, and holds no archive yet: name the shared cell whose archive it starts from with "restoreFromModel" ("pool" or "bridge")',
    );
  }
  return from;
}

/**
 * The request's `restoreFromModel`, checked: the other shared cell (its archive is vouched for and handed over),
 * or undefined for the tenant's own cell.
 */
function restoreArchiveModelOf(
  request: OnboardingRequest,
  tenant: Tenant,
  restoreArchive: string | undefined,
): 'pool' | 'bridge' | undefined {
  const from = request.restoreFromModel;
  if (from === undefined) return undefined;
  const refused = (why: string) =>
    new RequestRejected(`onboard request refused: "restoreFromModel" is ${JSON.stringify(from)}: ${why}`);
  if (restoreArchive === undefined) {
    throw refused(
      'it names the cell of "restoreFrom"\'s archive: send it with "restoreFrom", or leave it out',
    );
  }
  if (from !== 'pool' && from !== 'bridge') {
    throw refused(
      'name the shared cell whose archive bucket holds the archive, "pool" or "bridge" (a silo\'s archives stay in the silo)',
    );
  }
  return from === tenant.model ? undefined : from;
}

/**
 * A silo tenant's catalog VPC range against the ranges of silos onboarded earlier by a pipeline (whose requests
 * the registry keeps), the shared VPCs and the platform's address pool: the same rule `cdk synth` applies to a
 * catalog file. Throws when they overlap.
 */
export function checkSiloRanges(
  tenant: Tenant,
  earlier: readonly { readonly tenantId: string; readonly vpcCidr?: string }[],
): void {
  if (!tenant.silo?.vpcCidr) return;
  const taken = earlier
    .filter((e) => e.tenantId !== tenant.id && e.vpcCidr)
    .map((e) => ({ owner: `tenant "${e.tenantId}"`, cidr: e.vpcCidr! }));
  const [clash] = rangeProblems(
    [{ id: tenant.id, vpcCidr: tenant.silo.vpcCidr, where: 'the request' }],
    taken,
  );
  if (clash) throw new RequestRejected(`onboard request refused: ${clash.message}`);
}

/** The catalog VPC range a kept request asked for, if any. */
export function requestedVpcCidr(request: string | undefined): string | undefined {
  if (!request) return undefined;
  type Settings = { settings?: { vpcCidr?: unknown } };
  const parsed = JSON.parse(request) as Settings & { keptSilo?: Settings };
  // A tenant that moved out of its silo keeps it, range and all, until a purge.
  const cidr = parsed.settings?.vpcCidr ?? parsed.keptSilo?.settings?.vpcCidr;
  return typeof cidr === 'string' ? cidr : undefined;
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
  if (existing.lock) {
    throw new RequestRejected(
      `offboard request: tenant "${tenantId}" is being changed by another request (${existing.lock}): nothing was changed; wait for it to finish`,
    );
  }
  if (existing.status === 'offboarded') {
    throw new RequestRejected(
      `offboard request: tenant "${tenantId}" is already offboarded: nothing was changed`,
    );
  }
  // The silo a move out of it kept is in the tenant's stack, protected: the stack cannot go while it is there.
  if (existing.keptCopy === 'silo') {
    throw new RequestRejected(
      `offboard request: tenant "${tenantId}" still keeps the silo it moved out of, in its stack with its deletion protection on: nothing was changed; purge that silo first (npm run request -- purge --tenant ${tenantId})`,
    );
  }
  // Its data destroyed means every copy: the one a move kept in the other cell goes first.
  if (existing.keptCopy && existing.deletionPolicy === 'destroy') {
    throw new RequestRejected(
      `offboard request: tenant "${tenantId}" is offboarded with its data destroyed, but the ${existing.keptCopy} copy its move kept would outlive it: nothing was changed; purge that copy first (npm run request -- purge --tenant ${tenantId})`,
    );
  }
  if (existing.status === 'moving') {
    throw new RequestRejected(
      existing.movingTo === existing.model
        ? `offboard request: tenant "${tenantId}" was left frozen by a restore: nothing was changed; abandon the restore first (npm run request -- restore --tenant ${tenantId} --abandon)`
        : `offboard request: tenant "${tenantId}" is being moved to another model: nothing was changed; wait for the move to finish`,
    );
  }
}
