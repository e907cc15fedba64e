import { Construct } from 'constructs';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as backup from 'aws-cdk-lib/aws-backup';
import { TenantPhase } from '../../contracts';
import { ack, AWS_SOLUTIONS, childOfType, HIPAA_AND_NIST, l1, logicalIdOf, partitionOf } from '../nag';
import { PHASE_REASONS } from './api-service';

export interface DatabaseProps {
  readonly vpc: ec2.IVpc;
  /** Encrypts storage, the master secret, Performance Insights and exported logs' snapshots. */
  readonly key: kms.IKey;
  /**
   * RDS instance class without the `db.` prefix.
   * @default 't4g.medium'
   */
  readonly instanceClass?: string;
  /** @default true - a standby in a second AZ */
  readonly multiAz?: boolean;
  /** @default 14 */
  readonly backupRetentionDays?: number;
  /**
   * A test database: no deletion protection, no final snapshot, deleted with its stack.
   * @default false - deletion protection on, a final snapshot on delete
   */
  readonly disposable?: boolean;
  /**
   * Allocated storage in GiB (it grows automatically up to 4x).
   * @default 50
   */
  readonly allocatedStorageGiB?: number;
  /**
   * The most storage autoscaling may grow it to.
   * @default 4x allocatedStorageGiB
   */
  readonly maxAllocatedStorageGiB?: number;
  /**
   * Where the stack is in its life: the instance is deletion-protected in `steady` only (and never when
   * disposable), so a failed first deploy rolls back and offboarding needs no right to modify databases.
   * @default 'steady'
   */
  readonly phase?: TenantPhase;
  /**
   * Restore the instance from this snapshot (an offboarded silo tenant brought back). It must stay set for the
   * instance's life: CloudFormation replaces a restored instance with an empty one when the property goes away.
   * @default - a new, empty database
   */
  readonly snapshotIdentifier?: string;
  /**
   * Where the database's alarms go (the cell's alarm topic).
   * @default - no alarms
   */
  readonly alarmTopic?: sns.ITopic;
}

/** A restored instance keeps its snapshot's storage, whatever it grew to: it may autoscale up to this. */
export const RESTORED_MAX_STORAGE_GIB = 1000;

/** The PostgreSQL major version every cell runs. A fleet-wide upgrade is one change here. */
export const POSTGRES_VERSION = rds.PostgresEngineVersion.VER_18;

/**
 * A cell's database, whatever runs it (an RDS instance, or an Aurora Serverless v2 cluster for the idle-friendly
 * silo profile): what the API, the provisioner and the backup plan need of it.
 */
export interface CellDatabase {
  readonly securityGroup: ec2.SecurityGroup;
  /** The Secrets Manager secret that RDS manages for the master user. */
  readonly secretArn: string;
  readonly port: number;
  readonly databaseName: string;
  /** The host name the API and the provisioner connect to (the writer). */
  readonly endpointAddress: string;
  /** What AWS Backup selects (the instance, or the cluster: Aurora is backed up as a cluster). */
  readonly backupResource: backup.BackupResource;
  /** Admits PostgreSQL connections from `peer`'s security group, and nothing else. */
  allowFrom(peer: ec2.ISecurityGroup, description: string): void;
  /** Lets `grantee` sign in as `user` with a short-lived IAM token (rds-db:connect). */
  grantConnect(grantee: iam.IGrantable, user: string): void;
}

/** The parameters every cell's PostgreSQL runs with, RDS or Aurora. */
export const SERVER_PARAMETERS: Readonly<Record<string, string>> = {
  'rds.force_ssl': '1',
  ssl_min_protocol_version: 'TLSv1.2',
  password_encryption: 'scram-sha-256',
  log_connections: '1',
  log_disconnections: '1',
  log_statement: 'ddl',
  log_min_duration_statement: '1000',
};

/**
 * The shared cells' RDS instances (and RDS silos) also end the session of a client that vanished (a mobility
 * runner stopped at its timeout mid-transaction, holding a tenant's operation lock) after about 2 minutes of
 * silence, so the lock is free again for the workflow's thaw (lambda/tenant-provisioner/mobility-replace.ts). Not
 * set on the Aurora silo profile, whose runner takes no such step: its parameter group keeps Aurora's defaults.
 */
export const KEEPALIVE_PARAMETERS: Readonly<Record<string, string>> = {
  tcp_keepalives_idle: '60',
  tcp_keepalives_interval: '10',
  tcp_keepalives_count: '6',
};

/**
 * An RDS PostgreSQL instance locked down for tenant data: isolated subnets, not public, storage and master
 * secret encrypted with the cell's key, TLS enforced by the server (`rds.force_ssl`), IAM authentication,
 * enhanced monitoring, logs exported, and a master password that RDS itself rotates in Secrets Manager.
 *
 * Its security group admits nobody: callers are allowed in one by one with `allowFrom`.
 */
export class Database extends Construct implements CellDatabase {
  readonly instance: rds.DatabaseInstance;
  readonly securityGroup: ec2.SecurityGroup;
  /** The Secrets Manager secret that RDS manages for the master user. */
  readonly secretArn: string;
  readonly port = 5432;
  /** The application database every provisioner and service connects to. */
  readonly databaseName = 'saas';

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const disposable = props.disposable ?? false;
    this.securityGroup = databaseSecurityGroup(this, props.vpc);
    const engine = rds.DatabaseInstanceEngine.postgres({ version: POSTGRES_VERSION });
    const parameterGroup = new rds.ParameterGroup(this, 'Parameters', {
      engine,
      description: 'TLS only, SCRAM passwords, connection and DDL audit logging',
      parameters: { ...SERVER_PARAMETERS, ...KEEPALIVE_PARAMETERS },
    });
    this.instance = new rds.DatabaseInstance(this, 'Instance', {
      engine,
      parameterGroup,
      instanceType: new ec2.InstanceType(props.instanceClass ?? 't4g.medium'),
      vpc: props.vpc,
      // The data tier only: a NAT-less silo's `app` tier is isolated too, and must never hold the database.
      vpcSubnets: { subnetGroupName: 'data' },
      securityGroups: [this.securityGroup],
      publiclyAccessible: false,
      port: this.port,
      databaseName: this.databaseName,
      multiAz: props.multiAz ?? true,
      allocatedStorage: props.allocatedStorageGiB ?? 50,
      maxAllocatedStorage: props.maxAllocatedStorageGiB ?? (props.allocatedStorageGiB ?? 50) * 4,
      storageType: rds.StorageType.GP3,
      storageEncrypted: true,
      storageEncryptionKey: props.key,
      manageMasterUserPassword: true,
      credentials: rds.Credentials.fromUsername('postgres', { encryptionKey: props.key }),
      iamAuthentication: true,
      caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      backupRetention: Duration.days(props.backupRetentionDays ?? 14),
      copyTagsToSnapshot: true,
      deletionProtection: !disposable && (props.phase ?? 'steady') === 'steady',
      removalPolicy: disposable ? RemovalPolicy.DESTROY : RemovalPolicy.SNAPSHOT,
      autoMinorVersionUpgrade: true,
      cloudwatchLogsExports: ['postgresql', 'upgrade'],
      monitoringInterval: Duration.seconds(60),
      enablePerformanceInsights: true,
      performanceInsightEncryptionKey: props.key,
    });
    const cfn = this.instance.node.defaultChild as rds.CfnDBInstance;
    if (props.snapshotIdentifier) {
      // Name, master user and encryption (with the key the snapshot was taken with: the tenant's own, kept when
      // it was offboarded) all come from the snapshot; CloudFormation refuses them beside a snapshot.
      cfn.addPropertyOverride('DBSnapshotIdentifier', props.snapshotIdentifier);
      // Storage too: the snapshot's (it may have grown past the template's), which RDS cannot restore into less.
      for (const p of ['DBName', 'MasterUsername', 'KmsKeyId', 'StorageEncrypted', 'AllocatedStorage'])
        cfn.addPropertyDeletionOverride(p);
      cfn.addPropertyOverride('MaxAllocatedStorage', RESTORED_MAX_STORAGE_GIB);
    }
    this.secretArn = cfn.attrMasterUserSecretSecretArn;
    if (props.alarmTopic) {
      this.alarmOnLowMemory(props.instanceClass ?? 't4g.medium', props.alarmTopic);
      this.alarmOnBurstableCpu(props.instanceClass ?? 't4g.medium', props.alarmTopic);
    }
    this.acknowledge(disposable, props.multiAz ?? true, props.phase ?? 'steady', props.snapshotIdentifier);
  }

  /**
   * Each backend keeps the catalog entries of every schema it touched (a bridge cell's per-tenant schemas): when
   * they crowd out the page cache, the database slows and then fails connections. The alarm fires when freeable
   * memory stays under a tenth of the instance's memory for 15 minutes (README: sizing a bridge cell).
   */
  private alarmOnLowMemory(instanceClass: string, topic: sns.ITopic): void {
    const gib = instanceMemoryGiB(instanceClass);
    const alarm = new cloudwatch.Alarm(this, 'LowFreeableMemory', {
      alarmDescription: `FreeableMemory below 10% of ${gib} GiB (${instanceClass}) for 15 minutes: see the README's bridge sizing rule`,
      metric: this.instance.metricFreeableMemory({ period: Duration.minutes(5), statistic: 'Minimum' }),
      threshold: Math.round(gib * 0.1 * 1024 ** 3),
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new cloudwatchActions.SnsAction(topic));
    alarm.addOkAction(new cloudwatchActions.SnsAction(topic));
  }

  /**
   * RDS runs T classes in Unlimited mode: never throttled, but CPU above the class's baseline is billed as credits.
   * Past about half its CPU, sustained, the credits add up (for db.t4g.large, to more than db.m6g.large with its
   * memory would cost: README, "Shared cell profiles") and the database is short of headroom: the alarm says so
   * and names the fix. Other classes have no credits to run up.
   */
  private alarmOnBurstableCpu(instanceClass: string, topic: sns.ITopic): void {
    if (!instanceClass.startsWith('t')) return;
    const alarm = new cloudwatch.Alarm(this, 'SustainedBurstableCpu', {
      alarmDescription: `CPUUtilization of ${instanceClass} above 50% on average for 3 hours: a burstable class bills the CPU it uses above its baseline as credits and has little headroom left: move to a larger or general-purpose class (a shared cell: a larger sharedCells.<model>.plannedTenants, or the standard cell profile; a silo: settings.instanceClass)`,
      metric: this.instance.metricCPUUtilization({ period: Duration.hours(1), statistic: 'Average' }),
      threshold: 50,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new cloudwatchActions.SnsAction(topic));
    alarm.addOkAction(new cloudwatchActions.SnsAction(topic));
  }

  private acknowledge(disposable: boolean, multiAz: boolean, phase: TenantPhase, snapshot?: string): void {
    const instance = l1(this.instance);
    if (snapshot) {
      ack(
        instance,
        HIPAA_AND_NIST('RDSStorageEncrypted'),
        `Restored from snapshot ${snapshot}, the tenant's own final snapshot, which is encrypted with the tenant's own key (kept when it was offboarded); an instance restored from an encrypted snapshot is encrypted with that key, and CloudFormation refuses StorageEncrypted beside a snapshot.`,
      );
    }
    ack(
      instance,
      AWS_SOLUTIONS('RDS11'),
      'The default port is kept so standard PostgreSQL tooling works; the security group admits only the API tasks and the provisioner, and the instance is in isolated subnets, so a changed port would add no control.',
    );
    ack(
      l1(childOfType(this.instance, iam.Role)),
      AWS_SOLUTIONS(
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]',
      ),
      'Enhanced Monitoring requires this AWS-maintained service-role policy; it only lets RDS write OS metrics to CloudWatch Logs.',
    );
    // Only for databases whose tenant's catalog entry declares them disposable or single-AZ.
    if (disposable) {
      const why = `The tenant catalog declares this tenant disposable (settings.deletionPolicy "destroy"): a test tenant whose data is meant to be deleted with its stack.`;
      ack(instance, [AWS_SOLUTIONS('RDS10'), ...HIPAA_AND_NIST('RDSInstanceDeletionProtectionEnabled')], why);
      ack(instance, HIPAA_AND_NIST('RDSInBackupPlan'), why + ' Automated RDS backups still run.');
    } else if (phase !== 'steady') {
      ack(
        instance,
        [AWS_SOLUTIONS('RDS10'), ...HIPAA_AND_NIST('RDSInstanceDeletionProtectionEnabled')],
        PHASE_REASONS[phase],
      );
    }
    if (!multiAz) {
      ack(
        instance,
        [AWS_SOLUTIONS('RDS3'), ...HIPAA_AND_NIST('RDSMultiAZSupport')],
        'The tenant catalog sets settings.multiAz false for this tenant, accepting single-AZ availability; every other control (encryption, backups, TLS) is unchanged.',
      );
    }
  }

  get endpointAddress(): string {
    return this.instance.dbInstanceEndpointAddress;
  }

  get backupResource(): backup.BackupResource {
    return backup.BackupResource.fromRdsDatabaseInstance(this.instance);
  }

  allowFrom(peer: ec2.ISecurityGroup, description: string): void {
    this.securityGroup.addIngressRule(peer, ec2.Port.tcp(this.port), description);
  }

  grantConnect(grantee: iam.IGrantable, user: string): void {
    this.instance.grantConnect(grantee, user);
    if (user.endsWith('*')) {
      // A shared cell's slot roles (db/slots.ts): hundreds of login roles of one runtime role, too many to list.
      const stack = Stack.of(this);
      const policy = (grantee.grantPrincipal as iam.Role).node.tryFindChild('DefaultPolicy');
      if (!policy)
        throw new Error(`grantConnect: ${user} is granted to a principal without a default policy`);
      ack(
        l1(policy),
        AWS_SOLUTIONS(
          `IAM5[Resource::arn:${partitionOf(stack)}:rds-db:${stack.region}:<AWS::AccountId>:dbuser:<${logicalIdOf(l1(this.instance))}.DbiResourceId>/${user}]`,
        ),
        `Signs in to this cell's database only, as one of its runtime role's slot roles (${user}: one login role per connection, which the bootstrap makes and nothing else may create; docs/threat-model.md I8). Each slot role has the runtime role's privileges and no more; listing every slot would exceed a policy's size.`,
      );
    }
  }
}

/** A database's security group: it admits nobody until `allowFrom`, and the database calls out to nothing. */
export function databaseSecurityGroup(scope: Construct, vpc: ec2.IVpc): ec2.SecurityGroup {
  return new ec2.SecurityGroup(scope, 'SecurityGroup', {
    vpc,
    description: 'PostgreSQL: admits only the security groups granted with allowFrom',
    allowAllOutbound: false,
  });
}

/** Memory of the RDS instance classes the catalog allows by default (GiB); others are read from their size. */
export function instanceMemoryGiB(instanceClass: string): number {
  const [family, size] = instanceClass.split('.');
  const perSize: Record<string, number> = { micro: 1, small: 2, medium: 4, large: 8, xlarge: 16 };
  const multiple = /^(\d+)xlarge$/.exec(size ?? '');
  const base = multiple ? 16 * Number(multiple[1]) : (perSize[size ?? ''] ?? 8);
  // Memory-optimized families (r*, x*) have twice the memory of the general-purpose ones at the same size.
  return /^[rx]/.test(family ?? '') ? base * 2 : base;
}
