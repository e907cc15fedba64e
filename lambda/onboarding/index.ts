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
 *   checkReady     the tenant's service is up (ECS steady state and healthy targets, or its DNS name's /ready)
 *   failureReason  the CloudFormation reason read from the tenant stack's events
 *   finalSnapshot  silo offboarding: a manual snapshot of the tenant's database before its stack goes
 *   snapshotStatus whether that snapshot is available yet
 *   reconcile      from EventBridge: an execution that timed out, was aborted or died without recording its
 *                  end leaves its tenant `failed` with the reason, never in a transitional state
 */
import { IsolationModel, TenantStatus } from '../../contracts';
import { RequestRejected } from '../../lib/onboarding-rules';
import { tenantIdProblem } from '../../db/naming';
import { AcceptedTenant } from './begin';
import { disableUsers, inviteAdmin } from './identity';
import { checkReady, DeploymentFailed, NotReady } from './readiness';
import { readItem, write } from './registry';
import { failureReason, finalSnapshot, snapshotStatus } from './stacks';

export { DeploymentFailed, NotReady, RequestRejected };

export type Step =
  | {
      step: 'accept';
      /** The execution's ARN: the lock it must hold. */
      execution: string;
      /** The execution's input, as the entry wrote it. */
      input: { tenant?: AcceptedTenant; requestedBy?: string };
    }
  | { step: 'inviteAdmin'; tenant: AcceptedTenant }
  | { step: 'disableUsers'; tenantId: string }
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
  | { step: 'checkReady'; tenantId: string; model: IsolationModel; host?: string }
  | { step: 'failureReason'; tenantId: string; error?: { Error?: string; Cause?: string } }
  | { step: 'finalSnapshot'; tenantId: string }
  | { step: 'snapshotStatus'; snapshotId: string }
  | {
      step: 'reconcile';
      executionArn: string;
      status: string;
      input?: string;
      error?: string;
      cause?: string;
    };

/** The execution no longer holds the tenant's lock (someone reconciled it): it must stop changing the tenant. */
export class LockLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockLost';
  }
}

export async function handler(event: Step): Promise<Record<string, unknown>> {
  switch (event.step) {
    case 'accept':
      return accept(event);
    case 'inviteAdmin':
      return inviteAdmin(event.tenant as { tenantId: string; adminEmail?: string; restore?: boolean });
    case 'disableUsers':
      return disableUsers(event.tenantId);
    case 'setStatus':
      return setStatus(event);
    case 'checkReady':
      return checkReady(event.tenantId, event.model, event.host);
    case 'failureReason':
      return { reason: await failureReason(event.tenantId, event.error) };
    case 'finalSnapshot':
      return finalSnapshot(event.tenantId);
    case 'snapshotStatus':
      return snapshotStatus(event.snapshotId);
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
  if (item?.lock !== e.execution || item.model !== tenant.model) {
    throw new RequestRejected(
      `execution ${e.execution} does not hold tenant "${tenantId}" (it was not accepted by the onboarding entry): nothing was changed`,
    );
  }
  // What the execution does, and the request its deploy job passes to the CDK app, come from the registry
  // item the entry wrote, not from the input.
  if (item.status !== 'provisioning' && item.status !== 'offboarding') {
    throw new RequestRejected(
      `tenant "${tenantId}" is ${item.status}, not being onboarded or offboarded: nothing was changed`,
    );
  }
  const action = item.status === 'offboarding' ? 'offboard' : 'onboard';
  const kept = item.request ?? '';
  const tenantRequest =
    action === 'onboard' && tenant.restore === true
      ? JSON.stringify({ ...JSON.parse(kept), restore: true })
      : kept;
  return { ...tenant, action, tenantRequest };
}

async function setStatus(e: Extract<Step, { step: 'setStatus' }>): Promise<Record<string, unknown>> {
  const reason =
    e.reason === undefined ? undefined : typeof e.reason === 'string' ? e.reason : JSON.stringify(e.reason);
  const written = await write(
    e.tenantId,
    {
      status: e.status,
      failureReason: reason || undefined,
      finalSnapshotId: e.snapshotId,
      dataRetained: e.dataRetained,
    },
    [...(reason ? [] : (['failureReason'] as const)), ...(e.release ? (['lock'] as const) : [])],
    { lockedBy: e.execution },
  );
  if (!written) {
    throw new LockLost(
      `tenant "${e.tenantId}" is no longer held by execution ${e.execution}: its status was not changed to ${e.status}`,
    );
  }
  return { tenantId: e.tenantId, status: e.status };
}

/**
 * An execution ended without recording its end (timed out, aborted, or died in its own failure path): if it
 * still holds its tenant's lock, the tenant is marked failed with the reason and the lock released.
 */
async function reconcile(e: Extract<Step, { step: 'reconcile' }>): Promise<Record<string, unknown>> {
  if (!['TIMED_OUT', 'ABORTED', 'FAILED'].includes(e.status)) return { reconciled: false, why: e.status };
  let tenantId: unknown;
  try {
    // The entry's input: the tenant it locked for this execution. Only a tenant this execution holds changes.
    const input = JSON.parse(e.input ?? '{}') as { tenant?: { tenantId?: unknown } };
    tenantId = input.tenant?.tenantId;
  } catch {
    tenantId = undefined;
  }
  if (tenantIdProblem(tenantId)) return { reconciled: false, why: 'no tenant id in the execution input' };
  const reason = `the workflow execution ${e.executionArn} ended ${e.status}${e.error ? ` (${e.error})` : ''}${e.cause ? `: ${e.cause.slice(0, 500)}` : ''}`;
  const written = await write(tenantId as string, { status: 'failed', failureReason: reason }, ['lock'], {
    lockedBy: e.executionArn,
  });
  return { reconciled: written, tenantId };
}
