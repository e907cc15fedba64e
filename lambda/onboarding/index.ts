/**
 * The onboarding workflow's Lambda steps (one function, one `step` per invocation). Step Functions calls them
 * in order; each throws a named error on failure so the workflow's retries and catches can tell them apart.
 *
 *   accept         admits the execution only if it holds its tenant's lock (taken by the onboarding entry,
 *                  lambda/onboarding-entry, when it accepted the request): an execution started any other
 *                  way is refused and changes nothing
 *   inviteAdmin    a new tenant's first administrator invited (a restore: its users enabled again)
 *   disableUsers   offboarding: every user of the tenant disabled and signed out
 *   setStatus      changes the tenant's status, holding the lock (and releases it at the end)
 *   switchModel    a move's switch: the tenant is served by the cell it moved to, its old place kept (releases)
 *   abortMove      a move that failed before its switch is rolled back: its destination's place may be removed
 *   markMoveSilo   a move into a silo records how far it got in building the silo (its rollback reads it)
 *   purged         a purge's end: the copy a move kept is gone (releases)
 *   purgeFailed    a purge that failed: released with the reason, the status as it was
 *   checkReady     the tenant's service is up (ECS steady state and healthy targets, or its DNS name's /ready)
 *   failureReason  the CloudFormation reason read from the tenant stack's events
 *   finalSnapshot  silo offboarding: a manual snapshot of the tenant's database before its stack goes
 *   snapshotStatus whether that snapshot is available yet
 *   reconcile      from EventBridge: an execution that timed out, was aborted or died without recording its
 *                  end leaves its tenant `failed` with the reason, never in a transitional state
 */
import {
  IsolationModel,
  RegistryItem,
  siloMobilityRunnerName,
  tenantStackName,
  TenantStatus,
} from '../../contracts';
import { RequestRejected } from '../../lib/onboarding-rules';
import { tenantIdProblem } from '../../db/naming';
import { AcceptedTenant } from './begin';
import { disableUsers, inviteAdmin } from './identity';
import { checkReady, DeploymentFailed, NotReady } from './readiness';
import { LockLost, readItem, RELEASED, write } from './registry';
import {
  abortMove,
  acceptMove,
  acceptPurge,
  markMoveSilo,
  purged,
  purgeFailed,
  switchModel,
} from './move-steps';
import { failureReason, finalSnapshot, SnapshotKind, snapshotStatus } from './stacks';
import { duringOf, reconcile } from './reconcile';

export { DeploymentFailed, LockLost, NotReady, RequestRejected };

export type Step =
  | {
      step: 'accept';
      /** The execution's ARN: the lock it must hold. */
      execution: string;
      /** The execution's input, as the entry wrote it. */
      input: { tenant?: AcceptedTenant; requestedBy?: string };
    }
  | { step: 'inviteAdmin'; tenantId: string; execution: string }
  | { step: 'disableUsers'; tenantId: string; execution: string }
  | {
      step: 'setStatus';
      tenantId: string;
      execution: string;
      status: TenantStatus;
      /** Release the tenant's lock with this change (the workflow's last write). */
      release?: boolean;
      reason?: unknown;
      snapshotId?: string;
      dataRetained?: boolean;
    }
  | {
      step: 'switchModel';
      tenantId: string;
      execution: string;
      /** The schema version the destination's runner restored the tenant at. */
      schemaVersion?: unknown;
    }
  | { step: 'abortMove'; tenantId: string; execution: string }
  | { step: 'markMoveSilo'; tenantId: string; execution: string; stage: 'sealed' | 'filled' | 'removed' }
  | { step: 'purged'; tenantId: string; execution: string }
  | { step: 'purgeFailed'; tenantId: string; execution: string; reason?: unknown }
  | { step: 'checkReady'; tenantId: string; model: IsolationModel; host?: string }
  | {
      step: 'failureReason';
      tenantId: string;
      error?: { Error?: string; Cause?: string };
      /** false: the failed step deployed nothing (a restore), so the stack's events are not read. */
      fromStack?: boolean;
    }
  | { step: 'finalSnapshot'; tenantId: string; execution: string }
  | { step: 'snapshotStatus'; snapshotId: string; kind?: SnapshotKind }
  | {
      step: 'reconcile';
      executionArn: string;
      status: string;
      input?: string;
      error?: string;
      cause?: string;
    };

export async function handler(event: Step): Promise<Record<string, unknown>> {
  switch (event.step) {
    case 'accept':
      return accept(event);
    case 'inviteAdmin':
      return held(event, 'provisioning').then((item) =>
        inviteAdmin({
          tenantId: item.tenantId,
          adminEmail: item.adminEmail,
          restore: item.restoring === true,
        }),
      );
    case 'disableUsers':
      return held(event, 'offboarding').then((item) => disableUsers(item.tenantId));
    case 'setStatus':
      return setStatus(event);
    case 'switchModel':
      return switchModel(event);
    case 'abortMove':
      return abortMove(event);
    case 'markMoveSilo':
      return markMoveSilo(event);
    case 'purged':
      return purged(event);
    case 'purgeFailed':
      return purgeFailed(event);
    case 'checkReady':
      return checkReady(event.tenantId, event.model, event.host);
    case 'failureReason':
      return { reason: await failureReason(event.tenantId, event.error, event.fromStack !== false) };
    case 'finalSnapshot':
      return held(event, 'offboarding').then((item) => finalSnapshot(item.tenantId));
    case 'snapshotStatus':
      return snapshotStatus(event.snapshotId, event.kind);
    case 'reconcile':
      return reconcile(event);
    default:
      throw new Error(`unknown step ${JSON.stringify((event as { step?: unknown }).step)}`);
  }
}

/**
 * The workflow's first step: the execution is admitted only if the registry says it holds its tenant's lock,
 * which only the onboarding entry takes (after checking who asked). A StartExecution from anyone else, or a
 * replayed input, is refused: nothing changes.
 */
async function accept(e: Extract<Step, { step: 'accept' }>): Promise<Record<string, unknown>> {
  const tenant = e.input.tenant;
  const tenantId = tenant?.tenantId;
  if (!tenant || tenantIdProblem(tenantId)) {
    throw new RequestRejected(
      'this execution was not started by the onboarding entry (its input names no accepted tenant): send requests to the entry URL',
    );
  }
  const item = await readItem(tenantId as string);
  if (item?.lock !== e.execution) {
    throw new RequestRejected(
      `execution ${e.execution} does not hold tenant "${tenantId}" (it was not accepted by the onboarding entry): nothing was changed`,
    );
  }
  // A restore over the tenant's data: `moving` within its own model, with the archive recorded (or none: an
  // approver's request to abandon one that left the tenant frozen).
  if (item.status === 'moving' && item.movingTo === item.model) {
    return {
      tenantId: item.tenantId,
      model: item.model,
      action: item.restoreArchive ? 'restore' : 'abandonRestore',
      stackName: tenantStackName(item.tenantId),
      restoreArchive: item.restoreArchive ?? '',
      // A silo's own runner, by name (the workflow may invoke the silos' runners, by their names' pattern).
      ...(item.model === 'silo' ? { mobilityRunner: siloMobilityRunnerName(item.tenantId) } : {}),
    };
  }
  // A purge of the copy a move kept, or a move between the pool and bridge cells (move-steps.ts).
  if (item.purgeCopy !== undefined) return acceptPurge(item);
  if (item.status === 'moving' && item.movingTo !== undefined) return acceptMove(item);
  if (item.status !== 'provisioning' && item.status !== 'offboarding') {
    throw new RequestRejected(
      `tenant "${tenantId}" is ${item.status}, not being onboarded, offboarded or restored: nothing was changed`,
    );
  }
  if (item.restoreArchive && item.model === 'silo' && !item.restoreArchiveModel) {
    throw new RequestRejected(
      `tenant "${tenantId}" is a silo, which starts from a pool or bridge cell's archive only (restoreArchive ${item.restoreArchive} names no cell): nothing was changed`,
    );
  }
  // Everything the execution does, and the request its deploy job passes to the CDK app, comes from the registry
  // item the entry wrote with the lock; nothing from the input but the tenant's id.
  const action = item.status === 'offboarding' ? 'offboard' : 'onboard';
  const kept = item.request ?? '';
  const restore = action === 'onboard' && item.restoring === true;
  const deletionPolicy = item.deletionPolicy ?? 'retain';
  const request = kept ? (JSON.parse(kept) as { settings?: { hostname?: string } }) : {};
  return {
    tenantId: item.tenantId,
    model: item.model,
    action,
    stackName: tenantStackName(item.tenantId),
    hostname: request.settings?.hostname ?? item.tenantId,
    tenantRequest: restore ? JSON.stringify({ ...JSON.parse(kept), restore: true }) : kept,
    restore,
    // The archive the new tenant starts from, as the entry recorded it for an approver's request (the workflow's
    // RestoreArchive step runs only when it is present).
    ...(action === 'onboard' && item.restoreArchive ? { restoreArchive: item.restoreArchive } : {}),
    // ... and the other shared cell whose bucket holds it (its runner vouches for it first).
    ...(action === 'onboard' && item.restoreArchive && item.restoreArchiveModel
      ? { restoreArchiveModel: item.restoreArchiveModel }
      : {}),
    // ... into a silo: its own runner, by name (the workflow may invoke the silos' runners, by their names' pattern).
    ...(action === 'onboard' && item.restoreArchive && item.model === 'silo'
      ? { mobilityRunner: siloMobilityRunnerName(item.tenantId) }
      : {}),
    deletionPolicy,
    dataRetained: deletionPolicy === 'retain',
  };
}

/**
 * The registry item of a tenant this execution holds, in the status the step belongs to. The steps that change
 * a tenant (invite or disable its users, snapshot its database) take everything from it, so invoking the step
 * function directly can only repeat what a running execution is doing anyway.
 */
async function held(
  e: { tenantId: string; execution: string },
  status: 'provisioning' | 'offboarding',
): Promise<RegistryItem> {
  const item = tenantIdProblem(e.tenantId) ? undefined : await readItem(e.tenantId);
  if (!item || item.lock !== e.execution || item.status !== status) {
    throw new LockLost(
      `tenant "${e.tenantId}" is not held by execution ${e.execution} while ${status}: nothing was changed`,
    );
  }
  return item;
}

async function setStatus(e: Extract<Step, { step: 'setStatus' }>): Promise<Record<string, unknown>> {
  const reason =
    e.reason === undefined ? undefined : typeof e.reason === 'string' ? e.reason : JSON.stringify(e.reason);
  // A failure records what the tenant was going through: a failed offboarding can only be offboarded again.
  const failedDuring =
    e.status === 'failed' ? await readItem(e.tenantId).then((i) => duringOf(i?.status)) : undefined;
  const written = await write(
    e.tenantId,
    {
      status: e.status,
      failedDuring,
      failureReason: reason || undefined,
      finalSnapshotId: e.snapshotId,
      dataRetained: e.dataRetained,
      ...(e.release ? { releasedBy: e.execution } : {}),
    },
    [
      ...(reason ? [] : (['failureReason'] as const)),
      ...(e.release ? RELEASED : []),
      // A restore over the tenant's data ends where the tenant is (unless it stays frozen: `moving`).
      ...(e.release && e.status !== 'moving' ? (['movingTo', 'moveProfile'] as const) : []),
      ...(e.status === 'failed' ? [] : (['failedDuring'] as const)),
    ],
    { lockedBy: e.execution },
  );
  if (!written) {
    // A last write of success retried after its answer was lost finds its own work done: the status it asked for,
    // released by this execution. (A failure is never taken as done this way: the reconciler writes `failed` too.)
    const now =
      e.release && (e.status === 'active' || e.status === 'offboarded')
        ? await readItem(e.tenantId)
        : undefined;
    if (now && now.status === e.status && !now.lock && now.releasedBy === e.execution) {
      return { tenantId: e.tenantId, status: e.status, already: true };
    }
    throw new LockLost(
      `tenant "${e.tenantId}" is no longer held by execution ${e.execution}: its status was not changed to ${e.status}`,
    );
  }
  return { tenantId: e.tenantId, status: e.status };
}
