import { Construct } from 'constructs';
import { Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { DataKey } from '../constructs/data-key';
import { Backup } from '../constructs/backup-plan';
import * as backup from 'aws-cdk-lib/aws-backup';
import {
  REGISTRY_KEY,
  ssmNames,
  TENANT_ID_ATTRIBUTE,
  TENANT_ID_MAX_LENGTH,
  TENANT_ID_MIN_LENGTH,
} from '../../contracts';

/**
 * What every tenant shares: sign-in (Cognito) and the tenant registry (DynamoDB). It never changes when a
 * tenant comes or goes.
 */
export class PlatformStack extends Stack {
  readonly userPool: cognito.UserPool;
  readonly appClient: cognito.UserPoolClient;
  readonly registry: dynamodb.Table;

  constructor(scope: Construct, id: string, props?: StackProps) {
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
      authFlows: { userSrp: true },
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

    const params: [string, string, string][] = [
      ['RegistryTableName', ssmNames.registryTableName, this.registry.tableName],
      ['RegistryTableArn', ssmNames.registryTableArn, this.registry.tableArn],
      ['UserPoolId', ssmNames.userPoolId, this.userPool.userPoolId],
      ['UserPoolClientId', ssmNames.userPoolClientId, this.appClient.userPoolClientId],
    ];
    for (const [id, parameterName, stringValue] of params) {
      new ssm.StringParameter(this, id, { parameterName, stringValue });
    }
  }
}
