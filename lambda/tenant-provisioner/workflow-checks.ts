/**
 * What a runner asks of the onboarding workflow before it acts for one of its executions: that Step Functions says
 * the execution is the workflow's, running, as the entry started it (startedAs), and what another cell's runner
 * handed one of its callback tasks (handedOverIn). Used by mobility-approval.ts, mobility-move.ts and
 * mobility-purge.ts.
 */
import type { ApprovalDeps } from './mobility-approval';
import type { Env } from './request';

/**
 * The onboarding workflow's `execution` as Step Functions states it: the workflow's (its state machine ARN compared
 * exactly), RUNNING, never redriven nor started through a version or alias. Returns the input the entry started it
 * with; `refuse` makes the error for anything else.
 */
export async function startedAs(
  executionArn: string,
  env: Env,
  deps: ApprovalDeps,
  refuse: (why: string) => Error,
): Promise<{ action?: unknown; tenant?: Record<string, unknown> } | undefined> {
  const workflow = deps.onboardingStateMachineArn;
  if (!deps.onboardingExecution || !workflow) {
    throw refuse(
      `the runner of ${env.ownStack} cannot read the onboarding workflow's executions (ONBOARDING_STATE_MACHINE_ARN is not set: deploy this release to its stack)`,
    );
  }
  // An execution ARN is the state machine's ARN with ":execution:" for ":stateMachine:", then ":<name>".
  if (!executionArn.startsWith(`${workflow.replace(':stateMachine:', ':execution:')}:`)) {
    throw refuse('that is not an execution of the onboarding workflow');
  }
  let execution: Awaited<ReturnType<NonNullable<ApprovalDeps['onboardingExecution']>>>;
  try {
    execution = await deps.onboardingExecution(executionArn);
  } catch (e) {
    if ((e as Error).name === 'ExecutionDoesNotExist') throw refuse('Step Functions has no such execution');
    throw e;
  }
  if (execution.stateMachineArn !== workflow) {
    throw refuse(
      `Step Functions says it is an execution of ${execution.stateMachineArn}, not the onboarding workflow`,
    );
  }
  if (execution.status !== 'RUNNING') throw refuse(`the execution is ${execution.status ?? 'in no state'}`);
  // As the entry started it: never redriven after a failure released the tenant, never through a version or alias.
  if (execution.redriveCount || execution.stateMachineVersionArn || execution.stateMachineAliasArn) {
    throw refuse('the execution was redriven, or started through a version or alias of the workflow');
  }
  try {
    return JSON.parse(execution.input ?? '');
  } catch {
    return undefined;
  }
}

/**
 * The SHA-256 another cell's runner handed the workflow's task `state` (its answer at `field` of the state's output,
 * as the execution's history says: only Step Functions writes it), for exactly this execution, tenant and archive,
 * with exactly the link `expected.handover`.
 */
export async function handedOverIn(
  state: string,
  field: string,
  expected: { archive: string; tenantId: string; execution: string; handover: string },
  from: string,
  deps: ApprovalDeps,
  refuse: (why: string) => Error,
): Promise<string> {
  if (!deps.stateOutput) throw refuse("this runner cannot read the workflow's history");
  // The state's output as the workflow leaves it: { ..., <field>: { sha256, handover, execution, tenantId, archive } }.
  let v: Record<string, unknown> | undefined;
  try {
    const output = JSON.parse((await deps.stateOutput(expected.execution, state)) ?? 'null') as Record<
      string,
      unknown
    > | null;
    v = output?.[field] as Record<string, unknown> | undefined;
  } catch {
    v = undefined;
  }
  const sha256 = v?.sha256;
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) {
    throw refuse(
      `the execution's history has no digest from its ${state} task (the ${from} cell's runner answers it)`,
    );
  }
  if (
    v?.execution !== expected.execution ||
    v?.tenantId !== expected.tenantId ||
    v?.archive !== expected.archive
  ) {
    throw refuse(
      `the ${from} cell's runner answered the execution's ${state} task for another request (${JSON.stringify(v?.execution)}, tenant ${JSON.stringify(v?.tenantId)}, archive ${JSON.stringify(v?.archive)})`,
    );
  }
  if (v?.handover !== expected.handover) {
    throw refuse(
      `the link it names is not the one the ${from} cell's runner handed to the execution's ${state} task`,
    );
  }
  return sha256;
}
