import * as path from 'path';
import { Construct } from 'constructs';
import { CfnOutput, Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { ApprovalRules, DEFAULT_APPROVAL_RULES } from '../../onboarding-rules';
import { ack, AWS_SOLUTIONS, HIPAA_AND_NIST, l1 } from '../../nag';
import { grantRegistry, RegistryRef } from '../registry-access';
import { LAMBDA_RUNTIME } from '../tenant-provisioner';

const REPO_ROOT = path.join(__dirname, '..', '..', '..');

/** An IAM role or user ARN: the only kinds of principal the entry names. */
const PRINCIPAL_ARN = /^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]{1,512}$/;

/** Why `arn` cannot be named as a requester or approver, if it cannot. */
export function principalArnProblem(arn: string): string | undefined {
  if (PRINCIPAL_ARN.test(arn)) return undefined;
  return `"${arn}" is not an IAM role or user ARN (arn:aws:iam::<account>:role/<name> or :user/<name>)`;
}

export interface OnboardingEntryProps {
  /** The workflow the entry starts for an accepted request. */
  readonly stateMachine: sfn.IStateMachine;
  /** The tenant registry, where the entry locks the tenant and records who asked. */
  readonly registry: RegistryRef;
  /** Encrypts the function's environment. */
  readonly key: kms.IKey;
  readonly logGroup: logs.ILogGroup;
  /**
   * IAM role or user ARNs that may request onboarding and offboarding within the catalog rules.
   * @default - nobody: the entry refuses every request until principals are named
   */
  readonly requesters?: readonly string[];
  /**
   * IAM role or user ARNs that may also request what is outside the catalog rules (a large instance class, a
   * disposable tenant, a single-AZ silo).
   * @default - nobody: such requests are refused
   */
  readonly approvers?: readonly string[];
  /** @default DEFAULT_APPROVAL_RULES */
  readonly rules?: ApprovalRules;
}

/**
 * The one way in to the onboarding workflow: a Lambda function URL with IAM authentication
 * (lambda/onboarding-entry). AWS authenticates the caller with Signature V4; the function's resource policy
 * admits only the named requesters and approvers, and the function checks the caller's ARN against them again
 * (an identity policy in this account granting lambda:InvokeFunctionUrl on "*" would otherwise be enough).
 * Only this function may start the workflow, and the workflow's first step admits only executions this function
 * locked the tenant for.
 */
export class OnboardingEntry extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly url: lambda.FunctionUrl;

  constructor(scope: Construct, id: string, props: OnboardingEntryProps) {
    super(scope, id);
    const requesters = props.requesters ?? [];
    const approvers = props.approvers ?? [];
    for (const [what, arns] of [
      ['requesters', requesters],
      ['approvers', approvers],
    ] as const) {
      for (const arn of arns) {
        const problem = principalArnProblem(arn);
        if (problem) {
          throw new Error(
            `onboarding ${what}: ${problem}: name each principal by its full ARN (-c onboarding${what[0].toUpperCase()}${what.slice(1)}=<arn>,<arn>)`,
          );
        }
      }
    }
    const rules = props.rules ?? DEFAULT_APPROVAL_RULES;
    this.function = new nodejs.NodejsFunction(this, 'Default', {
      entry: path.join(REPO_ROOT, 'lambda', 'onboarding-entry', 'index.ts'),
      handler: 'handler',
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: Duration.seconds(30),
      logGroup: props.logGroup,
      environmentEncryption: props.key,
      environment: {
        REGISTRY_TABLE: props.registry.tableName,
        STATE_MACHINE_ARN: props.stateMachine.stateMachineArn,
        REQUESTERS: requesters.join(','),
        APPROVERS: approvers.join(','),
        INSTANCE_CLASSES: rules.instanceClasses.join(','),
      },
      bundling: { target: 'node24', minify: true, sourceMap: true, externalModules: ['@aws-sdk/*'] },
    });
    this.url = this.function.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });
    for (const arn of new Set([...requesters, ...approvers])) {
      this.function.grantInvokeUrl(new iam.ArnPrincipal(arn));
    }
    grantRegistry(this.function, props.registry, {
      sid: 'TenantRegistry',
      actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'],
      writes: true,
    });
    props.stateMachine.grantStartExecution(this.function);
    new CfnOutput(this, 'Url', {
      description: 'POST onboarding and offboarding requests here, signed with SigV4 (service "lambda")',
      value: this.url.url,
    }).overrideLogicalId('EntryUrl');
    this.acknowledge();
  }

  private acknowledge(): void {
    const fn = l1(this.function);
    ack(
      fn,
      HIPAA_AND_NIST('LambdaDLQ'),
      'Invoked synchronously through its function URL: the caller gets the answer (accepted, refused, or not started and why); there is no asynchronous event to dead-letter.',
    );
    ack(
      fn,
      HIPAA_AND_NIST('LambdaConcurrency'),
      'Called by a few named principals, a few times per onboarding; each request takes a conditional lock in the registry, so concurrency cannot double anything.',
    );
    ack(
      fn,
      HIPAA_AND_NIST('LambdaInsideVPC'),
      'Calls only AWS APIs (DynamoDB, Step Functions); it never connects to a database or a tenant service.',
    );
    ack(
      l1(this.function.role!),
      AWS_SOLUTIONS(
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      ),
      'The AWS-maintained basic execution policy: write its own logs, nothing else.',
    );
  }
}
