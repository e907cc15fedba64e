/**
 * How a mobility runner's worker (its function, or the runner task it handed a step to: runner-task.ts) answers:
 * a workflow step through its task token, with heartbeats and a last look before it commits; an operator's
 * export or restore through an outcome object in the cell's bucket, which the operator's command polls for.
 */
import { randomUUID } from 'crypto';
import { DescribeTasksCommand, ECSClient } from '@aws-sdk/client-ecs';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { MobilityEvent } from './mobility-event';
import type { MobilityReport } from './mobility';
import { HandedToTask, OUTCOME_PREFIX, RUNNER_CONTAINER } from './runner-task';

/** How often a worker tells Step Functions it is alive (the workflow's heartbeat timeout is 5 minutes). */
export const HEARTBEAT_MS = 60_000;

/** Actions that answer Step Functions themselves, with what the next step needs (mobility-move/-handover.ts). */
const ANSWER_THEMSELVES: ReadonlySet<MobilityEvent['action']> = new Set(['vouch', 'moveOut']);

/** What Step Functions answers a beat for a step that no longer waits. */
export const STEP_OVER: ReadonlySet<string> = new Set(['TaskTimedOut', 'InvalidToken', 'TaskDoesNotExist']);

/**
 * The last look before a data step commits: its step still waits for it (a beat Step Functions takes). Throws if
 * not, so the transaction rolls back and nothing lands after the workflow's rollback began.
 */
export async function stepStillWaiting(answers: TaskAnswers, taskToken: string): Promise<void> {
  try {
    await answers.heartbeat(taskToken);
  } catch (e) {
    if (STEP_OVER.has((e as Error).name)) {
      throw new Error(
        `the workflow's step no longer waits for this work (${(e as Error).name}: it timed out, or was retried): nothing was committed`,
      );
    }
    // Step Functions could not be asked: the step's own timeouts decide; the work goes on.
  }
}

/** Step Functions' callback calls a worker makes (mobility-entry.ts binds them to its client). */
export interface TaskAnswers {
  heartbeat(taskToken: string): Promise<void>;
  success(taskToken: string, output: string): Promise<void>;
  failure(taskToken: string, error: string, cause: string): Promise<void>;
}

/**
 * Runs a step of the workflow's that waits for its token: heartbeats while it works; then its report as the
 * step's output (unless the action answered itself, or the work went to a task, which answers), or its error as
 * the step's failure, with the error's name and message as a function's error would give them.
 */
export async function answeringTask(
  action: MobilityEvent['action'],
  taskToken: string,
  answers: TaskAnswers,
  work: () => Promise<MobilityReport | HandedToTask>,
  log: (message: string, fields: Record<string, unknown>) => void,
  /**
   * Called when Step Functions refuses a beat because the step is over (timed out, or retried under a new token):
   * the runner task ends its process (its connections go, PostgreSQL rolls back what it had not committed, and
   * it stops holding snapshots and locks for hours). A function, which ends within 15 minutes anyway, does nothing:
   * its last look before it commits asks again (stepStillWaiting).
   */
  onStepOver?: () => void,
): Promise<MobilityReport | HandedToTask> {
  const beat = () =>
    // A beat refused because the step is over (timed out, or retried under a new token) stops nothing here: the
    // work's last look before it commits asks again (stepStillWaiting) and rolls back instead.
    answers.heartbeat(taskToken).catch((e: Error) => {
      log('heartbeat not taken', { action, error: `${e.name}: ${e.message}` });
      if (STEP_OVER.has(e.name)) onStepOver?.();
    });
  // At once (a task's first beat ends the wait for it to start), then every minute.
  await beat();
  const beating = setInterval(() => void beat(), HEARTBEAT_MS);
  try {
    const result = await work();
    if (!('handedToTask' in result) && !ANSWER_THEMSELVES.has(action)) {
      await answers.success(taskToken, JSON.stringify(result));
    }
    return result;
  } catch (e) {
    await answers
      .failure(
        taskToken,
        (e as Error).name || 'Error',
        JSON.stringify({
          errorType: (e as Error).name || 'Error',
          errorMessage: (e as Error).message.slice(0, 30_000),
        }),
      )
      .catch(() => undefined);
    throw e;
  } finally {
    clearInterval(beating);
  }
}

/** A new key for the outcome of an operator's step handed to a task. */
export function newResultKey(): string {
  return `${OUTCOME_PREFIX}${randomUUID()}.result.json`;
}

/** What a runner task leaves for the operator who asked: the report, or the error. */
export type Outcome =
  | { readonly tenantId: string; readonly report: MobilityReport }
  | { readonly tenantId: string; readonly error: { readonly name: string; readonly message: string } };

export async function writeOutcome(
  s3: S3Client,
  bucket: string,
  key: string,
  outcome: Outcome,
): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: JSON.stringify(outcome),
      ContentType: 'application/json',
      IfNoneMatch: '*',
    }),
  );
}

async function readOutcome(s3: S3Client, bucket: string, key: string): Promise<Outcome | undefined> {
  try {
    const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return JSON.parse(await o.Body!.transformToString()) as Outcome;
  } catch (e) {
    // Not there yet: S3 answers 403 for a missing key to a role that may not list the bucket (in AWS), 404 else.
    if (['NoSuchKey', 'NotFound', 'AccessDenied', 'Forbidden'].includes((e as Error).name)) return undefined;
    throw e;
  }
}

/** The runner task is still at it: poll again. */
export interface StillRunning {
  readonly action: 'result';
  readonly tenantId: string;
  readonly pending: true;
  /** ECS's last status of the task (PROVISIONING, PENDING, RUNNING, ...). */
  readonly status: string;
}

/**
 * An operator's poll for an export or restore handed to the runner task: its report (or its error, thrown), or
 * that it is still running. A task that stopped without leaving either fails with ECS's reason.
 */
export async function taskOutcome(
  poll: { tenantId: string; result: string; task: string },
  clients: { s3: S3Client; ecs: ECSClient; bucket: string; cluster: string },
): Promise<MobilityReport | StillRunning> {
  const settled = (o: Outcome): MobilityReport => {
    if (o.tenantId !== poll.tenantId) {
      throw new Error(`${poll.result} is not the outcome of a step of tenant "${poll.tenantId}"`);
    }
    if ('error' in o) {
      const e = new Error(o.error.message);
      e.name = o.error.name;
      throw e;
    }
    return o.report;
  };
  const first = await readOutcome(clients.s3, clients.bucket, poll.result);
  if (first) return settled(first);
  const d = await clients.ecs.send(
    new DescribeTasksCommand({ cluster: clients.cluster, tasks: [poll.task] }),
  );
  const t = d.tasks?.[0];
  if (!t) {
    throw new Error(
      `ECS has no runner task ${poll.task} in this cell's cluster (it forgets a stopped task after about an hour) and it left no result: its log group holds what it did`,
    );
  }
  if (t.lastStatus === 'STOPPED') {
    // It may have written its outcome just before it stopped.
    const last = await readOutcome(clients.s3, clients.bucket, poll.result);
    if (last) return settled(last);
    const exit = t.containers?.find((c) => c.name === RUNNER_CONTAINER)?.exitCode;
    throw new Error(
      `the runner task ${poll.task} stopped without a result: ${t.stoppedReason ?? 'no reason given'}${exit !== undefined ? ` (exit code ${exit})` : ''}; its log group holds what it did`,
    );
  }
  return { action: 'result', tenantId: poll.tenantId, pending: true, status: t.lastStatus ?? 'UNKNOWN' };
}
