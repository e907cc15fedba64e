import { Construct, IConstruct } from 'constructs';
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { ssmNames } from '../../contracts';

/** The tenant registry as another stack sees it: read from SSM, so no CloudFormation export ties stacks together. */
export interface RegistryRef {
  readonly tableName: string;
  readonly tableArn: string;
  /** The KMS key the table is encrypted with. */
  readonly keyArn: string;
}

export function registryRef(scope: Construct): RegistryRef {
  const param = (name: string) => ssm.StringParameter.valueForStringParameter(scope, name);
  return {
    tableName: param(ssmNames.registryTableName),
    tableArn: param(ssmNames.registryTableArn),
    keyArn: param(ssmNames.registryKeyArn),
  };
}

/** What DynamoDB asks of the key on a reader's behalf, and in addition on a writer's (named, never wildcards). */
export const REGISTRY_KEY_READ_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey'];
export const REGISTRY_KEY_WRITE_ACTIONS = [
  'kms:Encrypt',
  'kms:GenerateDataKey',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
];

export interface RegistryGrant {
  /** The DynamoDB actions, e.g. `['dynamodb:GetItem']`. */
  readonly actions: string[];
  /** Whether the grantee writes (needs the key's encrypt rights) or only reads. */
  readonly writes: boolean;
  /**
   * Limit the grantee to one tenant's item (`dynamodb:LeadingKeys`).
   * @default - every item
   */
  readonly tenantId?: string;
  /** Statement id prefix, e.g. `Registry`. */
  readonly sid: string;
}

/**
 * The statements that give access to the registry and exactly the key rights that access needs: the table is
 * encrypted with a customer-managed key, so every reader needs kms:Decrypt and every writer the key's encrypt
 * rights, and only through DynamoDB, for this table (encryption context), never for anything else the key
 * protects.
 */
export function registryStatements(
  scope: IConstruct,
  registry: RegistryRef,
  grant: RegistryGrant,
): iam.PolicyStatement[] {
  const region = Stack.of(scope).region;
  // dynamodb:LeadingKeys limits only actions that name keys: a Scan or Query under ForAllValues would match an
  // empty key set and reach every item.
  const unscoped = grant.actions.filter((a) => !/^dynamodb:(GetItem|PutItem|UpdateItem|DeleteItem)$/.test(a));
  if (grant.tenantId && unscoped.length > 0) {
    throw new Error(
      `registry grant ${grant.sid} for tenant "${grant.tenantId}": ${unscoped.join(', ')} cannot be limited to one tenant's item; grant only GetItem, PutItem, UpdateItem or DeleteItem`,
    );
  }
  return [
    new iam.PolicyStatement({
      sid: `${grant.sid}Items`,
      actions: grant.actions,
      resources: [registry.tableArn],
      ...(grant.tenantId
        ? { conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [grant.tenantId] } } }
        : {}),
    }),
    new iam.PolicyStatement({
      sid: `${grant.sid}Key`,
      actions: grant.writes
        ? [...REGISTRY_KEY_READ_ACTIONS, ...REGISTRY_KEY_WRITE_ACTIONS]
        : REGISTRY_KEY_READ_ACTIONS,
      resources: [registry.keyArn],
      conditions: {
        StringEquals: {
          'kms:ViaService': `dynamodb.${region}.amazonaws.com`,
          'kms:EncryptionContext:aws:dynamodb:tableName': registry.tableName,
        },
      },
    }),
  ];
}

/** Adds `registryStatements` to a role or function's own policy. */
export function grantRegistry(
  grantee: iam.IGrantable & IConstruct,
  registry: RegistryRef,
  grant: RegistryGrant,
): void {
  for (const statement of registryStatements(grantee, registry, grant)) {
    grantee.grantPrincipal.addToPrincipalPolicy(statement);
  }
}
