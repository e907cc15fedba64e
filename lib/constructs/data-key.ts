import { Construct } from 'constructs';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { logGroupPrefix, wafLogGroupPrefix } from '../../contracts';

export interface DataKeyProps {
  /** What the key protects, shown in the KMS console. */
  readonly description: string;
  /**
   * Schedule the key for deletion when its stack is destroyed. Only for disposable tenants: a deleted key makes
   * every snapshot and backup encrypted with it unreadable.
   * @default false - the key is retained
   */
  readonly disposable?: boolean;
}

/**
 * A customer-managed KMS key with yearly rotation. One per silo tenant (its data is readable only through its
 * own key, and revoking the key crypto-shreds the tenant) and one per shared stack. CloudWatch Logs may use it
 * for this stack's own log groups only.
 */
export class DataKey extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: DataKeyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.key = new kms.Key(this, 'Key', {
      description: props.description,
      enableKeyRotation: true,
      pendingWindow: Duration.days(30),
      removalPolicy: props.disposable ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
    // CloudWatch Logs may use the key only for this stack's own log groups (their names are under the stack's
    // prefixes; see EncryptedLogGroup), never for any other log group in the account.
    const logGroups = [logGroupPrefix, wafLogGroupPrefix].map(
      (prefix) =>
        `arn:${stack.partition}:logs:${stack.region}:${stack.account}:log-group:${prefix(stack.stackName)}*`,
    );
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchLogsForThisStacksLogGroups',
        principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': logGroups } },
      }),
    );
  }

  /**
   * CloudWatch alarms publish to topics encrypted with this key: CloudWatch may generate and read data keys for
   * that, from this account only.
   */
  allowCloudWatchAlarms(): void {
    const stack = Stack.of(this);
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    );
  }
}
