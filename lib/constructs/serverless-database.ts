import { Construct } from 'constructs';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as sns from 'aws-cdk-lib/aws-sns';
import { TenantPhase } from '../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, HIPAA_AND_NIST, l1 } from '../nag';
import { PHASE_REASONS } from './api-service';
import { CellDatabase, databaseSecurityGroup, SERVER_PARAMETERS } from './database';

/**
 * The Aurora PostgreSQL version of serverless cells. RDS cells run PostgreSQL 18; the newest Aurora PostgreSQL in
 * CloudFormation's own list of engine versions (as cfn-lint carries it) is 17.9, so serverless silos run 17 until
 * Aurora offers 18 (a change here, with `AllowMajorVersionUpgrade` on the cluster for that deploy: CloudFormation
 * refuses a major upgrade without it). The data plane's suites pass on PostgreSQL 17 as well (README: "Silo cost
 * profiles").
 */
export const AURORA_POSTGRES_VERSION = rds.AuroraPostgresEngineVersion.VER_17_9;

export interface ServerlessDatabaseProps {
  readonly vpc: ec2.IVpc;
  /** Encrypts storage, the master secret and Performance Insights. */
  readonly key: kms.IKey;
  /** Aurora capacity units; 0 lets the cluster pause when idle. */
  readonly minAcu: number;
  readonly maxAcu: number;
  /** Idle time before the cluster pauses (only with `minAcu` 0). */
  readonly autoPauseMinutes: number;
  /** @default 14 */
  readonly backupRetentionDays?: number;
  /** @default false - deletion protection on, a final snapshot on delete */
  readonly disposable?: boolean;
  /** @default 'steady' */
  readonly phase?: TenantPhase;
  /**
   * Restore the cluster from this cluster snapshot (an offboarded silo tenant brought back); it must stay set for
   * the cluster's life, like an RDS instance's.
   * @default - a new, empty database
   */
  readonly snapshotIdentifier?: string;
  /** @default - no alarms */
  readonly alarmTopic?: sns.ITopic;
}

/**
 * An Aurora PostgreSQL Serverless v2 cluster with one writer, locked down like `Database`: isolated subnets,
 * not public, storage and master secret encrypted with the cell's key, TLS enforced, IAM authentication, logs
 * exported, enhanced monitoring, a master password RDS rotates. Its storage is kept in three AZs; with a
 * minimum of 0 ACU it pauses when no connection has been open for `autoPauseMinutes` and bills no compute until
 * the next connection wakes it (about 15 seconds).
 */
export class ServerlessDatabase extends Construct implements CellDatabase {
  readonly cluster: rds.DatabaseCluster;
  readonly securityGroup: ec2.SecurityGroup;
  readonly secretArn: string;
  readonly port = 5432;
  readonly databaseName = 'saas';

  constructor(scope: Construct, id: string, props: ServerlessDatabaseProps) {
    super(scope, id);
    const disposable = props.disposable ?? false;
    const phase = props.phase ?? 'steady';
    this.securityGroup = databaseSecurityGroup(this, props.vpc);
    const engine = rds.DatabaseClusterEngine.auroraPostgres({ version: AURORA_POSTGRES_VERSION });
    this.cluster = new rds.DatabaseCluster(this, 'Cluster', {
      engine,
      parameterGroup: new rds.ParameterGroup(this, 'Parameters', {
        engine,
        description: 'TLS only, SCRAM passwords, connection and DDL audit logging',
        parameters: { ...SERVER_PARAMETERS },
      }),
      writer: rds.ClusterInstance.serverlessV2('Writer', {
        publiclyAccessible: false,
        autoMinorVersionUpgrade: true,
        enablePerformanceInsights: true,
        performanceInsightEncryptionKey: props.key,
        caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      }),
      serverlessV2MinCapacity: props.minAcu,
      serverlessV2MaxCapacity: props.maxAcu,
      ...(props.minAcu === 0
        ? { serverlessV2AutoPauseDuration: Duration.minutes(props.autoPauseMinutes) }
        : {}),
      vpc: props.vpc,
      // The data tier only: this silo's `app` tier is isolated too, and must never hold the database.
      vpcSubnets: { subnetGroupName: 'data' },
      securityGroups: [this.securityGroup],
      port: this.port,
      defaultDatabaseName: this.databaseName,
      credentials: rds.Credentials.fromUsername('postgres', { encryptionKey: props.key }),
      manageMasterUserPassword: true,
      storageEncrypted: true,
      storageEncryptionKey: props.key,
      iamAuthentication: true,
      backup: { retention: Duration.days(props.backupRetentionDays ?? 14) },
      copyTagsToSnapshot: true,
      deletionProtection: !disposable && phase === 'steady',
      removalPolicy: disposable ? RemovalPolicy.DESTROY : RemovalPolicy.SNAPSHOT,
      cloudwatchLogsExports: ['postgresql'],
      monitoringInterval: Duration.seconds(60),
    });
    const cfn = this.cluster.node.defaultChild as rds.CfnDBCluster;
    if (props.snapshotIdentifier) {
      // As for an RDS instance: name, master user and encryption (the tenant's own key) come from the snapshot.
      cfn.addPropertyOverride('SnapshotIdentifier', props.snapshotIdentifier);
      // The engine version too: a snapshot taken after an automatic minor upgrade cannot go back to the pinned one.
      for (const p of ['DatabaseName', 'MasterUsername', 'KmsKeyId', 'StorageEncrypted', 'EngineVersion'])
        cfn.addPropertyDeletionOverride(p);
    }
    this.secretArn = cfn.attrMasterUserSecretSecretArn;
    if (props.alarmTopic) this.alarmAtCapacityLimit(props.maxAcu, props.alarmTopic);
    this.acknowledge(disposable, phase, props.snapshotIdentifier);
  }

  get endpointAddress(): string {
    return this.cluster.clusterEndpoint.hostname;
  }

  get backupResource(): backup.BackupResource {
    return backup.BackupResource.fromArn(this.cluster.clusterArn);
  }

  allowFrom(peer: ec2.ISecurityGroup, description: string): void {
    this.securityGroup.addIngressRule(peer, ec2.Port.tcp(this.port), description);
  }

  grantConnect(grantee: iam.IGrantable, user: string): void {
    this.cluster.grantConnect(grantee, user);
  }

  /** A cluster that sits at its maximum capacity for 15 minutes needs a larger maximum or another profile. */
  private alarmAtCapacityLimit(maxAcu: number, topic: sns.ITopic): void {
    const alarm = new cloudwatch.Alarm(this, 'AtCapacityLimit', {
      alarmDescription: `Aurora Serverless v2 capacity at its maximum (${maxAcu} ACU) for 15 minutes: raise it, or move the tenant to the "standard" silo profile`,
      metric: this.cluster.metricServerlessDatabaseCapacity({
        period: Duration.minutes(5),
        statistic: 'Minimum',
      }),
      threshold: maxAcu,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new cloudwatchActions.SnsAction(topic));
    alarm.addOkAction(new cloudwatchActions.SnsAction(topic));
  }

  private acknowledge(disposable: boolean, phase: TenantPhase, snapshot?: string): void {
    const cluster = l1(this.cluster);
    const writer = childOfType(this.cluster.node.findChild('Writer'), rds.CfnDBInstance);
    if (snapshot) {
      ack(
        cluster,
        HIPAA_AND_NIST('RDSStorageEncrypted'),
        `Restored from cluster snapshot ${snapshot}, the tenant's own final snapshot, which is encrypted with the tenant's own key (kept when it was offboarded); a cluster restored from an encrypted snapshot is encrypted with that key, and CloudFormation refuses StorageEncrypted beside a snapshot.`,
      );
    }
    ack(
      cluster,
      AWS_SOLUTIONS('RDS11'),
      'The default port is kept so standard PostgreSQL tooling works; the security group admits only the API tasks and the provisioner, and the cluster is in isolated subnets, so a changed port would add no control.',
    );
    ack(
      writer,
      HIPAA_AND_NIST('RDSInBackupPlan'),
      disposable
        ? 'The tenant catalog declares this tenant disposable (settings.deletionPolicy "destroy"): a test tenant whose data is meant to be deleted with its stack. Automated Aurora backups still run.'
        : 'AWS Backup protects Aurora at the cluster level only: this instance is the cluster writer, and the cluster (its storage, all of its data) is selected by the cell backup plan.',
    );
    ack(
      l1(childOfType(this.cluster, iam.Role)),
      AWS_SOLUTIONS(
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]',
      ),
      'Enhanced Monitoring requires this AWS-maintained service-role policy; it only lets RDS write OS metrics to CloudWatch Logs.',
    );
    if (disposable) {
      const why = `The tenant catalog declares this tenant disposable (settings.deletionPolicy "destroy"): a test tenant whose data is meant to be deleted with its stack.`;
      ack(cluster, [AWS_SOLUTIONS('RDS10'), ...HIPAA_AND_NIST('RDSInstanceDeletionProtectionEnabled')], why);
    } else if (phase !== 'steady') {
      ack(
        cluster,
        [AWS_SOLUTIONS('RDS10'), ...HIPAA_AND_NIST('RDSInstanceDeletionProtectionEnabled')],
        PHASE_REASONS[phase],
      );
    }
  }
}
