/**
 * The mobility runner's events (mobility.ts has the forms): what each action may name, validated before any AWS
 * call or SQL, every error naming the field, its value and the fix.
 */
import { ARCHIVE_OBJECT_KEY } from '../../contracts';
import { validateTenantId } from '../../db/naming';
import { ProvisioningInputError } from './request';

export interface MobilityEvent {
  readonly action:
    | 'export'
    | 'restore'
    | 'replace'
    | 'checkReplace'
    | 'thaw'
    | 'vouch'
    | 'moveOut'
    | 'dropMovedIn'
    | 'purge'
    | 'result';
  readonly tenantId: string;
  /** restore: the archive's key in the cell's bucket, as an export returned it. */
  readonly archive?: string;
  /**
   * restore into a tenant being onboarded from an archive, replace, thaw: the onboarding workflow's execution (its
   * ARN), which must hold the tenant's lock with this archive recorded as the one the request names.
   */
  readonly execution?: string;
  /**
   * restore into a tenant being onboarded from the other shared cell's archive: the link to it that cell's runner
   * handed the workflow's vouch task (a presigned S3 GET, minutes long), as the execution's history says. The bytes
   * must give the digest handed with it.
   */
  readonly handover?: string;
  /**
   * vouch: the onboarding workflow's task token (`$$.Task.Token`). The runner hands the digest and link to Step
   * Functions with it (SendTaskSuccess), never back to whoever invoked it.
   */
  readonly taskToken?: string;
  /**
   * export or restore handed to the runner task (set by the runner function, never by whoever invokes it): where
   * the task leaves its report or error; `result` (an operator's poll): that key.
   */
  readonly result?: string;
  /** result: the runner task that works on it (its ARN, as the hand-over answered). */
  readonly task?: string;
}

/** Where a runner task leaves the outcome of an operator's export or restore (runner-task.ts). */
export const RESULT_KEY =
  /^runner-events\/out\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.result\.json$/;

export function isMobilityEvent(event: unknown): event is MobilityEvent {
  return typeof event === 'object' && event !== null && 'action' in event && 'tenantId' in event;
}

/** Validates an event's fields; the error names the field, its value and the fix. */
export function parseMobilityEvent(event: MobilityEvent): {
  action: MobilityEvent['action'];
  tenantId: string;
  archive?: { key: string; tenantId: string };
  execution?: string;
  handover?: URL;
  taskToken?: string;
  result?: string;
  task?: string;
} {
  // A link or a task token is a credential: an error names it as given, never its value (errors reach logs and,
  // through the workflow's failure path, the registry and events).
  const bad = (field: string, fix: string) =>
    new ProvisioningInputError(
      `mobility event field "${field}" is ${
        (field === 'handover' || field === 'taskToken') &&
        (event as unknown as Record<string, unknown>)[field] !== undefined
          ? '(given, not shown)'
          : JSON.stringify((event as unknown as Record<string, unknown>)[field])
      }: ${fix}`,
    );
  if (
    ![
      'export',
      'restore',
      'replace',
      'checkReplace',
      'thaw',
      'vouch',
      'moveOut',
      'dropMovedIn',
      'purge',
      'result',
    ].includes(event.action)
  ) {
    throw bad('action', 'use "export" or "restore" ("replace" and "thaw" are the onboarding workflow\'s)');
  }
  const tenantId = validateTenantId(event.tenantId, 'mobility event field "tenantId"');
  if (event.result !== undefined && (typeof event.result !== 'string' || !RESULT_KEY.test(event.result))) {
    throw bad(
      'result',
      'the key a hand-over to the runner task answered ("runner-events/out/<uuid>.result.json")',
    );
  }
  if (
    event.result !== undefined &&
    (!['export', 'restore', 'result'].includes(event.action) || event.execution !== undefined)
  ) {
    throw bad('result', 'leave it out (an export or a restore handed to the runner task has one)');
  }
  if (event.action === 'result') {
    if (event.result === undefined) {
      throw bad(
        'result',
        'the key the hand-over to the runner task answered ("runner-events/out/<uuid>.result.json")',
      );
    }
    if (
      typeof event.task !== 'string' ||
      !/^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task\/[\w-]{1,255}\/[0-9a-f]{32}$/.test(event.task)
    ) {
      throw bad(
        'task',
        'the runner task ARN the hand-over answered ("arn:aws:ecs:<region>:<account>:task/<cluster>/<id>")',
      );
    }
    return { action: 'result', tenantId, result: event.result, task: event.task };
  }
  if (event.task !== undefined)
    throw bad('task', 'leave it out (only a "result" poll names the runner task)');
  if (event.action === 'export') {
    if (event.archive !== undefined)
      throw bad('archive', 'an export names no archive (it returns the one it wrote)');
    if (event.execution !== undefined)
      throw bad('execution', 'an export is asked for by an operator, never by the onboarding workflow');
    return { action: 'export', tenantId, ...(event.result !== undefined ? { result: event.result } : {}) };
  }
  if (
    event.execution !== undefined &&
    (typeof event.execution !== 'string' || !/^arn:aws[a-z-]*:states:[^\s]{1,1000}$/.test(event.execution))
  ) {
    throw bad('execution', 'leave it out (only the onboarding workflow names its execution ARN here)');
  }
  if (
    (event.action === 'replace' || event.action === 'checkReplace' || event.action === 'thaw') &&
    event.execution === undefined
  ) {
    throw bad(
      'execution',
      `"${event.action}" is the onboarding workflow's, for an approver's restore request: ask for it with npm run request -- restore`,
    );
  }
  if (event.action === 'vouch' && event.execution === undefined) {
    throw bad(
      'execution',
      '"vouch" is the onboarding workflow\'s, for an approver\'s onboard request with "restoreFromModel": ask for it with npm run request -- onboard',
    );
  }
  if (
    (event.action === 'moveOut' || event.action === 'dropMovedIn' || event.action === 'purge') &&
    event.execution === undefined
  ) {
    throw bad(
      'execution',
      '"moveOut" is the onboarding workflow\'s, for an approver\'s move request: ask for it with npm run request -- move',
    );
  }
  const answersByToken = event.action === 'vouch' || event.action === 'moveOut';
  // The workflow's restore and replace steps wait for a token too: their work may go to the cell's runner task,
  // which answers through it (runner-task.ts).
  const mayAnswerByToken =
    answersByToken ||
    ((event.action === 'restore' || event.action === 'replace') && event.execution !== undefined);
  if (event.taskToken !== undefined && !mayAnswerByToken) {
    throw bad(
      'taskToken',
      "leave it out (only the onboarding workflow's vouch, moveOut, restore and replace tasks have one)",
    );
  }
  if (
    (answersByToken || event.taskToken !== undefined) &&
    (typeof event.taskToken !== 'string' || !/^[\x21-\x7e]{1,2048}$/.test(event.taskToken))
  ) {
    throw bad(
      'taskToken',
      "the onboarding workflow's task token ($$.Task.Token): a runner hands a vouched archive's link to Step Functions only",
    );
  }
  let handover: URL | undefined;
  if (event.handover !== undefined) {
    if (event.action !== 'restore' || event.execution === undefined) {
      throw bad(
        'handover',
        "leave it out (only the onboarding workflow hands a restore another cell's archive)",
      );
    }
    handover = handoverUrl(event.handover, bad);
  }
  if (event.action === 'thaw' || event.action === 'dropMovedIn' || event.action === 'purge') {
    if (event.archive !== undefined) throw bad('archive', `a ${event.action} names no archive`);
    return { action: event.action, tenantId, execution: event.execution };
  }
  if (event.action === 'moveOut') {
    if (event.archive !== undefined) throw bad('archive', 'a move out names no archive (it writes one)');
    return { action: 'moveOut', tenantId, execution: event.execution, taskToken: event.taskToken };
  }
  const m = typeof event.archive === 'string' ? ARCHIVE_OBJECT_KEY.exec(event.archive) : null;
  if (!m) {
    throw bad(
      'archive',
      'the key of an archive in the cell\'s bucket, as an export returned it: "tenants/<tenant id>/<name>.tfa"',
    );
  }
  if ((event.action === 'replace' || event.action === 'checkReplace') && m[1] !== tenantId) {
    throw bad('archive', `restore over tenant "${tenantId}"'s data from one of its own archives only`);
  }
  return {
    action: event.action,
    tenantId,
    archive: { key: event.archive!, tenantId: m[1] },
    ...(event.execution !== undefined ? { execution: event.execution } : {}),
    ...(handover ? { handover } : {}),
    ...(event.taskToken !== undefined ? { taskToken: event.taskToken } : {}),
    ...(event.result !== undefined && event.execution === undefined ? { result: event.result } : {}),
  };
}

/**
 * A handover link, checked before anything fetches it: HTTPS to this Region's S3 endpoint (virtual-hosted or path
 * style, IPv4 or dual-stack), or to the S3 endpoint the runner's own SDK is pointed at (AWS_ENDPOINT_URL_S3: tests'
 * emulator), with no credentials in it. The link carries no trust of its own (the bytes must give the digest the
 * vouching runner handed the workflow); this keeps the runner from fetching anything else on a caller's say.
 */
function handoverUrl(raw: unknown, bad: (field: string, fix: string) => Error): URL {
  const fix =
    'the presigned link to the archive that the other cell\'s runner answered "vouch" with (an https URL of this Region\'s S3)';
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    throw bad('handover', fix);
  }
  const region = process.env.AWS_REGION ?? '';
  const s3Host = new RegExp(
    `^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\\.)?s3(\\.dualstack)?\\.${region.replace(/[^a-z0-9-]/g, '')}\\.amazonaws\\.com$`,
  );
  const emulator = process.env.AWS_ENDPOINT_URL_S3
    ? new URL(process.env.AWS_ENDPOINT_URL_S3).origin
    : undefined;
  const ok =
    typeof raw === 'string' &&
    raw.length <= 8192 &&
    !url.username &&
    !url.password &&
    ((url.protocol === 'https:' && region !== '' && !url.port && s3Host.test(url.hostname)) ||
      (emulator !== undefined && url.origin === emulator));
  if (!ok) throw bad('handover', fix);
  return url;
}
