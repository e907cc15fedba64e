/**
 * What the onboarding workflow's states share (onboarding-workflow.ts, restore-over.ts): the paths into its
 * execution's state, and the errors it retries as throttling.
 */
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
