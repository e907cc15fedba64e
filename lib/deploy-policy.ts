/**
 * The deploy path, bounded. CloudFormation deploys with the CDK bootstrap's execution role; by default that role
 * is AdministratorAccess, so anyone who can start a deploy (the onboarding job, a compromised dependency in it, a
 * buildspec override) is account admin. This module writes what the bootstrap should be given instead:
 *
 * - execution policies that allow exactly what CloudFormation needs to create, update and delete the resource
 *   types the fleet's templates use (lib/deploy-permissions.ts, one entry per type; a test fails when a template uses a
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
import { permissionsOf } from './deploy-permissions';

export { permissionsOf, RESOURCE_PERMISSIONS } from './deploy-permissions';
export type { Permissions } from './deploy-permissions';

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
/** The roles a scope's stacks may create: named after their stacks (CloudFormation names them so). */
export function scopeRoleArns(scope: DeployScope): string[] {
  return scope.stackPrefixes.map((p) => `arn:aws:iam::\${aws:PrincipalAccount}:role/${p}*`);
}

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
      `the deploy policy has no permissions for ${missing.join(', ')}: add ${missing.length === 1 ? 'it' : 'them'} to RESOURCE_PERMISSIONS in lib/deploy-permissions.ts, then npm run deploy-policies`,
    );
  }
  // ${aws:PrincipalAccount} pins every ARN to the account the policy is used in (a "*" there could also match
  // a policy path that spells ":policy/<name>"), so the same files serve every account.
  const account = '${aws:PrincipalAccount}';
  const boundaryArn = `arn:aws:iam::${account}:policy/${permissionsBoundaryName(scope.name)}`;
  const withBoundary = { StringEquals: { 'iam:PermissionsBoundary': boundaryArn } };
  const roles = scopeRoleArns(scope);
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
 * policies. One exception where the roles need it (`passRole`): passing the scope's own roles (which carry this
 * boundary, so nothing passed can do more) to the named services only (a mobility runner starting its runner
 * task, ECS).
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
  passRole?: { readonly roles: readonly string[]; readonly to: readonly string[] },
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
  const allowed = { Sid: 'TheServicesTheseRolesUse', Effect: 'Allow', Action: actions, Resource: '*' };
  if (!passRole) {
    const nothingInIam = ['iam:*', 'organizations:*', 'account:*'];
    return {
      Version: '2012-10-17',
      Statement: [allowed, { Sid: 'NothingInIam', Effect: 'Deny', Action: nothingInIam, Resource: '*' }],
    };
  }
  const to = { 'iam:PassedToService': [...passRole.to].sort() };
  return {
    Version: '2012-10-17',
    Statement: [
      allowed,
      // The scope's own roles only (a boundary allows nothing it does not name; IAM resolves the account variable
      // in Resource).
      {
        Sid: 'PassingTheScopesOwnRoles',
        Effect: 'Allow',
        Action: 'iam:PassRole',
        Resource: [...passRole.roles],
        Condition: { StringEquals: to },
      },
      // Every IAM action is refused but iam:PassRole to these services (the key is absent from every other IAM
      // action, which a negated condition then matches).
      {
        Sid: 'NothingInIamButPassingToTheseServices',
        Effect: 'Deny',
        Action: 'iam:*',
        Resource: '*',
        Condition: { StringNotEquals: to },
      },
      {
        Sid: 'NothingInOrganizationsOrAccount',
        Effect: 'Deny',
        Action: ['organizations:*', 'account:*'],
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
