/**
 * What CloudFormation needs, per resource type the fleet's templates use, to create, update, delete and tag it: the
 * table lib/deploy-policy.ts builds the execution policies from (a test fails when a template uses a type the table
 * lacks, or the table holds a type no template uses).
 */

export interface Permissions {
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
