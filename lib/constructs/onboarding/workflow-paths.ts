/**
 * What the onboarding workflow's states share (onboarding-workflow.ts, restore-over.ts): the paths into its
 * execution's state, the errors it retries as throttling, and an idempotent runner call's retries.
 */
import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';

/** Errors the workflow retries as throttling. */
export const THROTTLING = [
  'ThrottlingException',
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.SdkClientException',
  'CodeBuild.AccountLimitExceededException',
  'DynamoDB.ProvisionedThroughputExceededException',
  'TooManyRequestsException',
];

export const tenantId = sfn.JsonPath.stringAt('$.tenant.tenantId');
/** What the accepted request does, as the registry says (never as the execution's input says). */
export const ACTION = '$.tenant.action';
export const execution = sfn.JsonPath.stringAt('$$.Execution.Id');
/** A model's name as a state name's part ("pool" -> "Pool"). */
export const title = (model: string) => model.charAt(0).toUpperCase() + model.slice(1);

/**
 * The retries of an idempotent runner call (a thaw, a drop, an empty, a purge): throttling with backoff, then any
 * error three times (the database may be failing over). Returns the task.
 */
export function retryIdempotent<T extends sfn.TaskStateBase | sfn.CustomState>(task: T): T {
  task.addRetry({ errors: THROTTLING, interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 });
  task.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(10), backoffRate: 2, maxAttempts: 3 });
  return task;
}

/** The runner's steps whose work grows with the tenant's data (lambda/tenant-provisioner/runner-task.ts TASK_ACTIONS). */
export const RUNNER_DATA_STEPS: readonly string[] = ['restore', 'replace', 'vouch', 'moveOut'];

/** Whether a runner step's payload is a data step: it waits for its token, which the function or its task answers. */
export function isRunnerDataStep(payload: Record<string, unknown>): boolean {
  return RUNNER_DATA_STEPS.includes(String(payload.action));
}

/**
 * A runner step's timeouts, in seconds: a data step's worker (the function, or the runner task it started) beats
 * every minute, and silence for 10 minutes (a task's start included) fails the step; it may run 4 hours in a task.
 * Any other step is a function's 15 minutes and one more.
 */
export function runnerTimeouts(dataStep: boolean): { timeout: number; heartbeat?: number } {
  return dataStep ? { timeout: 4 * 3600, heartbeat: 600 } : { timeout: 16 * 60 };
}
