import { Construct } from 'constructs';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { ack, AWS_SOLUTIONS, l1 } from '../nag';
import { incarnationSuffix } from './names';

export interface BackupProps {
  /** Encrypts the recovery points. */
  readonly key: kms.IKey;
  /** What to back up. */
  readonly resources: backup.BackupResource[];
  /**
   * How long daily recovery points are kept.
   * @default 35
   */
  readonly retentionDays?: number;
}

/**
 * Daily AWS Backup recovery points in a vault of the cell's own, encrypted with the cell's key. They outlive
 * the resource: a tenant offboarded by mistake, or a database deleted outside CloudFormation, can be restored.
 */
export class Backup extends Construct {
  readonly plan: backup.BackupPlan;

  constructor(scope: Construct, id: string, props: BackupProps) {
    super(scope, id);
    // Kept when the stack goes (its recovery points outlive the tenant's stack), so its name carries the stack's
    // incarnation: a stack created again never collides with the vault an earlier one left.
    const vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: `${Stack.of(this).stackName}-${incarnationSuffix(this)}`,
      encryptionKey: props.key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.plan = new backup.BackupPlan(this, 'Plan', {
      backupVault: vault,
      backupPlanRules: [
        new backup.BackupPlanRule({
          ruleName: 'daily',
          scheduleExpression: events.Schedule.cron({ hour: '3', minute: '0' }),
          deleteAfter: Duration.days(props.retentionDays ?? 35),
        }),
      ],
    });
    const selection = this.plan.addSelection('Selection', {
      resources: props.resources,
      allowRestores: true,
    });
    for (const policy of ['AWSBackupServiceRolePolicyForBackup', 'AWSBackupServiceRolePolicyForRestores']) {
      ack(
        l1(selection.grantPrincipal as iam.Role),
        AWS_SOLUTIONS(`IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/${policy}]`),
        'AWS Backup requires its AWS-maintained service-role policies to snapshot and restore the selected resources.',
      );
    }
  }
}
