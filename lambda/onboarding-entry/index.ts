/**
 * The onboarding entry: the one way to ask for an onboarding, an offboarding, a restore over a tenant's data or a move between cells. A Lambda function URL with IAM
 * authentication whose resource policy admits only the principals the platform engineer names. The function
 * does not trust the identity in its event (anyone allowed lambda:InvokeFunction could write one): the request
 * carries a signed STS GetCallerIdentity request bound to its payload, and STS states who the caller is
 * (caller-proof.ts). `npm run request` builds such requests.
 *
 *   POST { "payload": "<JSON: { action: onboard | offboard, request: { tenantId, name, model, settings,
 *          adminEmail, restore, restoreFrom, restoreFromModel } }>", "proof": { url, headers, body } }
 *   POST { "payload": "<JSON: { action: restore, request: { tenantId, from } }>", "proof": ... }
 *   POST { "payload": "<JSON: { action: move, request: { tenantId, to, profile } }>", "proof": ... }
 *   POST { "payload": "<JSON: { action: purge, request: { tenantId } }>", "proof": ... }
 *
 * A request within the catalog rules may come from a named requester; one outside them (a large instance
 * class, a disposable tenant, a single-AZ silo, an archive to start from or to restore over its data) only from a
 * named approver. An accepted request is validated,
 * its tenant locked for the workflow execution this function then starts, and recorded with who asked.
 * Answers: 202 accepted (with the execution), 400 refused (why), 403 not a named principal or needs an
 * approver, 502 the workflow could not be started (the tenant is released and marked failed with the reason).
 */
import { randomBytes } from 'crypto';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import {
  ApprovalRules,
  DEFAULT_APPROVAL_RULES,
  OnboardingRequest,
  RequestRejected,
} from '../../lib/onboarding-rules';
import {
  ApprovalRequired,
  beginMove,
  beginOffboarding,
  beginOnboarding,
  beginPurge,
  beginRestore,
} from '../onboarding/begin';
import type { MoveRequest } from '../../lib/move-rules';
import { write } from '../onboarding/registry';
import { ProofRejected, verifyCallerProof } from './caller-proof';
import { onboardingExecutionName } from '../../contracts';

const sfn = new SFNClient({});

const list = (name: string) =>
  (process.env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Whether `caller` (the ARN AWS verified) is one of `named`: the same ARN, or, for a named role, a session of
 * that role (`arn:aws:sts::<account>:assumed-role/<name>/<session>`; role paths do not appear in session ARNs).
 */
export function isNamed(caller: string, named: readonly string[]): boolean {
  const session = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/[^/]+$/.exec(caller);
  return named.some((n) => {
    if (n === caller) return true;
    const role = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(n);
    return !!(session && role && session[1] === role[1] && session[2] === role[2] && session[3] === role[3]);
  });
}

/** What the function URL answers (a LambdaFunctionURLResult). */
export interface Answer {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

const answer = (statusCode: number, body: Record<string, unknown>): Answer => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

export async function handler(event: LambdaFunctionURLEvent): Promise<Answer> {
  if (event.requestContext.http?.method !== 'POST') {
    return answer(405, {
      error: 'method_not_allowed',
      message: 'POST { "payload", "proof" } (npm run request)',
    });
  }
  let envelope: { payload?: unknown; proof?: unknown };
  try {
    envelope = JSON.parse(
      event.isBase64Encoded ? Buffer.from(event.body ?? '', 'base64').toString('utf8') : (event.body ?? ''),
    );
  } catch {
    return answer(400, {
      error: 'bad_request',
      message: 'the body is not JSON: send requests with npm run request',
    });
  }
  if (typeof envelope?.payload !== 'string') {
    return answer(400, {
      error: 'bad_request',
      message: 'the body has no "payload": send requests with npm run request',
    });
  }
  // Who asks, as STS states it (caller-proof.ts): never as the event says, which a direct invocation could forge.
  let caller: string;
  try {
    caller = await verifyCallerProof(envelope.proof, envelope.payload);
  } catch (e) {
    if (!(e instanceof ProofRejected)) throw e;
    log('refused: no valid caller proof', { reason: e.message });
    return answer(401, { error: 'unauthorized', message: e.message });
  }
  // Through the function URL, AWS also verified the HTTP request's signature: both must name the same caller.
  const context = event.requestContext as unknown as { authorizer?: { iam?: { userArn?: string } } };
  const signedBy = context.authorizer?.iam?.userArn;
  if (signedBy !== undefined && signedBy !== caller) {
    log('refused: the request and its proof name different principals', { caller, signedBy });
    return answer(401, {
      error: 'unauthorized',
      message: 'the request was signed by one principal and its caller proof by another',
    });
  }
  const requester = isNamed(caller, list('REQUESTERS'));
  const approver = isNamed(caller, list('APPROVERS'));
  if (!requester && !approver) {
    log('refused: not a named principal', { caller });
    return answer(403, {
      error: 'forbidden',
      message: `${caller} is neither a named requester nor a named approver of this platform: nothing was changed`,
    });
  }
  let body: { action?: unknown; request?: unknown };
  try {
    body = JSON.parse(envelope.payload);
  } catch {
    return answer(400, { error: 'bad_request', message: 'the payload is not JSON: { "action", "request" }' });
  }
  const ACTIONS = ['onboard', 'offboard', 'restore', 'move', 'purge'] as const;
  const action = ACTIONS.find((a) => a === body?.action);
  if (!action) {
    return answer(400, {
      error: 'bad_request',
      message: `"action" is ${JSON.stringify(body?.action)}: use "onboard", "offboard", "restore", "move" or "purge"`,
    });
  }
  if (typeof body.request !== 'object' || body.request === null) {
    return answer(400, { error: 'bad_request', message: '"request" must be an object with "tenantId"' });
  }
  const request = body.request as OnboardingRequest;
  const stateMachineArn = process.env.STATE_MACHINE_ARN!;
  // Named for the tenant and, for an onboarding, its model: the cells' runners may read only their own models'
  // onboardings, and a silo's runner only its own tenant's (IAM patterns on these names).
  // (A move's, for the cell it moves to: that cell's runner reads its history.)
  const name = onboardingExecutionName(
    action,
    action === 'onboard' ? request.model : action === 'move' ? (request as MoveRequest).to : undefined,
    request.tenantId,
    Date.now(),
    randomBytes(4).toString('hex'),
  );
  const execution = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
  const rules: ApprovalRules = list('INSTANCE_CLASSES').length
    ? { instanceClasses: list('INSTANCE_CLASSES') }
    : DEFAULT_APPROVAL_RULES;
  let tenant: Awaited<ReturnType<typeof beginOnboarding>>;
  try {
    const who = { execution, requestedBy: caller, approver, rules };
    tenant =
      action === 'onboard'
        ? await beginOnboarding(request, who)
        : action === 'restore'
          ? await beginRestore(request, who)
          : action === 'move'
            ? await beginMove(request as MoveRequest, who)
            : action === 'purge'
              ? await beginPurge(request, who)
              : await beginOffboarding(request, who);
  } catch (e) {
    if (e instanceof RequestRejected) {
      log('refused', { caller, action, reason: e.message });
      return answer(e instanceof ApprovalRequired ? 403 : 400, {
        error: e instanceof ApprovalRequired ? 'approval_required' : 'rejected',
        message: e.message,
      });
    }
    throw e;
  }
  try {
    await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name,
        input: JSON.stringify({ action, request, requestedBy: caller, tenant }),
      }),
    );
  } catch (e) {
    const reason = `the onboarding workflow could not be started: ${(e as Error).message}`;
    // A restore had changed nothing yet: the tenant goes back to what it was (active, or still frozen by an earlier
    // restore that failed), with the reason.
    // A move likewise (nothing frozen yet), back to active, or still `moving` after an earlier move's failed rollback.
    const stillFrozen =
      (action === 'restore' && tenant.wasFrozen === true) || (action === 'move' && tenant.wasMoving === true);
    const changesNothingYet = action === 'restore' || action === 'move';
    // A purge changed no status (the tenant is active, or offboarded with its data kept): it keeps the one it had.
    await write(
      tenant.tenantId,
      {
        ...(action === 'purge'
          ? {}
          : { status: changesNothingYet ? (stillFrozen ? 'moving' : 'active') : 'failed' }),
        failureReason: reason,
      },
      ['lock', 'restoreArchive', 'purgeCopy', ...(stillFrozen ? [] : (['movingTo'] as const))],
      { lockedBy: execution },
    );
    log('could not start the workflow', { caller, action, tenantId: tenant.tenantId, reason });
    return answer(502, { error: 'not_started', message: reason });
  }
  log('accepted', {
    caller,
    action,
    tenantId: tenant.tenantId,
    execution,
    // Whose data a new tenant starts from, for the audit trail.
    ...(tenant.restoreArchive ? { restoreArchive: tenant.restoreArchive } : {}),
  });
  return answer(202, { tenantId: tenant.tenantId, action, execution, requestedBy: caller });
}

function log(message: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level: 'info', message, ...fields }));
}
