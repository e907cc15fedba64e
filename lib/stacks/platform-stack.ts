import { Construct } from 'constructs';
import { Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { SILO_IPAM_CIDR } from '../catalog';
import { ApiArchitecture, ApiImage } from '../constructs/api-image';
import { DataKey } from '../constructs/data-key';
import { SILO_VPC_NETMASK } from '../constructs/network';
import { Backup } from '../constructs/backup-plan';
import * as backup from 'aws-cdk-lib/aws-backup';
import {
  REGISTRY_KEY,
  ssmNames,
  TENANT_ID_ATTRIBUTE,
  TENANT_ID_MAX_LENGTH,
  TENANT_ID_MIN_LENGTH,
} from '../../contracts';

export interface PlatformStackProps extends StackProps {
  /**
   * The CPU architecture the API image is built for and every API task runs on.
   * @default 'arm64'
   */
  readonly apiArchitecture?: ApiArchitecture;
  /**
   * An existing VPC IP Address Manager pool (IPv4, private scope, this region) for silo VPCs: for accounts that
   * already run an IPAM (one per Region is the default quota).
   * @default - an IPAM (Advanced tier) and a pool of SILO_IPAM_CIDR are created here
   */
  readonly siloIpamPoolId?: string;
  /** @default BOOTSTRAP_QUALIFIERS.platform */
  readonly bootstrapQualifier?: string;
}

/**
 * What every tenant shares: sign-in (Cognito), the tenant registry (DynamoDB), the release's API image, and the
 * address pool silo VPCs take their ranges from. It never changes when a tenant comes or goes.
 */
export class PlatformStack extends Stack {
  readonly userPool: cognito.UserPool;
  readonly appClient: cognito.UserPoolClient;
  readonly registry: dynamodb.Table;
  readonly apiImage: ApiImage;
  readonly siloIpamPoolId: string;

  constructor(scope: Construct, id: string, props: PlatformStackProps = {}) {
    super(scope, id, props);
    const key = new DataKey(this, 'DataKey', { description: 'Platform: tenant registry' });

    this.userPool = new cognito.UserPool(this, 'Users', {
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      // The tenant id is set once, by the onboarding pipeline's AdminCreateUser, and can never change.
      customAttributes: {
        [TENANT_ID_ATTRIBUTE]: new cognito.StringAttribute({
          minLen: TENANT_ID_MIN_LENGTH,
          maxLen: TENANT_ID_MAX_LENGTH,
          mutable: false,
        }),
      },
      mfa: cognito.Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      passwordPolicy: {
        minLength: 14,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      featurePlan: cognito.FeaturePlan.PLUS,
      standardThreatProtectionMode: cognito.StandardThreatProtectionMode.FULL_FUNCTION,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.appClient = this.userPool.addClient('AppClient', {
      // Only what the API's clients use: SRP sign-in and refresh. No hosted-UI OAuth flows, callback URLs or
      // scopes (CDK's defaults would add the implicit flow, an example.com callback and the admin scope).
      authFlows: { userSrp: true },
      disableOAuth: true,
      generateSecret: false,
      preventUserExistenceErrors: true,
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(1),
      enableTokenRevocation: true,
      readAttributes: new cognito.ClientAttributes()
        .withStandardAttributes({ email: true, emailVerified: true, fullname: true })
        .withCustomAttributes(TENANT_ID_ATTRIBUTE),
      // Deliberately without the tenant attribute: no signed-in user can rewrite their own tenant claim.
      writeAttributes: new cognito.ClientAttributes().withStandardAttributes({ fullname: true }),
    });

    this.registry = new dynamodb.Table(this, 'TenantRegistry', {
      partitionKey: { name: REGISTRY_KEY, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    new Backup(this, 'Backup', {
      key: key.key,
      resources: [backup.BackupResource.fromDynamoDbTable(this.registry)],
    });

    this.apiImage = new ApiImage(this, 'ApiImage', {
      architecture: props.apiArchitecture,
      bootstrapQualifier: props.bootstrapQualifier,
    });

    if (props.siloIpamPoolId) {
      this.siloIpamPoolId = props.siloIpamPoolId;
    } else {
      // Private-scope pools need IPAM's Advanced tier: about $0.20 per active IP address a month, only for the
      // addresses in use (npm run cost prices it). Kept if this stack goes: VPCs allocated from it outlive it.
      const ipam = new ec2.CfnIPAM(this, 'Ipam', {
        description: 'Silo VPC ranges: never overlapping, at any fleet size',
        operatingRegions: [{ regionName: this.region }],
        tier: 'advanced',
      });
      const pool = new ec2.CfnIPAMPool(this, 'SiloPool', {
        description: `Silo VPCs: a /${SILO_VPC_NETMASK} each`,
        addressFamily: 'ipv4',
        ipamScopeId: ipam.attrPrivateDefaultScopeId,
        locale: this.region,
        provisionedCidrs: [{ cidr: SILO_IPAM_CIDR }],
        allocationDefaultNetmaskLength: SILO_VPC_NETMASK,
        allocationMinNetmaskLength: SILO_VPC_NETMASK,
        allocationMaxNetmaskLength: SILO_VPC_NETMASK,
        autoImport: false,
      });
      ipam.applyRemovalPolicy(RemovalPolicy.RETAIN);
      pool.applyRemovalPolicy(RemovalPolicy.RETAIN);
      this.siloIpamPoolId = pool.attrIpamPoolId;
    }

    const params: [string, string, string][] = [
      ['RegistryTableName', ssmNames.registryTableName, this.registry.tableName],
      ['RegistryTableArn', ssmNames.registryTableArn, this.registry.tableArn],
      ['RegistryKeyArn', ssmNames.registryKeyArn, key.key.keyArn],
      ['SiloIpamPoolId', ssmNames.siloIpamPoolId, this.siloIpamPoolId],
      ['UserPoolId', ssmNames.userPoolId, this.userPool.userPoolId],
      ['UserPoolClientId', ssmNames.userPoolClientId, this.appClient.userPoolClientId],
    ];
    for (const [id, parameterName, stringValue] of params) {
      new ssm.StringParameter(this, id, { parameterName, stringValue });
    }
  }
}
