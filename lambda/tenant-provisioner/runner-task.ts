/**
 * The cell's runner task: the mobility runner's own code (mobility-entry.ts) in an ECS Fargate task of the cell,
 * for work its function cannot finish (15 minutes, 10 GiB of temporary storage, 5 GiB archives).
 *
 * The onboarding workflow invokes the function for every step, with a task token for each step whose work grows
 * with the tenant's data (restore, replace, vouch, moveOut). The function sizes the work first (workBytes); above
 * its budget (RUNNER_TASK_ABOVE_BYTES) it hands the event to a new task of the cell (handToTask) and returns, and
 * the task answers the workflow through the token, as the function would have. Either way the worker sends a
 * heartbeat every minute (runner-answers.ts answeringTask): a worker that dies (a task stopped, a function cut off) fails the step
 * within the workflow's heartbeat timeout, into its rollback, instead of leaving it waiting for hours.
 *
 * The event carries the token and maybe a handover link, both credentials: it goes through the cell's archive
 * bucket (which only the runner's role reads), never through the task's overrides (ecs:DescribeTasks shows those).
 * The task reads it once and deletes that version (takeHandedEvent).
 */
import { randomUUID } from 'crypto';
import { ECSClient, RunTaskCommand } from '@aws-sdk/client-ecs';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { MobilityEvent } from './mobility-event';

/** How the runner function reaches the cell's runner task (the CDK construct sets RUNNER_TASK_* on it). */
export interface RunnerTask {
  /** The cell's launcher function (launcher-entry.ts), the only one that may start the task. */
  readonly launcher: string;
  /** The cell's cluster (an operator's poll describes the task there). */
  readonly cluster: string;
  /** Work estimated above this many bytes goes to the task. */
  readonly aboveBytes: number;
}

/** Where the launcher starts the runner task (the CDK construct sets RUNNER_TASK_* on the launcher). */
export interface LaunchSettings {
  readonly cluster: string;
  /** Its task definition's family: RunTask starts the latest active revision. */
  readonly taskDefinition: string;
  readonly subnets: readonly string[];
  readonly securityGroups: readonly string[];
  /** A cell without NAT gateways runs its tasks in public subnets with a public IPv4 address (as the API's). */
  readonly publicIp: boolean;
}

/**
 * Work estimated above this goes to the runner task (the construct sets it on the function): well inside what the
 * function finishes (its 5 GiB archive and 15 minutes at the throughput `npm run bench:mobility` measures), since
 * the estimate is not the archive's size.
 */
export const RUNNER_TASK_ABOVE_BYTES = 1024 ** 3;

/** The container of the runner task definition (lib/constructs/mobility-runner.ts). */
export const RUNNER_CONTAINER = 'runner';
/** Where handed-over events wait for their task, in the cell's archive bucket. */
export const EVENT_PREFIX = 'runner-events/';
/** What the function hands the task (only the function writes here, only the task reads and deletes). */
export const HANDED_PREFIX = `${EVENT_PREFIX}in/`;
/** What the task leaves for an operator's poll (only the task writes here, only the function reads). */
export const OUTCOME_PREFIX = `${EVENT_PREFIX}out/`;
const EVENT_KEY = /^runner-events\/in\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json$/;

/** An operator's actions that may go to the task (the operator's command then polls for the result). */
export const OPERATOR_TASK_ACTIONS: ReadonlySet<MobilityEvent['action']> = new Set(['export', 'restore']);

/** Actions whose work grows with the tenant's data: with the workflow's token, they may go to the task. */
export const TASK_ACTIONS: ReadonlySet<MobilityEvent['action']> = new Set([
  'restore',
  'replace',
  'vouch',
  'moveOut',
]);

/**
 * The task's settings from the function's environment; undefined inside the task itself (RUNNER_IN_TASK), which
 * never hands work on, and where the construct set none (the local platform, tests of the function alone).
 */
export function runnerTaskFromEnv(env: NodeJS.ProcessEnv = process.env): RunnerTask | undefined {
  if (env.RUNNER_IN_TASK === 'true' || env.RUNNER_TASK_LAUNCHER === undefined) return undefined;
  const need = settingOf(env, 'RUNNER_TASK_LAUNCHER');
  const aboveBytes = Number(need('RUNNER_TASK_ABOVE_BYTES'));
  if (!Number.isSafeInteger(aboveBytes) || aboveBytes < 0) {
    throw new Error(
      `mobility runner misconfigured: RUNNER_TASK_ABOVE_BYTES is ${JSON.stringify(env.RUNNER_TASK_ABOVE_BYTES)}, not a byte count`,
    );
  }
  return { launcher: need('RUNNER_TASK_LAUNCHER'), cluster: need('RUNNER_TASK_CLUSTER'), aboveBytes };
}

/** The launcher's settings, from its environment. */
export function launchSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): LaunchSettings {
  const need = settingOf(env, 'RUNNER_TASK_DEFINITION');
  return {
    cluster: need('RUNNER_TASK_CLUSTER'),
    taskDefinition: need('RUNNER_TASK_DEFINITION'),
    subnets: need('RUNNER_TASK_SUBNETS').split(','),
    securityGroups: need('RUNNER_TASK_SECURITY_GROUPS').split(','),
    publicIp: env.RUNNER_TASK_PUBLIC_IP === 'true',
  };
}

function settingOf(env: NodeJS.ProcessEnv, first: string): (name: string) => string {
  return (name) => {
    const v = env[name];
    if (!v)
      throw new Error(
        `mobility runner misconfigured: ${name === first ? name : `${first} is set but ${name}`} is not set (the CDK construct sets them)`,
      );
    return v;
  };
}

/** What an event's work weighs (mobility-entry.ts gives the ways to measure it). */
export interface Sizing {
  /** The size of an archive in the cell's bucket. */
  archiveBytes(key: string): Promise<number>;
  /** The size of the archive behind another cell's handover link. */
  linkBytes(link: URL): Promise<number>;
  /** The tenant's data here, estimated (db/mobility/size.ts), counted only until it is past `upTo`. */
  tenantBytes(tenantId: string, upTo: number): Promise<number>;
}

/** The bytes `event`'s work reads or writes: what decides whether the function or a task does it. */
export async function workBytes(
  event: { action: MobilityEvent['action']; tenantId: string; archive?: { key: string }; handover?: URL },
  sizing: Sizing,
  /** The function's budget: a tenant is counted only until it is past it. */
  upTo: number,
): Promise<number> {
  switch (event.action) {
    case 'moveOut':
    case 'export':
      return sizing.tenantBytes(event.tenantId, upTo);
    case 'vouch':
      return sizing.archiveBytes(event.archive!.key);
    case 'restore':
      return event.handover ? sizing.linkBytes(event.handover) : sizing.archiveBytes(event.archive!.key);
    case 'replace':
      // The tenant's data out first (the safety archive), then the archive in.
      return (
        (await sizing.tenantBytes(event.tenantId, upTo)) + (await sizing.archiveBytes(event.archive!.key))
      );
    default:
      return 0;
  }
}

/**
 * An archive's size in the cell's bucket; 0 when it is not there (S3 answers 403 for a missing key to a role that
 * may not list the bucket): the work then fails with its own reason, in the function.
 */
export async function headBytes(s3: S3Client, bucket: string, key: string): Promise<number> {
  try {
    return (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength ?? 0;
  } catch (e) {
    if (['NotFound', 'NoSuchKey', 'Forbidden', 'AccessDenied'].includes((e as Error).name)) return 0;
    throw e;
  }
}

/** What a size that cannot be learned counts as: large (a task can finish what a function may not). */
export const UNKNOWN_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * The size of the object behind a presigned GET link, from a one-byte ranged read; UNKNOWN_BYTES when the answer
 * does not say (the restore itself then reports a bad link with its reason).
 */
export async function rangedLinkBytes(link: URL): Promise<number> {
  try {
    const r = await fetch(link, { headers: { range: 'bytes=0-0' }, signal: AbortSignal.timeout(10_000) });
    await r.body?.cancel().catch(() => undefined);
    const total = /\/(\d+)$/.exec(r.headers.get('content-range') ?? '')?.[1];
    return total ? Number(total) : UNKNOWN_BYTES;
  } catch {
    return UNKNOWN_BYTES;
  }
}

/** What the function answers when it handed the work to a task (the workflow waits for the task's answer). */
export interface HandedToTask {
  readonly action: MobilityEvent['action'];
  readonly tenantId: string;
  readonly handedToTask: string;
  readonly bytes: number;
}

/**
 * Hands `event` to a new runner task: the event into the cell's bucket under a new key, then the cell's launcher
 * starts the task with that key. A task not started leaves no event behind, and the error says why.
 */
export async function handToTask(
  event: MobilityEvent,
  bytes: number,
  task: RunnerTask,
  clients: { s3: S3Client; bucket: string; launch(eventKey: string): Promise<string> },
): Promise<HandedToTask> {
  const key = `${HANDED_PREFIX}${randomUUID()}.json`;
  const written = await clients.s3.send(
    new PutObjectCommand({
      Bucket: clients.bucket,
      Key: key,
      Body: JSON.stringify(event),
      ContentType: 'application/json',
      IfNoneMatch: '*',
    }),
  );
  try {
    const taskArn = await clients.launch(key);
    return { action: event.action, tenantId: event.tenantId, handedToTask: taskArn, bytes };
  } catch (e) {
    await clients.s3
      .send(new DeleteObjectCommand({ Bucket: clients.bucket, Key: key, VersionId: written.VersionId }))
      .catch(() => undefined);
    throw new Error(
      `the ${event.action} of tenant "${event.tenantId}" (about ${bytes} bytes, more than this function's ${task.aboveBytes}) needs the cell's runner task, and it did not start: ${(e as Error).message}`,
    );
  }
}

/**
 * The launcher's work: starts the cell's runner task for the event at `eventKey`, with that key and nothing else
 * (the task definition's command and roles, the cell's network). Returns the task's ARN.
 */
export async function startRunnerTask(
  ecs: ECSClient,
  settings: LaunchSettings,
  eventKey: unknown,
): Promise<string> {
  if (typeof eventKey !== 'string' || !EVENT_KEY.test(eventKey)) {
    throw new Error(
      `the launcher starts the runner task only for an event the runner put in the cell's bucket ("${HANDED_PREFIX}<uuid>.json"), not ${JSON.stringify(eventKey)}`,
    );
  }
  let started;
  try {
    started = await ecs.send(
      new RunTaskCommand({
        cluster: settings.cluster,
        taskDefinition: settings.taskDefinition,
        launchType: 'FARGATE',
        count: 1,
        networkConfiguration: {
          awsvpcConfiguration: {
            subnets: [...settings.subnets],
            securityGroups: [...settings.securityGroups],
            assignPublicIp: settings.publicIp ? 'ENABLED' : 'DISABLED',
          },
        },
        overrides: {
          containerOverrides: [
            { name: RUNNER_CONTAINER, environment: [{ name: 'MOBILITY_EVENT_KEY', value: eventKey }] },
          ],
        },
        // No propagated tags: tagging a task needs ecs:TagResource, which the launcher does not hold.
        startedBy: 'tenant-mobility',
        // One task per hand-over, whatever is retried: the event's own id.
        clientToken: eventKey.slice(HANDED_PREFIX.length, HANDED_PREFIX.length + 36),
      }),
    );
  } catch (e) {
    throw new Error(`ECS refused to start it: ${(e as Error).name}: ${(e as Error).message}`);
  }
  const taskArn = started.tasks?.[0]?.taskArn;
  if (!taskArn) {
    const why = started.failures?.map((f) => `${f.reason ?? 'unknown'}${f.detail ? ` (${f.detail})` : ''}`);
    throw new Error(`ECS did not start it: ${why?.join('; ') || 'no task and no reason given'}`);
  }
  return taskArn;
}

/** The task's side: the event its function handed it, read once, its version deleted (it holds credentials). */
export async function takeHandedEvent(
  s3: S3Client,
  bucket: string,
  key: string | undefined,
): Promise<MobilityEvent> {
  if (!key || !EVENT_KEY.test(key)) {
    throw new Error(
      `runner task misconfigured: MOBILITY_EVENT_KEY is ${JSON.stringify(key)}, not a key under ${HANDED_PREFIX} (the function that starts the task sets it)`,
    );
  }
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const event = JSON.parse(await object.Body!.transformToString()) as MobilityEvent;
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: object.VersionId }));
  return event;
}
