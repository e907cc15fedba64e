import { Construct } from 'constructs';
import { Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { REQUEST_DETAIL_TYPES, REQUEST_SOURCE, ssmNames } from '../../contracts';
import { DataKey } from '../constructs/data-key';
import { EncryptedLogGroup } from '../constructs/encrypted-log-group';
import { DeployProject } from '../constructs/onboarding/deploy-project';
import { OnboardingWorkflow } from '../constructs/onboarding/onboarding-workflow';
import { WorkflowSteps } from '../constructs/onboarding/workflow-steps';

export interface OnboardingStackProps extends StackProps {
  /**
   * The CDK bootstrap qualifier whose roles the deploy job may assume.
   * @default 'hnb659fds'
   */
  readonly bootstrapQualifier?: string;
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
    const registryTableName = ssm.StringParameter.valueForStringParameter(this, ssmNames.registryTableName);
    const registryTableArn = ssm.StringParameter.valueForStringParameter(this, ssmNames.registryTableArn);

    this.deployProject = new DeployProject(this, 'DeployTenant', {
      key,
      logGroup: new EncryptedLogGroup(this, 'DeployLogs', { key }),
      bootstrapQualifier: props.bootstrapQualifier,
    }).project;
    this.steps = new WorkflowSteps(this, 'Steps', {
      key,
      logGroup: new EncryptedLogGroup(this, 'StepLogs', { key }),
      registryTableName,
      registryTableArn,
    }).function;
    this.stateMachine = new OnboardingWorkflow(this, 'Workflow', {
      steps: this.steps,
      project: this.deployProject,
      logGroup: new EncryptedLogGroup(this, 'WorkflowLogs', { key }),
    }).stateMachine;

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
