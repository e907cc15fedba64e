/**
 * The onboarding workflow's steps for a move between the pool and bridge cells and for the purge of the copy a move
 * kept (lib/constructs/onboarding/move.ts): each a conditional write that needs the execution's lock.
 */
import { movedRequest, requestWithoutKeptSilo } from '../../lib/move-rules';
import { RequestRejected } from '../../lib/onboarding-rules';
import { MOVE_SILO_STAGES, RegistryItem, siloMobilityRunnerName, tenantStackName } from '../../contracts';
import { dataModel } from '../../db/models';
import { tenantIdProblem } from '../../db/naming';
import type { Step } from './index';
import { stackHasDatabase } from './stacks';

/**
 * accept, for an approver's purge: the tenant serves on from its cell meanwhile. A kept silo is in the tenant's stack:
 * the deploys that remove it build the stack from the tenant's request as kept (`tenantRequest`, its `retire`
 * phase lifting the silo's protection) and without the silo (`purgedRequest`); `keptSiloGone` when the stack holds
 * no database any more (an earlier purge's removal landed, its last write did not).
 */
export async function acceptPurge(item: RegistryItem): Promise<Record<string, unknown>> {
  if (
    (item.status !== 'active' && item.status !== 'offboarded') ||
    item.keptCopy !== item.purgeCopy ||
    item.purgeCopy === item.model
  ) {
    throw new RequestRejected(
      `tenant "${item.tenantId}" is ${item.status} with ${item.keptCopy ?? 'no'} copy kept: its ${item.purgeCopy} copy is not purged; nothing was changed`,
    );
  }
  return {
    tenantId: item.tenantId,
    model: item.model,
    action: 'purge',
    stackName: tenantStackName(item.tenantId),
    purgeCopy: item.purgeCopy,
    ...(item.purgeCopy === 'silo' ? await keptSiloPurge(item) : {}),
  };
}

async function keptSiloPurge(item: RegistryItem): Promise<Record<string, unknown>> {
  const kept = item.request ?? '';
  let purgedRequest: string;
  try {
    purgedRequest = requestWithoutKeptSilo(kept);
  } catch (e) {
    throw new RequestRejected(
      `tenant "${item.tenantId}"'s request as the registry keeps it cannot be read (${(e as Error).message}): its silo is not purged; nothing was changed`,
    );
  }
  const request = JSON.parse(kept) as { settings?: { hostname?: string } };
  return {
    hostname: request.settings?.hostname ?? item.tenantId,
    tenantRequest: kept,
    purgedRequest,
    mobilityRunner: siloMobilityRunnerName(item.tenantId),
    // Unknown (the stack could not be read) is not gone: the purge empties and removes what may be there.
    keptSiloGone: (await stackHasDatabase(item.tenantId)) === false,
  };
}

/**
 * accept, for a move out of the pool or bridge cell: `moving` to the other cell or into a silo (the entry checked the models and
 * that the registry keeps the tenant's request). The deploy jobs build its stack from the kept request: with its
 * place in the other cell added (moveRequest), as it was (tenantRequest: the rollback), and as moved (movedRequest).
 * Into a silo, both name its profile when the move did (`movingProfile`; the request as moved, `settings.profile`).
 */
export function acceptMove(item: RegistryItem): Record<string, unknown> {
  const kept = item.request ?? '';
  let moved: string;
  try {
    moved = movedRequest(kept, item.movingTo!, item.moveProfile);
  } catch (e) {
    throw new RequestRejected(
      `tenant "${item.tenantId}"'s request as the registry keeps it cannot be moved (${(e as Error).message}): nothing was changed`,
    );
  }
  const request = JSON.parse(kept) as { settings?: { hostname?: string } };
  return {
    tenantId: item.tenantId,
    model: item.model,
    movingTo: item.movingTo,
    action: 'move',
    stackName: tenantStackName(item.tenantId),
    hostname: request.settings?.hostname ?? item.tenantId,
    tenantRequest: kept,
    moveRequest: JSON.stringify({
      ...JSON.parse(kept),
      movingTo: item.movingTo,
      ...(item.moveProfile ? { movingProfile: item.moveProfile } : {}),
    }),
    movedRequest: moved,
    // Into or out of a silo: its own runner, by name (the workflow may invoke the silos' runners, by their names'
    // pattern).
    ...(item.movingTo === 'silo' || item.model === 'silo'
      ? { mobilityRunner: siloMobilityRunnerName(item.tenantId) }
      : {}),
  };
}
import { LockLost, readItem, RELEASED, write } from './registry';

/**
 * A move's switch (after the destination's runner restored the tenant there): in one conditional write that needs
 * the execution's lock, the tenant is served by the cell it moved to (model, schema, its request as moved), its old
 * place is recorded as kept, and the lock is released. A retry after a lost answer finds it done.
 */
export async function switchModel(
  e: Extract<Step, { step: 'switchModel' }>,
): Promise<Record<string, unknown>> {
  const item = tenantIdProblem(e.tenantId) ? undefined : await readItem(e.tenantId);
  if (item && !item.lock && item.status === 'active' && item.releasedBy === e.execution) {
    return { tenantId: e.tenantId, model: item.model, already: true };
  }
  if (
    !item ||
    item.lock !== e.execution ||
    item.status !== 'moving' ||
    !item.movingTo ||
    item.movingTo === item.model
  ) {
    throw new LockLost(
      `tenant "${e.tenantId}" is not being moved by execution ${e.execution}: it was not switched`,
    );
  }
  const to = item.movingTo;
  const version = Number(e.schemaVersion);
  const written = await write(
    e.tenantId,
    {
      model: to,
      status: 'active',
      schema: dataModel(to).schemaOf(item.tenantId, {}),
      request: movedRequest(item.request ?? '', to, item.moveProfile),
      keptCopy: item.model,
      releasedBy: e.execution,
      ...(Number.isInteger(version) && version > 0 ? { schemaVersion: version } : {}),
    },
    [...RELEASED, 'movingTo', 'moveProfile', 'failureReason', 'failedDuring', 'moveSilo'],
    { lockedBy: e.execution, statusIn: ['moving'] },
  );
  if (!written) {
    throw new LockLost(
      `tenant "${e.tenantId}" is no longer held by execution ${e.execution}: it was not switched to ${to}`,
    );
  }
  return { tenantId: e.tenantId, model: to, keptCopy: item.model };
}

/**
 * A move that failed before its switch: marked as being rolled back (`moveAborted`, cleared with the lock), so the
 * destination cell's provisioner removes the place it built when the rollback deploy drops its resource. Needs the
 * lock, with the tenant still moving between cells (never after a switch).
 */
export async function abortMove(e: Extract<Step, { step: 'abortMove' }>): Promise<Record<string, unknown>> {
  const item = tenantIdProblem(e.tenantId) ? undefined : await readItem(e.tenantId);
  const written =
    item !== undefined &&
    item.movingTo !== undefined &&
    item.movingTo !== item.model &&
    (await write(e.tenantId, { moveAborted: true }, [], { lockedBy: e.execution, statusIn: ['moving'] }));
  if (!written) {
    throw new LockLost(
      `tenant "${e.tenantId}" is not being moved by execution ${e.execution}: its move was not marked for rollback`,
    );
  }
  // How far a move into a silo got, this execution or an earlier one of the same move ('none': not at all). A
  // silo the registry records but the stack no longer holds (the removal an earlier execution asked for landed
  // after that execution died) is 'gone': the rollback must not build it again only to remove it.
  const gone = item.moveSilo !== undefined && (await stackHasDatabase(e.tenantId)) === false;
  return { tenantId: e.tenantId, moveAborted: true, moveSilo: gone ? 'gone' : (item.moveSilo ?? 'none') };
}

/**
 * A move into a silo records how far it got in building the silo (`moveSilo`), before the step that reaches it:
 * `sealed` before the deploy that protects the silo, `filled` before its runner restores the tenant into it, and
 * `removed` once the rollback's deploy removed it. Never lowered from `filled` to `sealed` (a move sent again meets
 * the silo the previous one left). Needs the lock, with the tenant moving into a silo.
 */
export async function markMoveSilo(
  e: Extract<Step, { step: 'markMoveSilo' }>,
): Promise<Record<string, unknown>> {
  if (e.stage !== 'removed' && !MOVE_SILO_STAGES.includes(e.stage)) {
    throw new Error(`markMoveSilo: stage ${JSON.stringify(e.stage)} is not sealed, filled or removed`);
  }
  const item = tenantIdProblem(e.tenantId) ? undefined : await readItem(e.tenantId);
  const keep = e.stage === 'sealed' && item?.moveSilo === 'filled';
  const written =
    item !== undefined &&
    item.movingTo === 'silo' &&
    item.model !== 'silo' &&
    (keep ||
      (await write(
        e.tenantId,
        e.stage === 'removed' ? {} : { moveSilo: e.stage },
        e.stage === 'removed' ? ['moveSilo'] : [],
        { lockedBy: e.execution, statusIn: ['moving'] },
      )));
  if (!written || (keep && item.lock !== e.execution)) {
    throw new LockLost(
      `tenant "${e.tenantId}" is not being moved into a silo by execution ${e.execution}: its silo's stage (${e.stage}) was not recorded`,
    );
  }
  return { tenantId: e.tenantId, moveSilo: keep ? 'filled' : e.stage };
}

/**
 * A purge that failed: the lock released with the reason, the tenant's status as it was (active, or offboarded).
 */
export async function purgeFailed(
  e: Extract<Step, { step: 'purgeFailed' }>,
): Promise<Record<string, unknown>> {
  const reason = typeof e.reason === 'string' ? e.reason : JSON.stringify(e.reason);
  const written = await write(e.tenantId, { failureReason: reason, releasedBy: e.execution }, RELEASED, {
    lockedBy: e.execution,
  });
  if (!written) {
    throw new LockLost(
      `tenant "${e.tenantId}" is not held by execution ${e.execution}: nothing was recorded`,
    );
  }
  return { tenantId: e.tenantId, released: true };
}

/**
 * A purge's end (after the kept copy's cell's runner removed it): `keptCopy` goes with the lock, in one conditional
 * write that needs it. A retry after a lost answer finds it done.
 */
export async function purged(e: Extract<Step, { step: 'purged' }>): Promise<Record<string, unknown>> {
  const item = tenantIdProblem(e.tenantId) ? undefined : await readItem(e.tenantId);
  if (item && !item.lock && !item.keptCopy && item.releasedBy === e.execution) {
    return { tenantId: e.tenantId, already: true };
  }
  const written =
    item?.purgeCopy !== undefined &&
    // An earlier purge's failure reason goes too: this one finished it. A kept silo goes from the request too.
    (await write(
      e.tenantId,
      {
        releasedBy: e.execution,
        ...(item.purgeCopy === 'silo' && item.request
          ? { request: requestWithoutKeptSilo(item.request) }
          : {}),
      },
      [...RELEASED, 'keptCopy', 'failureReason'],
      {
        lockedBy: e.execution,
        statusIn: ['active', 'offboarded'],
      },
    ));
  if (!written) {
    throw new LockLost(
      `tenant "${e.tenantId}" is not being purged by execution ${e.execution}: nothing was recorded`,
    );
  }
  return { tenantId: e.tenantId, purged: item!.purgeCopy };
}
