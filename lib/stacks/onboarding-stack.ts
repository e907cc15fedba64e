import { Construct } from 'constructs';
import { Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { REQUEST_DETAIL_TYPES, REQUEST_SOURCE } from '../../contracts';
import { DataKey } from '../constructs/data-key';
import { EncryptedLogGroup } from '../constructs/encrypted-log-group';
import { registryRef } from '../constructs/registry-access';
import { DeployProject } from '../constructs/onboarding/deploy-project';
import { OnboardingWorkflow } from '../constructs/onboarding/onboarding-workflow';
import { WorkflowSteps } from '../constructs/onboarding/workflow-steps';

export interface OnboardingStackProps extends StackProps {
  /**
   * The CDK bootstrap qualifier whose roles the deploy job may assume.
   * @default 'hnb659fds'
   */
  readonly bootstrapQualifier?: string;
  /**
   * The tenants' DNS zone, when the fleet has one: readiness is checked at the tenant's own name.
   * @default - readiness from the ECS service and its load balancer targets
   */
  readonly domainName?: string;
}

/**
 * The onboarding pipeline: an EventBridge request (`OnboardTenant` / `OffboardTenant` from the request source,
 * or a direct, IAM-authorized StartExecution) runs the workflow (OnboardingWorkflow) that validates it with the
 * catalog's rules, records the tenant's status in the registry, and runs the deploy job (DeployProject) that
 * deploys or destroys exactly one tenant stack. Its Lambda steps are WorkflowSteps.
 */
export class OnboardingStack extends Stack {
  readonly stateMachine: sfn.StateMachine;
  readonly deployProject: codebuild.Project;
  readonly steps: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: OnboardingStackProps = {}) {
    super(scope, id, props);
    const key = new DataKey(this, 'DataKey', { description: 'Onboarding pipeline: build artifacts and logs' })
      .key;
    const registry = registryRef(this);

    this.deployProject = new DeployProject(this, 'DeployTenant', {
      key,
      logGroup: new EncryptedLogGroup(this, 'DeployLogs', { key }),
      bootstrapQualifier: props.bootstrapQualifier,
    }).project;
    this.steps = new WorkflowSteps(this, 'Steps', {
      key,
      logGroup: new EncryptedLogGroup(this, 'StepLogs', { key }),
      registry,
    }).function;
    this.stateMachine = new OnboardingWorkflow(this, 'Workflow', {
      steps: this.steps,
      project: this.deployProject,
      logGroup: new EncryptedLogGroup(this, 'WorkflowLogs', { key }),
      domainName: props.domainName,
    }).stateMachine;

    // An execution that ends without recording its end (it timed out, was aborted, or failed inside its own
    // failure path) never leaves its tenant in a transitional state: its tenant is marked failed with the reason.
    new events.Rule(this, 'ReconcileEndedExecutions', {
      description: 'Marks the tenant of an execution that ended without recording it as failed',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: [this.stateMachine.stateMachineArn],
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
        },
      },
      targets: [
        new targets.LambdaFunction(this.steps, {
          event: events.RuleTargetInput.fromObject({
            step: 'reconcile',
            executionArn: events.EventField.fromPath('$.detail.executionArn'),
            status: events.EventField.fromPath('$.detail.status'),
            input: events.EventField.fromPath('$.detail.input'),
            error: events.EventField.fromPath('$.detail.error'),
            cause: events.EventField.fromPath('$.detail.cause'),
          }),
          retryAttempts: 10,
        }),
      ],
    });

    new events.Rule(this, 'Requests', {
      description: 'Onboarding and offboarding requests',
      eventPattern: {
        source: [REQUEST_SOURCE],
        detailType: [REQUEST_DETAIL_TYPES.onboard, REQUEST_DETAIL_TYPES.offboard],
      },
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          input: events.RuleTargetInput.fromObject({
            action: events.EventField.fromPath('$.detail-type'),
            request: events.EventField.fromPath('$.detail'),
          }),
        }),
      ],
    });
  }
}
