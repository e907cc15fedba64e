/**
 * The rules a move request must pass (the onboarding entry's `move` action: an approver's move of a tenant between
 * the pool and bridge cells). Pure, as onboarding-rules.ts.
 */
import { tenantIdProblem } from '../db/naming';
import { SILO_PROFILES, type IsolationModel, type SiloProfileName } from '../contracts';
import { CatalogError, parseTenant, Tenant, tenantRequestOf } from './catalog';
import { DEFAULT_SILO_PROFILE } from './silo-profiles';
import { ExistingTenant, RequestRejected } from './onboarding-rules';

/** `{ tenantId, to, profile }`: move the tenant, with its data, to the `to` cell (into a silo: of `profile`). */
export interface MoveRequest {
  readonly tenantId?: unknown;
  readonly to?: unknown;
  /** Into a silo only: its cost profile (default `standard`). */
  readonly profile?: unknown;
}

/** Where a move may leave a copy: the cell it left, or the silo it moved out of (kept in the tenant's stack). */
const KEPT_COPIES = ['pool', 'bridge', 'silo'];
/** Where a move may go: the other shared cell, or a silo of the tenant's own. */
const MOVE_DESTINATIONS = ['pool', 'bridge', 'silo'];

/**
 * A move request against what the registry holds: an active tenant that nobody holds, with no copy kept from an
 * earlier move, to another model: the other shared cell, a silo of its own (of `profile`, by default `standard`), or
 * out of its silo into a shared cell; or one an earlier move of it to the same place (and profile) left `moving`
 * (its rollback failed), which a new request finishes.
 */
export function checkMove(
  request: MoveRequest,
  existing: (ExistingTenant & { keptCopy?: string; request?: string; moveProfile?: string }) | undefined,
): {
  tenantId: string;
  from: IsolationModel;
  to: IsolationModel;
  profile?: SiloProfileName;
  stuck: boolean;
} {
  const problem = tenantIdProblem(request.tenantId);
  if (problem) throw new RequestRejected(`move request: tenant id ${problem}`);
  const tenantId = request.tenantId as string;
  const refuse = (why: string) =>
    new RequestRejected(`move request: tenant "${tenantId}" ${why}; nothing was changed`);
  const to = request.to;
  if (typeof to !== 'string' || !MOVE_DESTINATIONS.includes(to)) {
    throw new RequestRejected(`move request: "to" is ${JSON.stringify(to)}: use "pool", "bridge" or "silo"`);
  }
  const profile = request.profile;
  if (profile !== undefined && to !== 'silo') {
    throw new RequestRejected(
      `move request: "profile" is ${JSON.stringify(profile)}, but a profile is a silo's: give it with "to": "silo" only`,
    );
  }
  if (profile !== undefined && !SILO_PROFILES.includes(profile as SiloProfileName)) {
    throw new RequestRejected(
      `move request: "profile" is ${JSON.stringify(profile)}: use one of ${SILO_PROFILES.join(', ')} (README "Silo cost profiles")`,
    );
  }
  if (!existing) throw refuse('is unknown');
  if (existing.lock) {
    throw refuse(`is being changed by another request (${existing.lock}): wait for it to finish`);
  }
  const stuck = existing.status === 'moving' && existing.movingTo === to;
  // A move sent again finishes the one left moving, into the silo it may have built: with the same profile.
  const building = existing.moveProfile ?? DEFAULT_SILO_PROFILE;
  if (stuck && building !== (profile ?? DEFAULT_SILO_PROFILE)) {
    throw refuse(
      `is moving into a silo of profile ${building} (its rollback failed): send the same move again with --profile ${building} to finish it`,
    );
  }
  if (existing.status !== 'active' && !stuck) {
    throw refuse(
      `is ${existing.status}${existing.status === 'moving' ? ` to ${existing.movingTo ?? 'another model'}` : ''}: only an active tenant is moved`,
    );
  }
  if (existing.model === to) throw refuse(`is already a ${to} tenant`);
  if (!existing.request) {
    throw refuse(
      `has no request kept in the registry, which its stack is rebuilt from in ${to === 'silo' ? 'a silo' : 'the other cell'}: deploy its stack once from its catalog entry to record it`,
    );
  }
  if (existing.keptCopy) {
    throw refuse(
      `still has the ${existing.keptCopy} copy its last move kept (the registry records one kept copy a tenant at a time): remove it first (npm run request -- purge --tenant ${tenantId})`,
    );
  }
  return {
    tenantId,
    from: existing.model as IsolationModel,
    to: to as IsolationModel,
    ...(profile !== undefined ? { profile: profile as SiloProfileName } : {}),
    stuck,
  };
}

/**
 * A purge request (`{ tenantId }`): the copy an earlier move kept in the cell the tenant left is removed, with the
 * tenant's archives in that cell's bucket. For a tenant that nobody holds, active or offboarded, with such a copy.
 */
export function checkPurge(
  request: { tenantId?: unknown },
  existing: (ExistingTenant & { keptCopy?: string }) | undefined,
): { tenantId: string; copy: IsolationModel } {
  const problem = tenantIdProblem(request.tenantId);
  if (problem) throw new RequestRejected(`purge request: tenant id ${problem}`);
  const tenantId = request.tenantId as string;
  const refuse = (why: string) =>
    new RequestRejected(`purge request: tenant "${tenantId}" ${why}; nothing was changed`);
  if (!existing) throw refuse('is unknown');
  if (existing.lock) {
    throw refuse(`is being changed by another request (${existing.lock}): wait for it to finish`);
  }
  if (
    !existing.keptCopy ||
    !KEPT_COPIES.includes(existing.keptCopy) ||
    existing.keptCopy === existing.model
  ) {
    throw refuse('has no copy kept by a move: there is nothing to purge');
  }
  // Served by its cell, or offboarded from it with its data kept (the copy a move kept is purged either way).
  if (existing.status !== 'active' && existing.status !== 'offboarded') {
    throw refuse(`is ${existing.status}: wait for the request in progress to end`);
  }
  return { tenantId, copy: existing.keptCopy as IsolationModel };
}

/**
 * The tenant as it is once moved to `to`: its first model recorded (dropped again when it moves back to it, except
 * back into a silo: its stack held one before, see Tenant.firstModel). Out of a silo, its silo's settings go and
 * the silo is kept (`keptSilo`: the tenant as it was there, which its stack keeps building, unchanged, until a
 * purge).
 */
export function movedTo(t: Tenant, to: IsolationModel): Tenant {
  const { firstModel, silo, keptSilo, ...rest } = t;
  const first = firstModel ?? t.model;
  return {
    ...rest,
    model: to,
    ...(first !== to || to === 'silo' ? { firstModel: first } : {}),
    ...(to === 'silo' && silo ? { silo } : {}),
    ...(t.model === 'silo' && to !== 'silo' ? { keptSilo: withoutKeptSilo(t) } : {}),
    ...(t.model !== 'silo' && keptSilo ? { keptSilo } : {}),
  };
}

/** A request as the registry keeps it (`kept`), without the silo a move kept: the tenant once a purge removed it. */
export function requestWithoutKeptSilo(kept: string): string {
  return tenantRequestOf(withoutKeptSilo(parseKept(kept)));
}

/** The tenant without the silo a move kept: what its stack builds once a purge removed that silo. */
export function withoutKeptSilo(t: Tenant): Tenant {
  const rest = { ...t };
  delete (rest as { keptSilo?: Tenant }).keptSilo;
  return rest;
}

/**
 * The tenant as it is once moved to `to`, with the settings its new model gives it (into a silo: `profile`, by
 * default `standard`, and its settings): its request as moved, validated by the catalog's rules.
 */
export function movedTenant(t: Tenant, to: IsolationModel, profile?: SiloProfileName): Tenant {
  if (profile !== undefined && to !== 'silo') {
    throw new Error(`tenant "${t.id}" moved to ${to}: profile ${profile} is a silo's`);
  }
  const raw = JSON.parse(tenantRequestOf(movedTo(t, to))) as { settings: Record<string, unknown> };
  // The profile's own settings (its instance class, Multi-AZ) follow from it, as in a catalog entry naming it.
  if (profile !== undefined) raw.settings.profile = profile;
  const { tenant, problems } = parseTenant(raw, `tenant "${t.id}" moved to ${to}`);
  if (!tenant) throw new CatalogError(`tenant "${t.id}" moved to ${to}`, problems);
  return tenant;
}

/**
 * A tenant's request as the registry keeps it (`kept`), once the tenant is moved to `to`: what a move's switch
 * records, and what the deploy after it builds the tenant's stack from. Throws CatalogError when `kept` is not a
 * valid request.
 */
export function movedRequest(kept: string, to: IsolationModel, profile?: SiloProfileName): string {
  return tenantRequestOf(movedTenant(parseKept(kept), to, profile));
}

/** A request as the registry keeps it, validated. Throws CatalogError when it is not a valid request. */
function parseKept(kept: string): Tenant {
  let raw: unknown;
  try {
    raw = JSON.parse(kept);
  } catch (e) {
    throw new CatalogError('the kept request', [
      { code: 'invalid-document', message: `is not JSON (${(e as Error).message})` },
    ]);
  }
  const { tenant, problems } = parseTenant(raw, 'the kept request');
  if (!tenant) throw new CatalogError('the kept request', problems);
  return tenant;
}
