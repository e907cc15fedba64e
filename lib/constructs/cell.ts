import { Construct } from 'constructs';
import { CustomResource } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { IsolationModel, PROVISIONER_RESOURCE_TYPES, ssmNames } from '../../contracts';
import { RUNTIME_ROLES } from '../../db/roles';
import { LATEST_VERSION } from '../../db/migrations';
import { ApiService } from './api-service';
import { DataKey } from './data-key';
import { Database } from './database';
import { Network } from './network';
import { Backup } from './backup-plan';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as iam from 'aws-cdk-lib/aws-iam';
import { TenantProvisioner } from './tenant-provisioner';

/** The version of the application schema (db/migrations) the provisioner applies. */
export const SCHEMA_VERSION = String(LATEST_VERSION);

export interface CellProps {
  readonly model: IsolationModel;
  /** The VPC range. */
  readonly cidr: string;
  /** Shown on the KMS key. */
  readonly description: string;
  /** @default 't4g.medium' */
  readonly instanceClass?: string;
  /** @default true */
  readonly multiAz?: boolean;
  /** @default 14 */
  readonly backupRetentionDays?: number;
  /** @default false - data, keys and logs are retained when the stack is destroyed */
  readonly disposable?: boolean;
  /** Silo only: the one tenant this cell serves (its API refuses every other). */
  readonly siloTenantId?: string;
}

/**
 * One complete, isolated copy of the runtime: key, network, database, API service and tenant provisioner.
 * The Pool and Bridge stacks each hold one, shared by their tenants; every silo tenant has its own.
 */
export class Cell extends Construct {
  readonly key: DataKey;
  readonly network: Network;
  readonly database: Database;
  readonly api: ApiService;
  readonly provisioner: TenantProvisioner;
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
    this.key = new DataKey(this, 'DataKey', { description: props.description, disposable });
    this.network = new Network(this, 'Network', { cidr: props.cidr, key: this.key.key, disposable });
    const vpc = this.network.vpc;
    this.database = new Database(this, 'Database', {
      vpc,
      key: this.key.key,
      instanceClass: props.instanceClass,
      multiAz: props.multiAz,
      backupRetentionDays: props.backupRetentionDays,
      disposable,
    });

    const registryTableName = ssm.StringParameter.valueForStringParameter(this, ssmNames.registryTableName);
    const registryTableArn = ssm.StringParameter.valueForStringParameter(this, ssmNames.registryTableArn);
    const runtimeRole = RUNTIME_ROLES[props.model];
    this.api = new ApiService(this, 'Api', {
      vpc,
      key: this.key.key,
      model: props.model,
      disposable,
      environment: {
        DB_HOST: this.database.instance.dbInstanceEndpointAddress,
        DB_PORT: String(this.database.port),
        DB_NAME: this.database.databaseName,
        DB_USER: runtimeRole,
        DB_AUTH: 'iam',
        REGISTRY_TABLE: registryTableName,
        USER_POOL_ID: ssm.StringParameter.valueForStringParameter(this, ssmNames.userPoolId),
        USER_POOL_CLIENT_ID: ssm.StringParameter.valueForStringParameter(this, ssmNames.userPoolClientId),
        ...(props.siloTenantId ? { SILO_TENANT_ID: props.siloTenantId } : {}),
      },
    });
    this.database.allowFrom(this.api.securityGroup, 'API service');
    this.api.taskDefinition.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadTenantRegistry',
        actions: ['dynamodb:GetItem'],
        resources: [registryTableArn],
      }),
    );
    if (!disposable) {
      this.backup = new Backup(this, 'Backup', {
        key: this.key.key,
        resources: [backup.BackupResource.fromRdsDatabaseInstance(this.database.instance)],
      });
    }
    // The API signs in as its runtime role with a short-lived IAM token: no password exists for it.
    this.database.instance.grantConnect(this.api.taskDefinition.taskRole, runtimeRole);

    this.provisioner = new TenantProvisioner(this, 'Provisioner', {
      vpc,
      database: this.database,
      key: this.key.key,
      model: props.model,
      registryTableName,
      registryTableArn,
      disposable,
    });
    this.bootstrap = new CustomResource(this, 'DatabaseBootstrap', {
      serviceToken: this.provisioner.serviceToken,
      resourceType: PROVISIONER_RESOURCE_TYPES.bootstrap,
      properties: { Model: props.model, SchemaVersion: SCHEMA_VERSION },
    });
  }
}
