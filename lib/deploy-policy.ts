/**
 * The deploy path, bounded. CloudFormation deploys with the CDK bootstrap's execution role; by default that role
 * is AdministratorAccess, so anyone who can start a deploy (the onboarding job, a compromised dependency in it, a
 * buildspec override) is account admin. This module writes what the bootstrap should be given instead:
 *
 * - execution policies that allow exactly what CloudFormation needs to create, update and delete the resource
 *   types the fleet's templates use (a table below, one entry per type; a test fails when a template uses a
 *   type the table lacks, or the table holds a type no template uses), and no more;
 * - a permissions boundary that every role the stacks create must carry (cdk.json sets it on every role):
 *   the execution policy can create roles only with that boundary, and the boundary grants nothing in IAM,
 *   so no role a deploy creates can create or change roles, users or policies.
 */
import {
  DeployScopeName,
  EXECUTION_POLICY_PREFIX,
  permissionsBoundaryName,
  TENANT_STACK_PREFIX,
} from '../contracts';

interface Permissions {
  /** What CloudFormation calls to create, read, update, delete and tag the resource. */
  readonly actions: readonly string[];
  /** Services the resource passes a role to (iam:PassRole, only to these). */
  readonly passRoleTo?: readonly string[];
  /** Service-linked roles the service may need to create on first use. */
  readonly serviceLinkedRoles?: readonly string[];
}

const tags = (service: string) => [`${service}:TagResource`, `${service}:UntagResource`];

/** A database encrypted with the cell's key whose master password RDS keeps in Secrets Manager (instance, cluster). */
const RDS_KEY_AND_MANAGED_SECRET = [
  'kms:CreateGrant',
  'kms:DescribeKey',
  'kms:Decrypt',
  'kms:GenerateDataKey',
  'secretsmanager:CreateSecret',
  'secretsmanager:TagResource',
  'secretsmanager:DeleteSecret',
  'secretsmanager:RotateSecret',
];

/** One entry per resource type the fleet's templates use. */
export const RESOURCE_PERMISSIONS: Readonly<Record<string, Permissions>> = {
  'AWS::Backup::BackupPlan': {
    actions: [
      'backup:CreateBackupPlan',
      'backup:UpdateBackupPlan',
      'backup:DeleteBackupPlan',
      'backup:GetBackupPlan',
      'backup:ListTags',
      ...tags('backup'),
    ],
  },
  'AWS::ApplicationAutoScaling::ScalableTarget': {
    actions: [
      'application-autoscaling:RegisterScalableTarget',
      'application-autoscaling:DeregisterScalableTarget',
      'application-autoscaling:DescribeScalableTargets',
      'application-autoscaling:ListTagsForResource',
      ...tags('application-autoscaling'),
      // Registering an ECS service's desired count as a scalable target reads and updates the service.
      'ecs:DescribeServices',
      'ecs:UpdateService',
    ],
    serviceLinkedRoles: ['ecs.application-autoscaling.amazonaws.com'],
  },
  'AWS::ApplicationAutoScaling::ScalingPolicy': {
    actions: [
      'application-autoscaling:PutScalingPolicy',
      'application-autoscaling:DeleteScalingPolicy',
      'application-autoscaling:DescribeScalingPolicies',
      // Target tracking creates and removes its own CloudWatch alarms.
      'cloudwatch:PutMetricAlarm',
      'cloudwatch:DeleteAlarms',
      'cloudwatch:DescribeAlarms',
    ],
  },
  'AWS::Backup::BackupSelection': {
    actions: ['backup:CreateBackupSelection', 'backup:DeleteBackupSelection', 'backup:GetBackupSelection'],
    passRoleTo: ['backup.amazonaws.com'],
  },
  'AWS::Backup::BackupVault': {
    actions: [
      'backup:CreateBackupVault',
      'backup:DeleteBackupVault',
      'backup:DescribeBackupVault',
      'backup-storage:MountCapsule',
      'kms:CreateGrant',
      'kms:DescribeKey',
      ...tags('backup'),
    ],
  },
  'AWS::CloudWatch::Alarm': {
    actions: [
      'cloudwatch:PutMetricAlarm',
      'cloudwatch:DeleteAlarms',
      'cloudwatch:DescribeAlarms',
      'cloudwatch:ListTagsForResource',
      ...tags('cloudwatch'),
    ],
  },
  'AWS::CodeBuild::Project': {
    actions: [
      'codebuild:CreateProject',
      'codebuild:UpdateProject',
      'codebuild:DeleteProject',
      'codebuild:BatchGetProjects',
    ],
    passRoleTo: ['codebuild.amazonaws.com'],
  },
  'AWS::Cognito::UserPool': {
    actions: [
      'cognito-idp:CreateUserPool',
      'cognito-idp:UpdateUserPool',
      'cognito-idp:DeleteUserPool',
      'cognito-idp:DescribeUserPool',
      'cognito-idp:SetUserPoolMfaConfig',
      'cognito-idp:GetUserPoolMfaConfig',
      'cognito-idp:AddCustomAttributes',
      'cognito-idp:ListTagsForResource',
      ...tags('cognito-idp'),
    ],
  },
  'AWS::Cognito::UserPoolClient': {
    actions: [
      'cognito-idp:CreateUserPoolClient',
      'cognito-idp:UpdateUserPoolClient',
      'cognito-idp:DeleteUserPoolClient',
      'cognito-idp:DescribeUserPoolClient',
    ],
  },
  'AWS::DynamoDB::Table': {
    actions: [
      'dynamodb:CreateTable',
      'dynamodb:UpdateTable',
      'dynamodb:DeleteTable',
      'dynamodb:DescribeTable',
      'dynamodb:DescribeContinuousBackups',
      'dynamodb:UpdateContinuousBackups',
      'dynamodb:DescribeTimeToLive',
      'dynamodb:ListTagsOfResource',
      'kms:CreateGrant',
      'kms:DescribeKey',
      ...tags('dynamodb'),
    ],
  },
  'AWS::EC2::EIP': {
    actions: [
      'ec2:AllocateAddress',
      'ec2:ReleaseAddress',
      'ec2:DescribeAddresses',
      'ec2:CreateTags',
      'ec2:DeleteTags',
    ],
  },
  'AWS::EC2::EgressOnlyInternetGateway': {
    actions: [
      'ec2:CreateEgressOnlyInternetGateway',
      'ec2:DeleteEgressOnlyInternetGateway',
      'ec2:DescribeEgressOnlyInternetGateways',
      'ec2:CreateTags',
    ],
  },
  'AWS::EC2::FlowLog': {
    actions: [
      'ec2:CreateFlowLogs',
      'ec2:DeleteFlowLogs',
      'ec2:DescribeFlowLogs',
      'logs:CreateLogDelivery',
      'logs:DeleteLogDelivery',
    ],
    passRoleTo: ['vpc-flow-logs.amazonaws.com'],
  },
  'AWS::EC2::IPAM': {
    actions: ['ec2:CreateIpam', 'ec2:ModifyIpam', 'ec2:DeleteIpam', 'ec2:DescribeIpams', 'ec2:CreateTags'],
    serviceLinkedRoles: ['ipam.amazonaws.com'],
  },
  'AWS::EC2::IPAMPool': {
    actions: [
      'ec2:CreateIpamPool',
      'ec2:ModifyIpamPool',
      'ec2:DeleteIpamPool',
      'ec2:DescribeIpamPools',
      'ec2:ProvisionIpamPoolCidr',
      'ec2:DeprovisionIpamPoolCidr',
      'ec2:GetIpamPoolCidrs',
      'ec2:GetIpamPoolAllocations',
    ],
  },
  'AWS::EC2::InternetGateway': {
    actions: [
      'ec2:CreateInternetGateway',
      'ec2:DeleteInternetGateway',
      'ec2:DescribeInternetGateways',
      'ec2:CreateTags',
    ],
  },
  'AWS::EC2::NatGateway': {
    actions: ['ec2:CreateNatGateway', 'ec2:DeleteNatGateway', 'ec2:DescribeNatGateways', 'ec2:CreateTags'],
  },
  'AWS::EC2::Route': {
    actions: ['ec2:CreateRoute', 'ec2:ReplaceRoute', 'ec2:DeleteRoute', 'ec2:DescribeRouteTables'],
  },
  'AWS::EC2::RouteTable': {
    actions: ['ec2:CreateRouteTable', 'ec2:DeleteRouteTable', 'ec2:DescribeRouteTables', 'ec2:CreateTags'],
  },
  'AWS::EC2::SecurityGroup': {
    actions: [
      'ec2:CreateSecurityGroup',
      'ec2:DeleteSecurityGroup',
      'ec2:DescribeSecurityGroups',
      'ec2:DescribeSecurityGroupRules',
      'ec2:AuthorizeSecurityGroupIngress',
      'ec2:AuthorizeSecurityGroupEgress',
      'ec2:RevokeSecurityGroupIngress',
      'ec2:RevokeSecurityGroupEgress',
      'ec2:CreateTags',
    ],
  },
  'AWS::EC2::SecurityGroupEgress': {
    actions: [
      'ec2:AuthorizeSecurityGroupEgress',
      'ec2:RevokeSecurityGroupEgress',
      'ec2:DescribeSecurityGroupRules',
    ],
  },
  'AWS::EC2::SecurityGroupIngress': {
    actions: [
      'ec2:AuthorizeSecurityGroupIngress',
      'ec2:RevokeSecurityGroupIngress',
      'ec2:DescribeSecurityGroupRules',
    ],
  },
  'AWS::EC2::Subnet': {
    actions: [
      'ec2:CreateSubnet',
      'ec2:DeleteSubnet',
      'ec2:DescribeSubnets',
      'ec2:ModifySubnetAttribute',
      // A dual-stack VPC's subnets (silo profiles without NAT gateways) each take a /64 of its IPv6 block.
      'ec2:AssociateSubnetCidrBlock',
      'ec2:DisassociateSubnetCidrBlock',
      'ec2:CreateTags',
    ],
  },
  'AWS::EC2::SubnetRouteTableAssociation': {
    actions: ['ec2:AssociateRouteTable', 'ec2:DisassociateRouteTable', 'ec2:ReplaceRouteTableAssociation'],
  },
  'AWS::EC2::VPC': {
    actions: [
      'ec2:CreateVpc',
      'ec2:DeleteVpc',
      'ec2:DescribeVpcs',
      'ec2:ModifyVpcAttribute',
      'ec2:DescribeVpcAttribute',
      'ec2:AllocateIpamPoolCidr',
      'ec2:ReleaseIpamPoolAllocation',
      'ec2:CreateTags',
      'ec2:DeleteTags',
    ],
  },
  'AWS::EC2::VPCCidrBlock': {
    actions: ['ec2:AssociateVpcCidrBlock', 'ec2:DisassociateVpcCidrBlock', 'ec2:DescribeVpcs'],
  },
  'AWS::EC2::VPCEndpoint': {
    actions: [
      'ec2:CreateVpcEndpoint',
      'ec2:ModifyVpcEndpoint',
      'ec2:DeleteVpcEndpoints',
      'ec2:DescribeVpcEndpoints',
      'ec2:DescribeRouteTables',
      'ec2:CreateTags',
      'ec2:DeleteTags',
    ],
  },
  'AWS::EC2::VPCGatewayAttachment': { actions: ['ec2:AttachInternetGateway', 'ec2:DetachInternetGateway'] },
  'AWS::ECS::Cluster': {
    actions: [
      'ecs:CreateCluster',
      'ecs:UpdateCluster',
      'ecs:UpdateClusterSettings',
      'ecs:DeleteCluster',
      'ecs:DescribeClusters',
      ...tags('ecs'),
    ],
    serviceLinkedRoles: ['ecs.amazonaws.com'],
  },
  'AWS::ECS::Service': {
    actions: [
      'ecs:CreateService',
      'ecs:UpdateService',
      'ecs:DeleteService',
      'ecs:DescribeServices',
      ...tags('ecs'),
    ],
  },
  'AWS::ECS::TaskDefinition': {
    actions: [
      'ecs:RegisterTaskDefinition',
      'ecs:DeregisterTaskDefinition',
      'ecs:DescribeTaskDefinition',
      ...tags('ecs'),
    ],
    passRoleTo: ['ecs-tasks.amazonaws.com'],
  },
  'AWS::ElasticLoadBalancingV2::Listener': {
    actions: [
      'elasticloadbalancing:CreateListener',
      'elasticloadbalancing:ModifyListener',
      'elasticloadbalancing:DeleteListener',
      'elasticloadbalancing:DescribeListeners',
      'elasticloadbalancing:AddTags',
      'elasticloadbalancing:RemoveTags',
    ],
  },
  'AWS::ElasticLoadBalancingV2::LoadBalancer': {
    actions: [
      'elasticloadbalancing:CreateLoadBalancer',
      'elasticloadbalancing:DeleteLoadBalancer',
      'elasticloadbalancing:DescribeLoadBalancers',
      'elasticloadbalancing:ModifyLoadBalancerAttributes',
      'elasticloadbalancing:DescribeLoadBalancerAttributes',
      'elasticloadbalancing:SetSecurityGroups',
      'elasticloadbalancing:SetSubnets',
      'elasticloadbalancing:AddTags',
      'elasticloadbalancing:RemoveTags',
    ],
    serviceLinkedRoles: ['elasticloadbalancing.amazonaws.com'],
  },
  'AWS::ElasticLoadBalancingV2::TargetGroup': {
    actions: [
      'elasticloadbalancing:CreateTargetGroup',
      'elasticloadbalancing:ModifyTargetGroup',
      'elasticloadbalancing:ModifyTargetGroupAttributes',
      'elasticloadbalancing:DeleteTargetGroup',
      'elasticloadbalancing:DescribeTargetGroups',
      'elasticloadbalancing:DescribeTargetGroupAttributes',
      'elasticloadbalancing:AddTags',
      'elasticloadbalancing:RemoveTags',
    ],
  },
  'AWS::Events::Rule': {
    actions: [
      'events:PutRule',
      'events:DeleteRule',
      'events:DescribeRule',
      'events:PutTargets',
      'events:RemoveTargets',
      'events:ListTargetsByRule',
    ],
    passRoleTo: ['events.amazonaws.com'],
  },
  // Roles and policies: the IAM actions are granted separately, each only for roles that carry the boundary.
  'AWS::IAM::ManagedPolicy': {
    actions: [
      'iam:CreatePolicy',
      'iam:CreatePolicyVersion',
      'iam:DeletePolicy',
      'iam:DeletePolicyVersion',
      'iam:GetPolicy',
      'iam:GetPolicyVersion',
      'iam:ListPolicyVersions',
    ],
  },
  'AWS::IAM::Policy': { actions: ['iam:GetRolePolicy'] },
  'AWS::IAM::Role': {
    actions: [
      'iam:GetRole',
      'iam:DeleteRole',
      'iam:UpdateRole',
      'iam:UpdateAssumeRolePolicy',
      'iam:TagRole',
      'iam:UntagRole',
      'iam:ListRolePolicies',
      'iam:ListAttachedRolePolicies',
    ],
  },
  'AWS::KMS::Key': {
    actions: [
      'kms:CreateKey',
      'kms:DescribeKey',
      'kms:EnableKeyRotation',
      'kms:GetKeyRotationStatus',
      'kms:PutKeyPolicy',
      'kms:GetKeyPolicy',
      'kms:UpdateKeyDescription',
      'kms:ScheduleKeyDeletion',
      'kms:ListResourceTags',
      ...tags('kms'),
    ],
  },
  'AWS::Lambda::Function': {
    actions: [
      'lambda:CreateFunction',
      'lambda:UpdateFunctionCode',
      'lambda:UpdateFunctionConfiguration',
      'lambda:DeleteFunction',
      'lambda:GetFunction',
      'lambda:GetFunctionConfiguration',
      'lambda:ListTags',
      ...tags('lambda'),
      'ec2:DescribeSecurityGroups',
      'ec2:DescribeSubnets',
      'ec2:DescribeVpcs',
      'kms:CreateGrant',
      'kms:Encrypt',
    ],
    passRoleTo: ['lambda.amazonaws.com'],
  },
  'AWS::Lambda::Url': {
    actions: [
      'lambda:CreateFunctionUrlConfig',
      'lambda:UpdateFunctionUrlConfig',
      'lambda:DeleteFunctionUrlConfig',
      'lambda:GetFunctionUrlConfig',
    ],
  },
  'AWS::Lambda::Permission': {
    actions: ['lambda:AddPermission', 'lambda:RemovePermission', 'lambda:GetPolicy'],
  },
  'AWS::Logs::MetricFilter': {
    actions: ['logs:PutMetricFilter', 'logs:DeleteMetricFilter', 'logs:DescribeMetricFilters'],
  },
  'AWS::Logs::LogGroup': {
    actions: [
      'logs:CreateLogGroup',
      'logs:DeleteLogGroup',
      'logs:DescribeLogGroups',
      'logs:PutRetentionPolicy',
      'logs:DeleteRetentionPolicy',
      'logs:AssociateKmsKey',
      'logs:DisassociateKmsKey',
      'logs:ListTagsForResource',
      ...tags('logs'),
    ],
  },
  'AWS::RDS::DBCluster': {
    actions: [
      'rds:CreateDBCluster',
      'rds:ModifyDBCluster',
      'rds:DeleteDBCluster',
      'rds:DescribeDBClusters',
      'rds:RestoreDBClusterFromSnapshot',
      'rds:DescribeDBClusterSnapshots',
      'rds:CreateDBClusterSnapshot',
      'rds:AddTagsToResource',
      'rds:RemoveTagsFromResource',
      'rds:ListTagsForResource',
      ...RDS_KEY_AND_MANAGED_SECRET,
    ],
    serviceLinkedRoles: ['rds.amazonaws.com'],
  },
  'AWS::RDS::DBClusterParameterGroup': {
    actions: [
      'rds:CreateDBClusterParameterGroup',
      'rds:ModifyDBClusterParameterGroup',
      'rds:DeleteDBClusterParameterGroup',
      'rds:DescribeDBClusterParameterGroups',
      'rds:DescribeDBClusterParameters',
      'rds:AddTagsToResource',
    ],
  },
  'AWS::RDS::DBInstance': {
    actions: [
      'rds:CreateDBInstance',
      'rds:ModifyDBInstance',
      'rds:DeleteDBInstance',
      'rds:DescribeDBInstances',
      'rds:RestoreDBInstanceFromDBSnapshot',
      'rds:DescribeDBSnapshots',
      'rds:CreateDBSnapshot',
      'rds:AddTagsToResource',
      'rds:RemoveTagsFromResource',
      'rds:ListTagsForResource',
      ...RDS_KEY_AND_MANAGED_SECRET,
    ],
    passRoleTo: ['monitoring.rds.amazonaws.com'],
    serviceLinkedRoles: ['rds.amazonaws.com'],
  },
  'AWS::RDS::DBParameterGroup': {
    actions: [
      'rds:CreateDBParameterGroup',
      'rds:ModifyDBParameterGroup',
      'rds:DeleteDBParameterGroup',
      'rds:DescribeDBParameterGroups',
      'rds:DescribeDBParameters',
      'rds:AddTagsToResource',
    ],
  },
  'AWS::RDS::DBSubnetGroup': {
    actions: [
      'rds:CreateDBSubnetGroup',
      'rds:ModifyDBSubnetGroup',
      'rds:DeleteDBSubnetGroup',
      'rds:DescribeDBSubnetGroups',
      'rds:AddTagsToResource',
    ],
  },
  'AWS::Route53::RecordSet': {
    actions: ['route53:ChangeResourceRecordSets', 'route53:GetChange', 'route53:ListResourceRecordSets'],
  },
  'AWS::S3::Bucket': {
    actions: [
      's3:CreateBucket',
      's3:DeleteBucket',
      's3:ListBucket',
      's3:GetBucketLocation',
      's3:PutBucketTagging',
      's3:GetBucketTagging',
      's3:PutEncryptionConfiguration',
      's3:GetEncryptionConfiguration',
      's3:PutBucketVersioning',
      's3:GetBucketVersioning',
      's3:PutBucketPublicAccessBlock',
      's3:GetBucketPublicAccessBlock',
      's3:PutBucketOwnershipControls',
      's3:GetBucketOwnershipControls',
      's3:PutLifecycleConfiguration',
      's3:GetLifecycleConfiguration',
      // Server access logging (the tenant archive buckets log to the cell's access-log bucket).
      's3:PutBucketLogging',
      's3:GetBucketLogging',
    ],
  },
  'AWS::S3::BucketPolicy': { actions: ['s3:PutBucketPolicy', 's3:DeleteBucketPolicy', 's3:GetBucketPolicy'] },
  'AWS::SecretsManager::Secret': {
    actions: [
      'secretsmanager:CreateSecret',
      'secretsmanager:UpdateSecret',
      'secretsmanager:DeleteSecret',
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetRandomPassword',
      ...tags('secretsmanager'),
      'kms:GenerateDataKey',
      'kms:Decrypt',
    ],
  },
  'AWS::SNS::Topic': {
    actions: [
      'sns:CreateTopic',
      'sns:DeleteTopic',
      'sns:GetTopicAttributes',
      'sns:SetTopicAttributes',
      'sns:ListTagsForResource',
      ...tags('sns'),
    ],
  },
  'AWS::SNS::TopicPolicy': { actions: ['sns:SetTopicAttributes', 'sns:GetTopicAttributes'] },
  'AWS::SSM::Parameter': {
    actions: [
      'ssm:PutParameter',
      'ssm:DeleteParameter',
      'ssm:GetParameter',
      'ssm:GetParameters',
      'ssm:AddTagsToResource',
      'ssm:RemoveTagsFromResource',
      'ssm:ListTagsForResource',
    ],
  },
  'AWS::StepFunctions::StateMachine': {
    actions: [
      'states:CreateStateMachine',
      'states:UpdateStateMachine',
      'states:DeleteStateMachine',
      'states:DescribeStateMachine',
      'states:ListTagsForResource',
      ...tags('states'),
      'logs:CreateLogDelivery',
      'logs:GetLogDelivery',
      'logs:UpdateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:DescribeResourcePolicies',
    ],
    passRoleTo: ['states.amazonaws.com'],
  },
  'AWS::WAFv2::LoggingConfiguration': {
    actions: [
      'wafv2:PutLoggingConfiguration',
      'wafv2:DeleteLoggingConfiguration',
      'wafv2:GetLoggingConfiguration',
      'logs:CreateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:PutResourcePolicy',
      'logs:DescribeResourcePolicies',
    ],
    serviceLinkedRoles: ['wafv2.amazonaws.com'],
  },
  'AWS::WAFv2::WebACL': {
    actions: [
      'wafv2:CreateWebACL',
      'wafv2:UpdateWebACL',
      'wafv2:DeleteWebACL',
      'wafv2:GetWebACL',
      'wafv2:ListTagsForResource',
      ...tags('wafv2'),
    ],
  },
  'AWS::WAFv2::WebACLAssociation': {
    actions: [
      'wafv2:AssociateWebACL',
      'wafv2:DisassociateWebACL',
      'wafv2:GetWebACLForResource',
      'elasticloadbalancing:SetWebAcl',
    ],
  },
};

/** Custom resources: CloudFormation only invokes their provider functions (which are in the same stacks). */
const CUSTOM_RESOURCE = { actions: ['lambda:InvokeFunction'] } satisfies Permissions;

export function permissionsOf(type: string): Permissions | undefined {
  return type.startsWith('Custom::') ? CUSTOM_RESOURCE : RESOURCE_PERMISSIONS[type];
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: Record<string, unknown>[];
}

/** Which stacks an execution policy deploys: their names start with these (their roles' and policies' too). */
export interface DeployScope {
  /** `tenants` or `platform`: the policies are named `tenantforge-<name>-<n>`, the boundary `tenantforge-<name>-boundary`. */
  readonly name: DeployScopeName;
  /**
   * Stack-name prefixes. CloudFormation names the roles and managed policies it creates `<stack>-<id>-<random>`,
   * so every IAM action is limited to roles and policies under these names: a deploy can change nothing in IAM
   * that another stack, or a person, owns.
   */
  readonly stackPrefixes: readonly string[];
}

/**
 * The execution policies for templates using `types` in `scope`: each at most 6,144 characters (IAM's limit for
 * a managed policy), to be created as `<prefix>-<scope>-1`, `-2`, ... and given to
 * `cdk bootstrap --cloudformation-execution-policies`.
 */
export function executionPolicies(types: Iterable<string>, scope: DeployScope): PolicyDocument[] {
  // CloudFormation resolves the templates' SSM-typed parameters (the bootstrap version, cross-stack values) with
  // the execution role, whatever resources the templates hold.
  const actions = new Set<string>(['ssm:GetParameters']);
  const passTo = new Set<string>();
  const linked = new Set<string>();
  const missing: string[] = [];
  for (const type of types) {
    const p = permissionsOf(type);
    if (!p) {
      missing.push(type);
      continue;
    }
    p.actions.forEach((a) => actions.add(a));
    p.passRoleTo?.forEach((s) => passTo.add(s));
    p.serviceLinkedRoles?.forEach((s) => linked.add(s));
  }
  if (missing.length > 0) {
    throw new Error(
      `the deploy policy has no permissions for ${missing.join(', ')}: add ${missing.length === 1 ? 'it' : 'them'} to RESOURCE_PERMISSIONS in lib/deploy-policy.ts, then npm run deploy-policies`,
    );
  }
  // ${aws:PrincipalAccount} pins every ARN to the account the policy is used in (a "*" there could also match
  // a policy path that spells ":policy/<name>"), so the same files serve every account.
  const account = '${aws:PrincipalAccount}';
  const boundaryArn = `arn:aws:iam::${account}:policy/${permissionsBoundaryName(scope.name)}`;
  const withBoundary = { StringEquals: { 'iam:PermissionsBoundary': boundaryArn } };
  const roles = scope.stackPrefixes.map((p) => `arn:aws:iam::${account}:role/${p}*`);
  const policies = scope.stackPrefixes.map((p) => `arn:aws:iam::${account}:policy/${p}*`);
  const iamActions = [...actions].filter((a) => a.startsWith('iam:')).sort();
  const roleActions = iamActions.filter((a) => a.includes('Role'));
  const policyActions = iamActions.filter((a) => !a.includes('Role'));
  const statementIf = (Sid: string, Action: string[], Resource: string[]) =>
    Action.length > 0 ? [{ Sid, Effect: 'Allow', Action, Resource }] : [];
  const statements: Record<string, unknown>[] = [
    {
      Sid: 'ResourcesOfTheFleet',
      Effect: 'Allow',
      Action: [...actions].filter((a) => !a.startsWith('iam:')).sort(),
      Resource: '*',
    },
    // IAM: only the roles and managed policies of these stacks.
    ...statementIf('TheStacksOwnRoles', roleActions, roles),
    ...statementIf('TheStacksOwnManagedPolicies', policyActions, policies),
    // Roles and their policies, only for these stacks' roles and only while they carry the boundary.
    {
      Sid: 'RolesOnlyWithTheBoundary',
      Effect: 'Allow',
      Action: [
        'iam:CreateRole',
        'iam:PutRolePermissionsBoundary',
        'iam:PutRolePolicy',
        'iam:DeleteRolePolicy',
        'iam:AttachRolePolicy',
        'iam:DetachRolePolicy',
      ],
      Resource: roles,
      Condition: withBoundary,
    },
    {
      Sid: 'PassOnlyTheStacksRolesToTheirServices',
      Effect: 'Allow',
      Action: 'iam:PassRole',
      Resource: roles,
      Condition: { StringEquals: { 'iam:PassedToService': [...passTo].sort() } },
    },
    ...(linked.size > 0
      ? [
          {
            Sid: 'ServiceLinkedRolesOfTheFleetsServices',
            Effect: 'Allow',
            Action: 'iam:CreateServiceLinkedRole',
            Resource: '*',
            Condition: { StringEquals: { 'iam:AWSServiceName': [...linked].sort() } },
          },
        ]
      : []),
    // The boundary itself cannot be changed, removed from a role, or deleted by a deploy.
    {
      Sid: 'NeverLoosenTheBoundary',
      Effect: 'Deny',
      Action: [
        'iam:CreatePolicyVersion',
        'iam:DeletePolicy',
        'iam:DeletePolicyVersion',
        'iam:SetDefaultPolicyVersion',
      ],
      Resource: `arn:aws:iam::*:policy/${EXECUTION_POLICY_PREFIX}-*-boundary`,
    },
    {
      Sid: 'NeverDropTheBoundary',
      Effect: 'Deny',
      Action: 'iam:DeleteRolePermissionsBoundary',
      Resource: '*',
    },
  ];
  // Split into documents under IAM's size limit (the long action list goes first, alone if need be).
  const documents: PolicyDocument[] = [];
  let current: Record<string, unknown>[] = [];
  const size = (s: Record<string, unknown>[]) =>
    JSON.stringify({ Version: '2012-10-17', Statement: s }).length;
  for (const st of statements) {
    if (current.length > 0 && size([...current, st]) > 6144) {
      documents.push({ Version: '2012-10-17', Statement: current });
      current = [];
    }
    if (size([st]) > 6144) {
      const list = st.Action as string[];
      const half = Math.ceil(list.length / 2);
      documents.push({
        Version: '2012-10-17',
        Statement: [{ ...st, Sid: `${st.Sid}A`, Action: list.slice(0, half) }],
      });
      current = [{ ...st, Sid: `${st.Sid}B`, Action: list.slice(half) }];
      continue;
    }
    current.push(st);
  }
  if (current.length > 0) documents.push({ Version: '2012-10-17', Statement: current });
  return documents;
}

/** The services AWS managed policies the stacks attach to their roles use (the boundary must admit them). */
export const MANAGED_POLICY_SERVICES: Readonly<Record<string, readonly string[]>> = {
  'service-role/AWSLambdaBasicExecutionRole': ['logs'],
  'service-role/AmazonRDSEnhancedMonitoringRole': ['logs'],
  // Backups and restores of the stacks' RDS instances and DynamoDB tables (the policies also name services the
  // stacks do not use, which the boundary leaves out).
  'service-role/AWSBackupServiceRolePolicyForBackup': ['backup', 'rds', 'dynamodb', 'kms', 'tag', 'ec2'],
  'service-role/AWSBackupServiceRolePolicyForRestores': ['backup', 'rds', 'dynamodb', 'kms', 'tag', 'ec2'],
};

/** What the roles of one scope's templates use: the services of their policies and managed policies. */
export function servicesOfRoles(
  templates: readonly { Resources?: Record<string, unknown> }[],
  /** Filled with every action the roles' own policies allow, by service (managed policies' are not known). */
  actions?: Map<string, Set<string>>,
): Set<string> {
  const services = new Set<string>();
  const missing: string[] = [];
  for (const t of templates) {
    for (const r of Object.values(t.Resources ?? {}) as { Type: string; Properties?: Json }[]) {
      const p = r.Properties ?? {};
      const docs: { Statement: { Action: string | string[]; Effect?: string }[] }[] = [];
      if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy')
        docs.push(p.PolicyDocument as never);
      if (r.Type === 'AWS::IAM::Role') {
        for (const inline of (p.Policies as { PolicyDocument: never }[] | undefined) ?? [])
          docs.push(inline.PolicyDocument);
        for (const arn of (p.ManagedPolicyArns as unknown[] | undefined) ?? []) {
          const name = /:iam::aws:policy\/([\w/+=,.@-]+)/.exec(JSON.stringify(arn))?.[1];
          const known = name ? MANAGED_POLICY_SERVICES[name] : undefined;
          if (!known) missing.push(JSON.stringify(arn));
          else known.forEach((svc) => services.add(svc));
        }
      }
      for (const d of docs) {
        for (const st of d.Statement) {
          if (st.Effect === 'Deny') continue;
          for (const a of Array.isArray(st.Action) ? st.Action : [st.Action]) {
            const svc = a.split(':')[0];
            services.add(svc);
            if (!actions?.has(svc)) actions?.set(svc, new Set());
            actions?.get(svc)!.add(a);
          }
        }
      }
      // A resource policy that names one of the stacks' roles (e.g. a bucket policy for the provider that empties
      // the bucket) is limited by the role's boundary too.
      const resourcePolicy =
        r.Type === 'AWS::S3::BucketPolicy'
          ? p.PolicyDocument
          : r.Type === 'AWS::KMS::Key'
            ? p.KeyPolicy
            : undefined;
      for (const st of (resourcePolicy as { Statement?: Json[] } | undefined)?.Statement ?? []) {
        const principal = JSON.stringify((st as { Principal?: unknown }).Principal ?? '');
        if (st.Effect === 'Deny' || !/"Fn::GetAtt":\["[^"]+","Arn"\]/.test(principal)) continue;
        const actions = (st as { Action: string | string[] }).Action;
        for (const a of Array.isArray(actions) ? actions : [actions]) services.add(a.split(':')[0]);
      }
    }
  }
  if (missing.length > 0) {
    throw new Error(
      `the permissions boundary does not know the managed policies ${[...new Set(missing)].join(', ')}: add their services to MANAGED_POLICY_SERVICES in lib/deploy-policy.ts`,
    );
  }
  return services;
}

/**
 * A scope's permissions boundary: the most any role its stacks create may ever do, whatever policy it is given.
 * Only the services its roles use (`services`, from the synthesized templates), STS only to assume and tag, and
 * nothing in IAM, Organizations or account settings, so no such role can create or change roles, users or
 * policies.
 */
export function boundaryPolicy(
  services: Iterable<string>,
  /**
   * Services admitted only for the exact actions the roles use (no wildcard in them), not `service:*`: the
   * tenants' boundary admits of Step Functions, a control-plane service, only the runners' reads of the onboarding
   * workflow's executions and answers to its tasks (what their policies name), never starting, stopping or changing
   * one; of CloudFormation, only a silo provisioner's read of its own stack's status.
   */
  exact: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
): PolicyDocument {
  const actions = [...new Set(services)]
    .filter((svc) => !['iam', 'organizations', 'account'].includes(svc))
    .sort()
    .flatMap((svc) =>
      svc === 'sts'
        ? ['sts:AssumeRole', 'sts:TagSession']
        : exact.has(svc) && ![...exact.get(svc)!].some((a) => a.includes('*'))
          ? [...exact.get(svc)!].sort()
          : [`${svc}:*`],
    );
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'TheServicesTheseRolesUse', Effect: 'Allow', Action: actions, Resource: '*' },
      {
        Sid: 'NothingInIam',
        Effect: 'Deny',
        Action: ['iam:*', 'organizations:*', 'account:*'],
        Resource: '*',
      },
    ],
  };
}

export const executionPolicyName = (scope: DeployScope, n: number) =>
  `${EXECUTION_POLICY_PREFIX}-${scope.name}-${n}`;

type Json = Record<string, unknown>;

/**
 * The tenants' CDK bootstrap, narrowed from the CDK CLI's own template (`bootstrapTemplate`, the YAML that
 * `cdk bootstrap` deploys), so that the onboarding job's roles reach tenant stacks only:
 * - its deploy, file-publishing, image-publishing and lookup roles are assumable only by the onboarding deploy
 *   job's role and the principals in the `TrustedDeployers` parameter (ARN patterns), not by every principal of
 *   the account;
 * - the deploy role may create, change and delete only stacks named `Tenant-*` (so it can never hand the
 *   platform's stacks to the tenants' execution role), and holds none of the cross-account artifact rights;
 * - only the file-publishing role may write the asset bucket, so nobody can plant an asset a deploy would use.
 * Deployed with `aws cloudformation deploy` (npm run -s deploy-policies -- --commands prints it).
 */
export function tenantsBootstrapTemplate(cdkTemplate: Json, deployJobRolePrefix: string): Json {
  const t = structuredClone(cdkTemplate) as {
    Description?: string;
    Parameters: Json;
    Resources: Record<string, { Properties: Json & { AssumeRolePolicyDocument?: Json; Policies?: Json[] } }>;
    Metadata?: Json;
  };
  t.Description =
    'tenantforge: the tenants CDK bootstrap (narrowed from the CDK CLI template; deploy/README)';
  t.Parameters.TrustedDeployers = {
    Description:
      'IAM principal ARN patterns (besides the onboarding deploy job) that may deploy tenant stacks, comma-separated',
    Type: 'CommaDelimitedList',
    Default: '',
  };
  const trusted = {
    'Fn::Split': [
      ',',
      {
        'Fn::Join': [
          ',',
          [
            { 'Fn::Sub': `arn:\${AWS::Partition}:iam::\${AWS::AccountId}:role/${deployJobRolePrefix}*` },
            { 'Fn::Join': [',', { Ref: 'TrustedDeployers' }] },
          ],
        ],
      },
    ],
  };
  for (const role of ['DeploymentActionRole', 'FilePublishingRole', 'ImagePublishingRole', 'LookupRole']) {
    const doc = t.Resources[role].Properties.AssumeRolePolicyDocument as { Statement: Json[] };
    for (const st of doc.Statement) {
      const principal = (st as { Principal?: { AWS?: unknown } }).Principal;
      if (JSON.stringify(principal?.AWS) !== JSON.stringify({ Ref: 'AWS::AccountId' })) continue;
      // Same-account trust: only the named principals (StringLike-free: ArnLike on the caller's own ARN).
      st.Condition = { ArnLike: { 'aws:PrincipalArn': trusted } };
    }
  }
  const deploy = t.Resources.DeploymentActionRole.Properties.Policies![0] as {
    PolicyDocument: { Statement: Json[] };
  };
  const tenantStacks = {
    'Fn::Sub': `arn:\${AWS::Partition}:cloudformation:\${AWS::Region}:\${AWS::AccountId}:stack/${TENANT_STACK_PREFIX}*/*`,
  };
  deploy.PolicyDocument.Statement = deploy.PolicyDocument.Statement.flatMap((st) => {
    switch (st.Sid) {
      case 'DeployPermissions':
        return [{ ...st, Resource: tenantStacks }];
      case 'PipelineCrossAccountArtifactsBucket':
      case 'PipelineCrossAccountArtifactsKey':
      case 'Refactor':
        return [];
      case 'CliPermissions':
        return [
          {
            ...st,
            Action: ['cloudformation:DeleteStack', 'cloudformation:UpdateTerminationProtection'],
            Resource: tenantStacks,
          },
          { Sid: 'WhoAmI', Effect: 'Allow', Action: 'sts:GetCallerIdentity', Resource: '*' },
        ];
      default:
        return [st];
    }
  });
  const bucketPolicy = t.Resources.StagingBucketPolicy.Properties as {
    PolicyDocument: { Statement: Json[] };
  };
  bucketPolicy.PolicyDocument.Statement.push({
    Sid: 'OnlyTheFilePublishingRoleWrites',
    Effect: 'Deny',
    Principal: '*',
    Action: ['s3:PutObject*', 's3:DeleteObject*', 's3:RestoreObject'],
    Resource: { 'Fn::Sub': '${StagingBucket.Arn}/*' },
    Condition: { ArnNotEquals: { 'aws:PrincipalArn': { 'Fn::GetAtt': ['FilePublishingRole', 'Arn'] } } },
  });
  return t;
}
