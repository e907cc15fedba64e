import { Construct } from 'constructs';
import { Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { ssmNames } from '../../contracts';
import { DataKey } from '../constructs/data-key';
import { EncryptedLogGroup } from '../constructs/encrypted-log-group';
import { registryRef } from '../constructs/registry-access';
import { DeployProject } from '../constructs/onboarding/deploy-project';
import { OnboardingEntry } from '../constructs/onboarding/onboarding-entry';
import { OnboardingWorkflow } from '../constructs/onboarding/onboarding-workflow';
import { WorkflowSteps } from '../constructs/onboarding/workflow-steps';

export interface OnboardingStackProps extends StackProps {
  /**
   * The CDK bootstrap qualifier whose roles the deploy job may assume.
   * @default BOOTSTRAP_QUALIFIERS.platform
   */
  readonly bootstrapQualifier?: string;
  /**
   * The tenants' DNS zone, when the fleet has one: readiness is checked at the tenant's own name.
   * @default - readiness from the ECS service and its load balancer targets
   */
  readonly domainName?: string;
  /**
   * IAM role or user ARNs that may request onboarding and offboarding within the catalog rules.
   * @default - nobody
   */
  readonly requesters?: readonly string[];
  /**
   * IAM role or user ARNs that may also request what is outside the catalog rules.
   * @default - nobody
   */
  readonly approvers?: readonly string[];
}

/**
 * The onboarding pipeline: a request to the entry (OnboardingEntry, an IAM-authorized function URL that admits
 * only the named requesters and approvers) is validated with the catalog's rules, locks its tenant in the
 * registry and starts the workflow (OnboardingWorkflow), which records the tenant's status, runs the deploy job
 * (DeployProject) that deploys or destroys exactly one tenant stack, and invites or disables the tenant's users.
 * Its Lambda steps are WorkflowSteps.
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
    const steps = new WorkflowSteps(this, 'Steps', {
      key,
      logGroup: new EncryptedLogGroup(this, 'StepLogs', { key }),
      registry,
      userPoolId: ssm.StringParameter.valueForStringParameter(this, ssmNames.userPoolId),
    });
    this.steps = steps.function;
    this.stateMachine = new OnboardingWorkflow(this, 'Workflow', {
      steps: this.steps,
      project: this.deployProject,
      logGroup: new EncryptedLogGroup(this, 'WorkflowLogs', { key }),
      domainName: props.domainName,
    }).stateMachine;
    steps.readExecutionsOf(this.stateMachine);

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

    new OnboardingEntry(this, 'Entry', {
      stateMachine: this.stateMachine,
      registry,
      key,
      logGroup: new EncryptedLogGroup(this, 'EntryLogs', { key }),
      requesters: props.requesters,
      approvers: props.approvers,
    });
  }
}
