import { Construct } from 'constructs';
import { CustomResource, Fn, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import {
  IsolationModel,
  MOBILITY_RUNNER_NAMES,
  siloMobilityRunnerName,
  PROVISIONER_RESOURCE_TYPES,
  ssmNames,
  TenantPhase,
} from '../../contracts';
import { RUNTIME_ROLES, runtimeLogins } from '../../db/roles';
import { runtimeSlotsFor } from '../cell-size';
import { BOOTSTRAP_REVISION, LATEST_VERSION } from '../../db/migrations';
import { ApiService } from './api-service';
import { DataKey } from './data-key';
import { CellDatabase, Database } from './database';
import { ServerlessDatabase } from './serverless-database';
import { SiloEgress } from '../silo-profiles';
import { Network } from './network';
import { Backup } from './backup-plan';
import { HEX_KEY_SECRET, TenantProvisioner } from './tenant-provisioner';
import { MobilityRunner } from './mobility-runner';
import { INCARNATION_CONTEXT } from './names';
import { ack, AWS_SOLUTIONS, HIPAA_AND_NIST, l1 } from '../nag';
import { ApiImageRef } from './api-image';
import { grantRegistry, registryRef } from './registry-access';

/** The version of the application schema (db/migrations) the provisioner applies. */
export const SCHEMA_VERSION = String(LATEST_VERSION);

export interface CellProps {
  readonly model: IsolationModel;
  /** The release's API image. */
  readonly image: ApiImageRef;
  /**
   * The VPC range. Exactly one of `cidr` and `ipamPoolId`.
   * @default - a range allocated from `ipamPoolId`
   */
  readonly cidr?: string;
  /**
   * The VPC IP Address Manager pool to allocate the VPC's range from.
   * @default - `cidr`
   */
  readonly ipamPoolId?: string;
  /**
   * Where the stack is in its life (deletion protection is on in `steady` only).
   * @default 'steady'
   */
  readonly phase?: TenantPhase;
  /** Shown on the KMS key. */
  readonly description: string;
  /** @default 't4g.medium' */
  readonly instanceClass?: string;
  /** @default true */
  readonly multiAz?: boolean;
  /** @default 14 */
  readonly backupRetentionDays?: number;
  /** RDS storage in GiB. @default 50 */
  readonly storageGiB?: number;
  /** The most storage autoscaling may grow it to. @default 4x storageGiB */
  readonly maxStorageGiB?: number;
  /**
   * An Aurora PostgreSQL Serverless v2 cluster instead of an RDS instance (`instanceClass` and `multiAz` then
   * do not apply).
   * @default - an RDS PostgreSQL instance
   */
  readonly serverless?: {
    readonly minAcu: number;
    readonly maxAcu: number;
    readonly autoPauseMinutes: number;
  };
  /**
   * How the API tasks and the provisioner reach AWS APIs (lib/silo-profiles.ts `SiloEgress`).
   * @default 'nat-per-az'
   */
  readonly egress?: SiloEgress;
  /**
   * The API's minimum task count and task size.
   * @default { count: 2, cpu: 512, memoryMiB: 1024 }
   */
  readonly tasks?: { readonly count: number; readonly cpu: number; readonly memoryMiB: number };
  /** @default false - data, keys and logs are retained when the stack is destroyed */
  readonly disposable?: boolean;
  /**
   * Restore the database from this snapshot (see `DatabaseProps.snapshotIdentifier`).
   * @default - a new, empty database
   */
  readonly snapshotIdentifier?: string;
  /** Silo only: the one tenant this cell serves (its API refuses every other). */
  readonly siloTenantId?: string;
  /**
   * Name what the cell keeps when it goes (log groups, backup vault) with the first part of its own key's id, not
   * the stack's: for a cell a move adds to a tenant's stack, which may remove it again (a rollback) and add another
   * later, while the stack's id stays the same.
   * @default false - the stack's incarnation (names.ts incarnationSuffix)
   */
  readonly incarnationFromKey?: boolean;
}

/**
 * One complete, isolated copy of the runtime: key, network, database, API service and tenant provisioner.
 * The Pool and Bridge stacks each hold one, shared by their tenants; every silo tenant has its own.
 */
export class Cell extends Construct {
  readonly key: DataKey;
  readonly network: Network;
  readonly database: CellDatabase;
  /** Where the cell's alarms go. */
  readonly alarmTopic: sns.Topic;
  /** The key tenant context credentials are signed and verified with (db/context.ts). */
  readonly contextKey: secretsmanager.Secret;
  readonly api: ApiService;
  readonly provisioner: TenantProvisioner;
  /** One tenant's data to the cell's archive bucket and back (npm run tenant -- export|restore --aws). */
  readonly mobility: MobilityRunner;
  readonly bootstrap: CustomResource;
  /** Absent for disposable cells, whose data is meant to go with them. */
  readonly backup?: Backup;

  constructor(
    scope: Construct,
    id: string,
    readonly props: CellProps,
  ) {
    super(scope, id);
    if ((props.model === 'silo') !== (props.siloTenantId !== undefined)) {
      throw new Error(
        `Cell ${id}: siloTenantId is required for a silo cell and only for one (model "${props.model}")`,
      );
    }
    const disposable = props.disposable ?? false;
    if (props.incarnationFromKey) {
      // Set before any child exists; read when a name is made, by which time the key is there.
      this.node.setContext(INCARNATION_CONTEXT, () => Fn.select(0, Fn.split('-', this.key.key.keyId)));
    }
    this.key = new DataKey(this, 'DataKey', { description: props.description, disposable });
    const egress = props.egress ?? 'nat-per-az';
    this.network = new Network(this, 'Network', {
      cidr: props.cidr,
      ipamPoolId: props.ipamPoolId,
      key: this.key.key,
      disposable,
      egress,
    });
    const vpc = this.network.vpc;
    // The cell's alarms (the database's memory, ...): subscribe the on-call to this topic.
    this.alarmTopic = new sns.Topic(this, 'Alarms', {
      displayName: `${props.description ?? id}: alarms`,
      masterKey: this.key.key,
      enforceSSL: true,
    });
    this.key.allowCloudWatchAlarms();
    const common = {
      vpc,
      alarmTopic: this.alarmTopic,
      key: this.key.key,
      backupRetentionDays: props.backupRetentionDays,
      disposable,
      phase: props.phase,
      snapshotIdentifier: props.snapshotIdentifier,
    };
    this.database = props.serverless
      ? new ServerlessDatabase(this, 'Database', { ...common, ...props.serverless })
      : new Database(this, 'Database', {
          ...common,
          instanceClass: props.instanceClass,
          multiAz: props.multiAz,
          allocatedStorageGiB: props.storageGiB,
          maxAllocatedStorageGiB: props.maxStorageGiB,
        });

    // The tenant context key (db/context.ts): the database verifies every unit of work's credential with it, so
    // the API (which signs credentials) and the provisioner (which installs it at bootstrap) hold it, nobody
    // else. 64 hex characters; encrypted with the cell's key.
    this.contextKey = new secretsmanager.Secret(this, 'ContextKey', {
      description: `${props.description ?? id}: the key tenant context credentials are signed with`,
      encryptionKey: this.key.key,
      generateSecretString: HEX_KEY_SECRET,
      removalPolicy: disposable ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
    ack(
      l1(this.contextKey),
      HIPAA_AND_NIST('SecretsManagerRotationEnabled'),
      'The context key is rotated by replacing the secret value and redeploying: the bootstrap installs the new key in the database and the API tasks restart with it (a rotation Lambda could not do both at once without failing units of work in flight).',
    );
    ack(
      l1(this.contextKey),
      AWS_SOLUTIONS('SMG4'),
      'The context key is rotated by replacing the secret value and redeploying: the bootstrap installs the new key in the database and the API tasks restart with it (a rotation Lambda could not do both at once without failing units of work in flight).',
    );
    const registry = registryRef(this);
    const runtimeRole = RUNTIME_ROLES[props.model];
    // A shared cell's connections each sign in as a slot role of their own (db/slots.ts, I8).
    const runtimeSlots = props.model === 'silo' ? undefined : runtimeSlotsFor(props.tasks?.count ?? 2);
    this.api = new ApiService(this, 'Api', {
      vpc,
      key: this.key.key,
      model: props.model,
      image: props.image,
      disposable,
      phase: props.phase,
      alarmTopic: this.alarmTopic,
      egress,
      desiredCount: props.tasks?.count,
      cpu: props.tasks?.cpu,
      memoryLimitMiB: props.tasks?.memoryMiB,
      environment: {
        DB_HOST: this.database.endpointAddress,
        DB_PORT: String(this.database.port),
        DB_NAME: this.database.databaseName,
        DB_USER: runtimeRole,
        DB_AUTH: 'iam',
        ...(runtimeSlots ? { DB_SLOTS: String(runtimeSlots) } : {}),
        REGISTRY_TABLE: registry.tableName,
        USER_POOL_ID: ssm.StringParameter.valueForStringParameter(this, ssmNames.userPoolId),
        USER_POOL_CLIENT_ID: ssm.StringParameter.valueForStringParameter(this, ssmNames.userPoolClientId),
        ...(props.siloTenantId ? { SILO_TENANT_ID: props.siloTenantId } : {}),
        // A database that pauses when idle: health checks must not wake it (service/src/db-health.ts), and the
        // first connection after a pause waits for it to resume (about 15 s) instead of failing after 3 s.
        ...(props.serverless?.minAcu === 0 ? { DB_IDLE_PROBES: 'off', DB_CONNECT_TIMEOUT_MS: '30000' } : {}),
      },
      secrets: { CONTEXT_KEY: ecs.Secret.fromSecretsManager(this.contextKey) },
    });
    this.database.allowFrom(this.api.securityGroup, 'API service');
    // The API reads tenants' registry items, never writes them; a silo's API reads its own tenant's item only.
    grantRegistry(this.api.taskDefinition.taskRole, registry, {
      sid: 'ReadTenantRegistry',
      actions: ['dynamodb:GetItem'],
      writes: false,
      tenantId: props.siloTenantId,
    });
    if (!disposable) {
      this.backup = new Backup(this, 'Backup', {
        key: this.key.key,
        resources: [this.database.backupResource],
      });
    }
    // The API signs in as its runtime role (a shared cell's: its slot roles) with a short-lived IAM token: no
    // password exists for it.
    this.database.grantConnect(this.api.taskDefinition.taskRole, runtimeLogins(props.model));
    // For the release that brings the slot roles: while it rolls out, the earlier release's tasks (with this task
    // role) still sign in as the runtime role itself, which stays LOGIN until a later bootstrap (CHANGELOG).
    if (runtimeSlots) this.database.grantConnect(this.api.taskDefinition.taskRole, runtimeRole);

    // The cell's functions that work on its database: the provisioner and the mobility runner.
    const dataFunctions = {
      vpc,
      database: this.database,
      key: this.key.key,
      model: props.model,
      registry,
      tenantId: props.siloTenantId,
      contextKey: this.contextKey,
      disposable,
      ipv6Egress: this.network.ipv6Egress,
      runtimeSlots,
    };
    this.provisioner = new TenantProvisioner(this, 'Provisioner', dataFunctions);
    this.mobility = new MobilityRunner(this, 'Mobility', {
      ...dataFunctions,
      accessLogs: this.api.accessLogs,
      functionName:
        props.model === 'silo'
          ? siloMobilityRunnerName(props.siloTenantId!)
          : MOBILITY_RUNNER_NAMES[props.model],
      workflow: props.model === 'silo' ? 'restore' : 'vouchAndRestore',
      image: props.image,
      cluster: this.api.cluster,
    });
    const destroyPolicy = this.mobility.letDestroyArchives(this.provisioner);
    this.bootstrap = new CustomResource(this, 'DatabaseBootstrap', {
      serviceToken: this.provisioner.serviceToken,
      resourceType: PROVISIONER_RESOURCE_TYPES.bootstrap,
      properties: {
        Model: props.model,
        SchemaVersion: SCHEMA_VERSION,
        Revision: String(BOOTSTRAP_REVISION),
        // A change re-runs the bootstrap, which makes the new slot roles before the API's tasks use them.
        ...(runtimeSlots ? { RuntimeSlots: String(runtimeSlots) } : {}),
      },
    });
    // The handler's permissions outlive every resource it serves: a silo's tenant resource depends on the
    // bootstrap, so its Delete (which may delete archives) runs before these policies are detached.
    this.bootstrap.node.addDependency(this.provisioner.handlerPolicy, destroyPolicy);
    // The API's tasks start only once their runtime role exists: on a first deploy they would otherwise refuse
    // to start, trip the circuit breaker and roll the stack back.
    this.api.service.node.addDependency(this.bootstrap);
  }

  /** Publishes where this cell's API is (endpoint, and the ECS service and target group readiness reads). */
  publishApi(scope: Construct, names: { endpoint: string; service: string }): void {
    new ssm.StringParameter(scope, 'ApiEndpoint', {
      parameterName: names.endpoint,
      stringValue: `https://${this.api.loadBalancer.loadBalancerDnsName}`,
    });
    new ssm.StringParameter(scope, 'ApiService', {
      parameterName: names.service,
      stringValue: Stack.of(this).toJsonString({
        cluster: this.api.service.cluster.clusterName,
        service: this.api.service.serviceName,
        targetGroupArn: this.api.targetGroup.targetGroupArn,
      }),
    });
  }
}
