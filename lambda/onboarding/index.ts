/**
 * The onboarding workflow's Lambda steps (one function, one `step` per invocation). Step Functions calls them
 * in order; each throws a named error on failure so the workflow's retries and catches can tell them apart.
 *
 *   begin          validates the request with the catalog's rules and against the registry, then takes the
 *                  tenant's lock with a conditional write (a duplicate or overlapping request is refused here)
 *   setStatus      changes the tenant's status, holding the lock (and releases it at the end)
 *   checkReady     the tenant's service is up (ECS steady state and healthy targets, or its DNS name's /ready)
 *   failureReason  the CloudFormation reason read from the tenant stack's events
 *   finalSnapshot  silo offboarding: a manual snapshot of the tenant's database before its stack goes
 *   snapshotStatus whether that snapshot is available yet
 *   reconcile      from EventBridge: an execution that timed out, was aborted or died without recording its
 *                  end leaves its tenant `failed` with the reason, never in a transitional state
 */
import { IsolationModel, RegistryItem, tenantStackName, TenantStatus } from '../../contracts';
import {
  checkOffboarding,
  checkSiloRanges,
  offboardingTenantId,
  OnboardingRequest,
  onboardingDecision,
  RequestRejected,
} from '../../lib/onboarding-rules';
import { tenantIdProblem } from '../../db/naming';
import { checkReady, DeploymentFailed, NotReady } from './readiness';
import { readItem, siloRanges, write } from './registry';
import { failureReason, finalSnapshot, snapshotStatus } from './stacks';

export { DeploymentFailed, NotReady, RequestRejected };

export type Step =
  | {
      step: 'begin';
      action: 'onboard' | 'offboard';
      request: OnboardingRequest;
      /** The execution's ARN: the lock this execution holds on the tenant. */
      execution: string;
      /** Who made the request (an IAM principal ARN), recorded in the registry. */
      requestedBy?: string;
    }
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
    case 'begin':
      return event.action === 'offboard' ? beginOffboarding(event) : beginOnboarding(event);
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

async function beginOnboarding(e: Extract<Step, { step: 'begin' }>): Promise<Record<string, unknown>> {
  // The id is checked before it is used as a registry key.
  const existing = tenantIdProblem(e.request.tenantId)
    ? undefined
    : await readItem(e.request.tenantId as string);
  const { tenant, restore } = onboardingDecision(e.request, existing);
  if (tenant.model === 'silo') checkSiloRanges(tenant, await siloRanges());
  // A restored silo's database comes back from its final snapshot, and keeps naming it for its whole life.
  const restoredFromSnapshot =
    restore && tenant.model === 'silo' && existing?.finalSnapshotId ? existing.finalSnapshotId : undefined;
  const request = JSON.stringify({
    id: tenant.id,
    name: tenant.name,
    model: tenant.model,
    settings: {
      ...((e.request.settings as object | undefined) ?? {}),
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
      request,
      requestedBy: e.requestedBy,
      lock: e.execution,
    },
    ['failureReason'],
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
  // What the deploy job passes to the CDK app as -c tenantRequest=... (a restore says so).
  const tenantRequest = JSON.stringify({ ...JSON.parse(request), ...(restore ? { restore: true } : {}) });
  return {
    tenantId: tenant.id,
    model: tenant.model,
    name: tenant.name,
    hostname: tenant.hostname,
    stackName: tenantStackName(tenant.id),
    tenantRequest,
    restore,
  };
}

async function beginOffboarding(e: Extract<Step, { step: 'begin' }>): Promise<Record<string, unknown>> {
  const tenantId = offboardingTenantId(e.request.tenantId);
  const entry = await readItem(tenantId);
  checkOffboarding(tenantId, entry);
  const taken = await write(
    tenantId,
    { status: 'offboarding', requestedBy: e.requestedBy, lock: e.execution },
    [],
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
    tenantId = (JSON.parse(e.input ?? '{}') as { request?: { tenantId?: unknown } }).request?.tenantId;
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
