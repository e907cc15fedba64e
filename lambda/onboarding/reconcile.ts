/**
 * The onboarding workflow's `reconcile` step (from EventBridge): an execution that timed out, was aborted or died
 * without recording its end leaves its tenant with the reason, never in a transitional state it cannot leave.
 */
import type { TenantStatus } from '../../contracts';
import { tenantIdProblem } from '../../db/naming';
import type { Step } from './index';
import { readItem, RELEASED, write } from './registry';
import { executionEnded } from './stacks';

/**
 * An execution ended without recording its end (timed out, aborted, or died in its own failure path): if it
 * still holds its tenant's lock, the tenant is marked failed with the reason and the lock released.
 */
export async function reconcile(e: Extract<Step, { step: 'reconcile' }>): Promise<Record<string, unknown>> {
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
  // The event says the execution ended; Step Functions must say so too (the step function can be invoked
  // directly, with any event): a running execution's tenant is never marked failed.
  const ended = await executionEnded(e.executionArn);
  if (!ended) return { reconciled: false, why: `${e.executionArn} is still running`, tenantId };
  const item = await readItem(tenantId as string);
  const reason = `the workflow execution ${e.executionArn} ended ${ended}${e.error ? ` (${e.error})` : ''}${e.cause ? `: ${e.cause.slice(0, 500)}` : ''}`;
  if (item?.purgeCopy !== undefined && (item.status === 'active' || item.status === 'offboarded')) {
    // A purge that died: the tenant served all along from its cell; the kept copy may be partly removed (a purge
    // requested again finishes it).
    const written = await write(
      tenantId as string,
      {
        failureReason: `${reason}; its ${item.purgeCopy} copy may be partly removed: request the purge again to finish it`,
      },
      RELEASED,
      { lockedBy: e.executionArn },
    );
    return { reconciled: written, tenantId };
  }
  if (item?.status === 'moving') {
    // A restore over the tenant's data, or a move, that died: the tenant may still be frozen, so it stays `moving`
    // (503, never served half-restored) with the reason; a new restore (or move) request finishes it.
    const move = item.movingTo !== undefined && item.movingTo !== item.model;
    const written = await write(
      tenantId as string,
      {
        status: 'moving',
        failureReason: move
          ? `${reason}; the tenant may still be frozen: request the move again to finish it (npm run request -- move --tenant ${tenantId as string} --to ${item.movingTo!}${item.moveProfile ? ` --profile ${item.moveProfile}` : ''})`
          : `${reason}; the tenant may still be frozen: request the restore again to finish it, or abandon it (npm run request -- restore --tenant ${tenantId as string} --abandon)`,
      },
      RELEASED,
      { lockedBy: e.executionArn },
    );
    return { reconciled: written, tenantId };
  }
  const written = await write(
    tenantId as string,
    { status: 'failed', failureReason: reason, failedDuring: duringOf(item?.status) },
    RELEASED,
    { lockedBy: e.executionArn },
  );
  return { reconciled: written, tenantId };
}

export function duringOf(status: TenantStatus | undefined): 'onboarding' | 'offboarding' {
  return status === 'offboarding' ? 'offboarding' : 'onboarding';
}
