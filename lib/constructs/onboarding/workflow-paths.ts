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
