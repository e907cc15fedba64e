/**
 * Beginning a request: the onboarding entry (lambda/onboarding-entry) validates it with the catalog's rules and
 * against the registry, then takes the tenant's lock for the workflow execution it is about to start, with a
 * conditional write. Whoever else holds the tenant, or got there first, makes the write fail: the request is
 * refused and nothing changes. The workflow's first step (accept) admits only an execution that holds its lock.
 */
import { RegistryItem, tenantStackName } from '../../contracts';
import {
  adminEmailOf,
  approvalReasons,
  ApprovalRules,
  checkOffboarding,
  checkSiloRanges,
  offboardingTenantId,
  OnboardingRequest,
  onboardingDecision,
  RequestRejected,
} from '../../lib/onboarding-rules';
import { checkRestoreOver, RestoreRequest } from '../../lib/restore-rules';
import { checkMove, checkPurge, MoveRequest } from '../../lib/move-rules';
import { tenantIdProblem } from '../../db/naming';
import { parseTenant, Tenant } from '../../lib/catalog';
import { siloProfile } from '../../lib/silo-profiles';
import { readItem, siloRanges, write } from './registry';

/** A request outside the catalog rules from a principal who is not an approver. */
export class ApprovalRequired extends RequestRejected {
  constructor(message: string) {
    super(message);
    this.name = 'ApprovalRequired';
  }
}

export interface Requester {
  /** The execution the request will run as: the lock it takes. */
  readonly execution: string;
  /** Who asked (an IAM principal ARN), recorded in the registry. */
  readonly requestedBy: string;
  /** Whether that principal is a named approver (may ask for settings outside the catalog rules). */
  readonly approver: boolean;
  readonly rules?: ApprovalRules;
}

/** What the workflow needs of an accepted request (its input's `tenant`). */
export type AcceptedTenant = Record<string, unknown> & { tenantId: string; model: string };

export async function beginOnboarding(request: OnboardingRequest, who: Requester): Promise<AcceptedTenant> {
  // The id is checked before it is used as a registry key.
  const existing = tenantIdProblem(request.tenantId) ? undefined : await readItem(request.tenantId as string);
  const { tenant, restore, restoreArchive, restoreArchiveModel } = onboardingDecision(request, existing);
  const adminEmail = adminEmailOf(request, !restore && !existing?.adminEmail);
  // A retried onboarding keeps the administrator its first request named: a retry cannot hand the tenant to
  // someone else.
  if (existing?.adminEmail && adminEmail && adminEmail !== existing.adminEmail) {
    throw new RequestRejected(
      `onboard request: tenant "${request.tenantId as string}" was requested with administrator ${existing.adminEmail}; a retry or restore cannot name another (${adminEmail}): leave "adminEmail" out`,
    );
  }
  const needs = [
    ...approvalReasons(tenant, who.rules),
    // Whose data the archive holds is not known here (the entry cannot read the cells' buckets): it may be another
    // customer's, so only an approver starts a tenant from one.
    ...(restoreArchive
      ? [
          `"restoreFrom" ${restoreArchive}${restoreArchiveModel ? ` of the ${restoreArchiveModel} cell` : ''} (the tenant starts with that archive's data)`,
        ]
      : []),
  ];
  if (needs.length > 0 && !who.approver) {
    throw new ApprovalRequired(
      `onboard request: tenant "${tenant.id}" asks for ${needs.join('; ')}: outside the catalog rules, so only an approver may request it; nothing was changed`,
    );
  }
  if (tenant.model === 'silo') checkSiloRanges(tenant, await siloRanges());
  // A restored silo's database comes back from its final snapshot, and keeps naming it for its whole life.
  const restoredFromSnapshot =
    restore && tenant.model === 'silo' && existing?.finalSnapshotId ? existing.finalSnapshotId : undefined;
  if (restoredFromSnapshot) refuseOtherEngine(tenant, existing?.request, restoredFromSnapshot);
  const kept = JSON.stringify({
    id: tenant.id,
    name: tenant.name,
    model: tenant.model,
    settings: {
      ...((request.settings as object | undefined) ?? {}),
      ...(restoredFromSnapshot ? { restoredFromSnapshot } : {}),
    },
  });
  const taken = await write(
    tenant.id,
    {
      status: 'provisioning',
      model: tenant.model,
      name: tenant.name,
      deletionPolicy: tenant.deletionPolicy,
      request: kept,
      requestedBy: who.approver && needs.length > 0 ? `${who.requestedBy} (approver)` : who.requestedBy,
      lock: who.execution,
      ...(adminEmail && !existing?.adminEmail ? { adminEmail } : {}),
      ...(restore ? { restoring: true } : {}),
      ...(restoreArchive ? { restoreArchive } : {}),
      ...(restoreArchiveModel ? { restoreArchiveModel } : {}),
    },
    [
      'failureReason',
      'failedDuring',
      ...(restore ? [] : (['restoring'] as const)),
      ...(restoreArchive ? [] : (['restoreArchive'] as const)),
      ...(restoreArchiveModel ? [] : (['restoreArchiveModel'] as const)),
    ],
    restore
      ? { unlocked: true, statusIn: ['offboarded'] }
      : existing
        ? { unlocked: true, statusIn: ['failed'] }
        : { absent: true },
  );
  if (!taken) {
    throw new RequestRejected(
      `onboard request: tenant "${tenant.id}" changed while the request was checked (another request holds it or got there first): nothing was changed`,
    );
  }
  return {
    tenantId: tenant.id,
    model: tenant.model,
    name: tenant.name,
    hostname: tenant.hostname,
    stackName: tenantStackName(tenant.id),
    // What the deploy job passes to the CDK app as -c tenantRequest=... (a restore says so).
    tenantRequest: JSON.stringify({ ...JSON.parse(kept), ...(restore ? { restore: true } : {}) }),
    restore,
    ...(restoreArchive ? { restoreArchive } : {}),
    ...(restoreArchiveModel ? { restoreArchiveModel } : {}),
    ...(adminEmail || existing?.adminEmail ? { adminEmail: existing?.adminEmail ?? adminEmail } : {}),
  };
}

export async function beginOffboarding(request: OnboardingRequest, who: Requester): Promise<AcceptedTenant> {
  const tenantId = offboardingTenantId(request.tenantId);
  const entry = await readItem(tenantId);
  checkOffboarding(tenantId, entry);
  const taken = await write(
    tenantId,
    { status: 'offboarding', requestedBy: who.requestedBy, lock: who.execution },
    ['failedDuring', 'restoring'],
    { unlocked: true, statusIn: ['active', 'failed'] },
  );
  if (!taken) {
    throw new RequestRejected(
      `offboard request: tenant "${tenantId}" changed while the request was checked (another request holds it): nothing was changed`,
    );
  }
  const item = entry as RegistryItem;
  const deletionPolicy = item.deletionPolicy ?? 'retain';
  return {
    tenantId,
    model: item.model,
    stackName: tenantStackName(tenantId),
    // A tenant onboarded by this pipeline is not in the catalog file: destroy needs its original request.
    tenantRequest: item.request ?? '',
    deletionPolicy,
    dataRetained: deletionPolicy === 'retain',
  };
}

/**
 * A restore of one of the tenant's own archives over its data (approvers only: it replaces what the tenant's users
 * see). The tenant goes `moving` within its own model, so the API answers it 503 while its cell's mobility runner
 * freezes it, exports what it holds, and replaces it; the archive is recorded with the lock, for the runner to
 * check.
 */
export async function beginRestore(request: RestoreRequest, who: Requester): Promise<AcceptedTenant> {
  const id = tenantIdProblem(request.tenantId) ? undefined : (request.tenantId as string);
  const existing = id ? await readItem(id) : undefined;
  const { tenantId, archive } = checkRestoreOver(request, existing);
  if (!who.approver) {
    throw new ApprovalRequired(
      archive
        ? `restore request: restoring ${archive} over tenant "${tenantId}"'s data replaces what its users see, so only an approver may request it; nothing was changed`
        : `restore request: abandoning tenant "${tenantId}"'s restore is an approver's; nothing was changed`,
    );
  }
  const item = existing as RegistryItem;
  const taken = await write(
    tenantId,
    {
      status: 'moving',
      movingTo: item.model,
      requestedBy: `${who.requestedBy} (approver)`,
      lock: who.execution,
      ...(archive ? { restoreArchive: archive } : {}),
    },
    // An abandon request keeps the reason of the failure it ends until its own outcome replaces it.
    [
      'failedDuring',
      'restoreArchiveModel',
      ...(archive ? (['failureReason'] as const) : (['restoreArchive'] as const)),
    ],
    { unlocked: true, statusIn: item.status === 'moving' ? ['moving'] : ['active'] },
  );
  if (!taken) {
    throw new RequestRejected(
      `restore request: tenant "${tenantId}" changed while the request was checked (another request holds it or got there first): nothing was changed`,
    );
  }
  return {
    tenantId,
    model: item.model,
    stackName: tenantStackName(tenantId),
    ...(archive ? { restoreArchive: archive } : { abandon: true }),
    // An earlier restore that failed left it frozen (`moving`): this one finishes it.
    wasFrozen: item.status === 'moving',
  };
}

/**
 * A move of a tenant between the pool and bridge cells (approvers only: its users get 503 while it moves). The tenant
 * goes `moving` to the other cell, so the API answers it 503; the workflow then freezes and exports it where it is,
 * builds its place in the other cell, restores it there and switches the registry (lib/constructs/onboarding/
 * move.ts).
 */
export async function beginMove(request: MoveRequest, who: Requester): Promise<AcceptedTenant> {
  const id = tenantIdProblem(request.tenantId) ? undefined : (request.tenantId as string);
  const existing = id ? await readItem(id) : undefined;
  const { tenantId, from, to, profile, stuck } = checkMove(request, existing);
  if (!who.approver) {
    throw new ApprovalRequired(
      `move request: moving tenant "${tenantId}" to ${to} stops its service while its data is copied, so only an approver may request it; nothing was changed`,
    );
  }
  const taken = await write(
    tenantId,
    {
      status: 'moving',
      movingTo: to,
      ...(profile !== undefined ? { moveProfile: profile } : {}),
      requestedBy: `${who.requestedBy} (approver)`,
      lock: who.execution,
    },
    // A move that finishes one whose rollback failed keeps that reason until its own outcome replaces it.
    [
      'failedDuring',
      'restoreArchive',
      'restoreArchiveModel',
      'moveAborted',
      ...(profile === undefined ? (['moveProfile'] as const) : []),
      // A move stuck after a failed rollback keeps what its silo's stage was: the silo may still be there.
      ...(stuck ? [] : (['failureReason', 'moveSilo'] as const)),
    ],
    { unlocked: true, statusIn: [stuck ? 'moving' : 'active'] },
  );
  if (!taken) {
    throw new RequestRejected(
      `move request: tenant "${tenantId}" changed while the request was checked (another request holds it or got there first): nothing was changed`,
    );
  }
  return { tenantId, model: from, movingTo: to, stackName: tenantStackName(tenantId), wasMoving: stuck };
}

/**
 * A purge of the copy a move kept in the cell the tenant left (approvers only: it destroys data). The tenant keeps
 * serving from its cell; the lock and `purgeCopy` say which copy this execution removes.
 */
export async function beginPurge(request: { tenantId?: unknown }, who: Requester): Promise<AcceptedTenant> {
  const id = tenantIdProblem(request.tenantId) ? undefined : (request.tenantId as string);
  const existing = id ? await readItem(id) : undefined;
  const { tenantId, copy } = checkPurge(request, existing);
  if (!who.approver) {
    throw new ApprovalRequired(
      `purge request: removing tenant "${tenantId}"'s ${copy} copy destroys data, so only an approver may request it; nothing was changed`,
    );
  }
  const taken = await write(
    tenantId,
    { purgeCopy: copy, lock: who.execution, requestedBy: `${who.requestedBy} (approver)` },
    [],
    { unlocked: true, statusIn: ['active', 'offboarded'] },
  );
  if (!taken) {
    throw new RequestRejected(
      `purge request: tenant "${tenantId}" changed while the request was checked (another request holds it or got there first): nothing was changed`,
    );
  }
  return {
    tenantId,
    model: (existing as RegistryItem).model,
    purgeCopy: copy,
    stackName: tenantStackName(tenantId),
  };
}

/**
 * A final snapshot comes back only into the engine it was taken of: an Aurora cluster snapshot (the idle-friendly
 * profile) cannot become an RDS instance, nor the other way round. Refused before anything is written, naming the
 * profile to ask for.
 */
function refuseOtherEngine(tenant: Tenant, keptRequest: string | undefined, snapshot: string): void {
  if (!tenant.silo || !keptRequest) return;
  let kept: Tenant | undefined;
  try {
    kept = parseTenant(JSON.parse(keptRequest), 'the kept request').tenant;
  } catch {
    return;
  }
  if (!kept?.silo) return;
  const engine = (t: Tenant) => siloProfile(t.silo!.profile).database.engine;
  if (engine(kept) !== engine(tenant)) {
    throw new RequestRejected(
      `onboard request: tenant "${tenant.id}" is restored from ${snapshot}, a snapshot of its ${engine(kept) === 'rds' ? 'RDS instance' : 'Aurora cluster'} (profile "${kept.silo.profile}"), which the requested profile "${tenant.silo.profile}" cannot restore: ask for "settings": { "profile": "${kept.silo.profile}" }; nothing was changed`,
    );
  }
}
