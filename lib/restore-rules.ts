/**
 * The rules a restore request must pass (the onboarding entry's `restore` action: an approver's restore of one of a
 * tenant's own archives over its data, or the abandon of one that left it frozen). Pure, as onboarding-rules.ts.
 */
import { ARCHIVE_OBJECT_KEY } from '../contracts';
import { tenantIdProblem } from '../db/naming';
import { ExistingTenant, RequestRejected } from './onboarding-rules';

/**
 * A restore request: `{ tenantId, from }`, an archive of the tenant's own restored over its data; or
 * `{ tenantId, abandon: true }`, a restore that left the tenant frozen (`moving`) abandoned: it is thawed and
 * serves again with the data it has.
 */
export interface RestoreRequest {
  readonly tenantId?: unknown;
  /** The archive's key in the tenant's cell's bucket (`tenants/<the tenant's id>/<name>.tfa`). */
  readonly from?: unknown;
  readonly abandon?: unknown;
}

/**
 * A restore request against what the registry holds: an active tenant that nobody holds, in any model (or one that
 * an earlier restore left `moving` within its own model, frozen, which a new restore finishes), and one of its own
 * archives (in its cell's bucket: a silo's, its own). Returns the tenant's id and the archive's key.
 */
export function checkRestoreOver(
  request: RestoreRequest,
  existing: ExistingTenant | undefined,
): { tenantId: string; archive?: string } {
  const problem = tenantIdProblem(request.tenantId);
  if (problem) throw new RequestRejected(`restore request: tenant id ${problem}`);
  const tenantId = request.tenantId as string;
  const from = request.from;
  if (request.abandon !== undefined) {
    if (request.abandon !== true || from !== undefined) {
      throw new RequestRejected(
        `restore request: "abandon" is ${JSON.stringify(request.abandon)}${from !== undefined ? ' with "from"' : ''}: send { "tenantId", "abandon": true } alone to thaw a tenant a failed restore left frozen; nothing was changed`,
      );
    }
    if (!existing) {
      throw new RequestRejected(`restore request: tenant "${tenantId}" is unknown: nothing was changed`);
    }
    if (existing.lock) {
      throw new RequestRejected(
        `restore request: tenant "${tenantId}" is being changed by another request (${existing.lock}): nothing was changed; wait for it to finish`,
      );
    }
    if (existing.status !== 'moving' || existing.movingTo !== existing.model) {
      throw new RequestRejected(
        `restore request: tenant "${tenantId}" is ${existing.status}${existing.status === 'moving' ? ` to ${existing.movingTo ?? 'another model'}` : ''}, not left frozen by a restore: there is nothing to abandon; nothing was changed`,
      );
    }
    return { tenantId };
  }
  const m = typeof from === 'string' ? ARCHIVE_OBJECT_KEY.exec(from) : null;
  if (!m) {
    throw new RequestRejected(
      `restore request: "from" is ${JSON.stringify(from)}: give the key of one of the tenant's archives in its cell's bucket, as npm run tenant -- export --aws printed it: "tenants/${tenantId}/<name>.tfa"`,
    );
  }
  if (m[1] !== tenantId) {
    throw new RequestRejected(
      `restore request: ${from as string} is tenant "${m[1]}"'s archive: a restore over tenant "${tenantId}"'s data takes one of its own archives (a new tenant starts from another's with an onboard request's "restoreFrom"); nothing was changed`,
    );
  }
  if (!existing) {
    throw new RequestRejected(
      `restore request: tenant "${tenantId}" is unknown: onboard it first (with "restoreFrom" to start it from the archive); nothing was changed`,
    );
  }
  if (existing.lock) {
    throw new RequestRejected(
      `restore request: tenant "${tenantId}" is being changed by another request (${existing.lock}): nothing was changed; wait for it to finish`,
    );
  }
  const stuck = existing.status === 'moving' && existing.movingTo === existing.model;
  if (existing.status !== 'active' && !stuck) {
    throw new RequestRejected(
      `restore request: tenant "${tenantId}" is ${existing.status}${existing.status === 'moving' ? ` to ${existing.movingTo ?? 'another model'}` : ''}: only an active tenant's data is restored over; nothing was changed`,
    );
  }
  return { tenantId, archive: from as string };
}
