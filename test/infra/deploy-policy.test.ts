import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DEPLOY_SCOPES } from '../../contracts';
import { executionPolicies, permissionsOf, RESOURCE_PERMISSIONS } from '../../lib/deploy-policy';
import { sourceDigest, verifierCommand } from '../../lib/source-digest';
import {
  cdkBootstrapTemplate,
  DEPLOY_DIR,
  DEPLOY_JOB_ROLE_PREFIX,
  deployPolicyFiles,
  passedToServices,
  fleetResourceTypes,
} from '../../scripts/deploy-policies';
import { REPO_ROOT, synthFleet } from './fleet-helpers';

// The deploy path, bounded: what the CDK bootstraps are given instead of AdministratorAccess, proven against every
// template the fleet synthesizes, and the deploy job's source integrity.

type Statement = {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
};
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const generated = deployPolicyFiles() as Record<string, { Statement: Statement[] }>;
const types = fleetResourceTypes();
const fleet = synthFleet();

describe('CloudFormation execution policies', () => {
  test('the committed deploy/*.json are what npm run deploy-policies writes (never stale)', () => {
    const committed = Object.fromEntries(
      fs
        .readdirSync(DEPLOY_DIR)
        .filter((f) => f.endsWith('.json'))
        .map((f) => [f, JSON.parse(fs.readFileSync(path.join(DEPLOY_DIR, f), 'utf8'))]),
    );
    expect(Object.keys(committed).sort()).toEqual(Object.keys(generated).sort());
    for (const [name, doc] of Object.entries(generated)) {
      expect({ name, doc: committed[name] }).toEqual({ name, doc });
    }
  });

  test("every resource type in every synthesized template is covered by its bootstrap's policy", () => {
    // The sample fleet, and the shared cells in their production profile (no NAT gateway, IPv6 out).
    const productionCells = synthFleet([], {
      sharedCells: {
        pool: { plannedTenants: 0, profile: 'production' },
        bridge: { plannedTenants: 0, profile: 'production' },
      },
    });
    const stacks = [
      ...fleet.stackNames().map((name) => ({ name, template: fleet.template(name) })),
      ...['Pool', 'Bridge'].map((name) => ({ name, template: productionCells.template(name) })),
    ];
    expect(
      stacks.some((s) => JSON.stringify(s.template.toJSON()).includes('AWS::EC2::EgressOnlyInternetGateway')),
    ).toBe(true);
    for (const { name, template } of stacks) {
      const scope = name.startsWith('Tenant-') ? 'tenants' : 'platform';
      const allowed = new Set(
        Object.entries(generated)
          .filter(([f]) => f.startsWith(`${scope}-execution-policy-`))
          .flatMap(([, d]) =>
            (d.Statement as Statement[]).filter((s) => s.Effect === 'Allow').flatMap(actionsOf),
          ),
      );
      const resources = template.toJSON().Resources as Record<string, { Type: string }>;
      for (const r of Object.values(resources)) {
        const needed = permissionsOf(r.Type);
        expect({ stack: name, type: r.Type, covered: !!needed }).toEqual({
          stack: name,
          type: r.Type,
          covered: true,
        });
        const missing = needed!.actions.filter((a) => !allowed.has(a));
        expect({ stack: name, type: r.Type, missing }).toEqual({ stack: name, type: r.Type, missing: [] });
      }
    }
  });

  test('a resource type no table entry covers fails the policy build, naming the type and the fix', () => {
    expect(() =>
      executionPolicies(['AWS::Lambda::Function', 'AWS::Redshift::Cluster'], DEPLOY_SCOPES.tenants),
    ).toThrow(
      'the deploy policy has no permissions for AWS::Redshift::Cluster: add it to RESOURCE_PERMISSIONS in lib/deploy-permissions.ts, then npm run deploy-policies',
    );
  });

  test('grants nothing else: every table entry is a type some template uses', () => {
    const used = new Set([...types.tenants, ...types.platform]);
    expect(Object.keys(RESOURCE_PERMISSIONS).filter((t) => !used.has(t))).toEqual([]);
  });

  test("the tenants' bootstrap can create only what tenant stacks hold", () => {
    const tenantActions = Object.entries(generated)
      .filter(([f]) => f.startsWith('tenants-execution-policy-'))
      .flatMap(([, d]) =>
        (d.Statement as Statement[]).filter((s) => s.Effect === 'Allow').flatMap(actionsOf),
      );
    for (const a of [
      'codebuild:CreateProject',
      'states:CreateStateMachine',
      'cognito-idp:CreateUserPool',
      'dynamodb:CreateTable',
      'ec2:CreateIpam',
    ]) {
      expect(tenantActions).not.toContain(a);
    }
    expect(types.tenants.has('AWS::CodeBuild::Project')).toBe(false);
  });

  test('IAM: only the stacks own roles and policies, roles only with the boundary, passed only to their services', () => {
    const account = '${aws:PrincipalAccount}';
    for (const [file, doc] of Object.entries(generated).filter(([f]) => f.includes('execution-policy'))) {
      const scope = file.startsWith('tenants-') ? DEPLOY_SCOPES.tenants : DEPLOY_SCOPES.platform;
      const statements = doc.Statement as Statement[];
      for (const s of statements.filter((x) => x.Effect === 'Allow')) {
        const iam = actionsOf(s).filter((a) => a.startsWith('iam:'));
        if (iam.length === 0) continue;
        if (s.Sid === 'ServiceLinkedRolesOfTheFleetsServices') {
          expect(s.Condition).toEqual({ StringEquals: { 'iam:AWSServiceName': expect.any(Array) } });
          continue;
        }
        // Named resources only: the roles and managed policies CloudFormation names after these stacks.
        const resources = s.Resource as string[];
        expect({ file, sid: s.Sid, resources }).toEqual({
          file,
          sid: s.Sid,
          resources: scope.stackPrefixes.map((p) =>
            expect.stringMatching(
              new RegExp(`^arn:aws:iam::\\$\\{aws:PrincipalAccount\\}:(role|policy)/${p}\\*$`),
            ),
          ),
        });
        if (
          iam.some((a) =>
            /^iam:(CreateRole|PutRolePolicy|AttachRolePolicy|PutRolePermissionsBoundary)$/.test(a),
          )
        ) {
          // Pinned to the account: no "*" that a crafted policy path could match.
          expect(s.Condition).toEqual({
            StringEquals: {
              'iam:PermissionsBoundary': `arn:aws:iam::${account}:policy/tenantforge-${scope.name}-boundary`,
            },
          });
        }
        if (iam.includes('iam:PassRole')) {
          expect(s.Condition).toEqual({ StringEquals: { 'iam:PassedToService': expect.any(Array) } });
        }
      }
    }
    for (const scope of ['tenants', 'platform']) {
      const denies = Object.entries(generated)
        .filter(([f]) => f.startsWith(`${scope}-execution-policy-`))
        .flatMap(([, d]) => d.Statement as Statement[])
        .filter((s) => s.Effect === 'Deny');
      expect(denies.map((s) => s.Sid)).toEqual(['NeverLoosenTheBoundary', 'NeverDropTheBoundary']);
    }
  });

  test('no statement in deploy/ or in any template allows "*", "*:*", "iam:*" or unbounded role creation', () => {
    const allStatements: { where: string; s: Statement }[] = [];
    for (const [file, doc] of Object.entries(generated).filter(([f]) => !f.endsWith('-template.json'))) {
      for (const s of doc.Statement as Statement[]) allStatements.push({ where: `deploy/${file}`, s });
    }
    for (const name of fleet.stackNames()) {
      const resources = fleet.template(name).toJSON().Resources as Record<
        string,
        { Type: string; Properties: Record<string, unknown> }
      >;
      for (const [id, r] of Object.entries(resources)) {
        const docs: { Statement: Statement[] }[] = [];
        if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy')
          docs.push(r.Properties.PolicyDocument as never);
        if (r.Type === 'AWS::IAM::Role') {
          for (const p of (r.Properties.Policies as { PolicyDocument: never }[] | undefined) ?? [])
            docs.push(p.PolicyDocument);
        }
        for (const d of docs) for (const s of d.Statement) allStatements.push({ where: `${name}/${id}`, s });
      }
    }
    expect(allStatements.length).toBeGreaterThan(100);
    const bad = allStatements.filter(
      ({ where, s }) =>
        s.Effect === 'Allow' &&
        actionsOf(s).some(
          (a) =>
            a === '*' ||
            a === '*:*' ||
            a === 'iam:*' ||
            // The boundary's allow-list names services with wildcards; it grants nothing by itself.
            (a.endsWith(':*') && !where.endsWith('permissions-boundary.json')) ||
            (/^iam:(CreateRole|PutRolePolicy|AttachRolePolicy|CreateUser|CreatePolicyVersion)$/.test(a) &&
              !where.startsWith('deploy/')),
        ),
    );
    expect(bad.map((b) => b.where)).toEqual([]);
  });

  test("every role in every template carries its scope's permissions boundary", () => {
    let roles = 0;
    for (const name of fleet.stackNames()) {
      const resources = fleet.template(name).toJSON().Resources as Record<
        string,
        { Type: string; Properties: Record<string, unknown> }
      >;
      for (const [id, r] of Object.entries(resources).filter(([, x]) => x.Type === 'AWS::IAM::Role')) {
        roles++;
        expect({ role: `${name}/${id}`, boundary: JSON.stringify(r.Properties.PermissionsBoundary) }).toEqual(
          {
            role: `${name}/${id}`,
            boundary: expect.stringContaining(
              `:policy/tenantforge-${name.startsWith('Tenant-') ? 'tenants' : 'platform'}-boundary`,
            ),
          },
        );
      }
    }
    expect(roles).toBeGreaterThan(20);
  });

  test("the tenants' boundary admits only the services tenant stacks' roles use: no control plane but reads of onboardings", () => {
    const tenants = actionsOf(generated['tenants-permissions-boundary.json'].Statement[0]);
    for (const svc of ['cognito-idp', 'codebuild', 'sts', 'events'])
      expect(tenants.filter((a) => a.startsWith(`${svc}:`))).toEqual([]);
    // Of IAM, passing a role (to ECS only, below); of ECS, a mobility runner's start of its runner task.
    expect(tenants.filter((a) => a.startsWith('iam:'))).toEqual([]);
    expect(tenants.filter((a) => a.startsWith('ecs:'))).toEqual(['ecs:DescribeTasks', 'ecs:RunTask']);
    // A silo's provisioner reads its own stack's status (is an update of the silo a move kept its rollback?);
    // nothing else of CloudFormation.
    expect(tenants.filter((a) => a.startsWith('cloudformation:'))).toEqual(['cloudformation:DescribeStacks']);
    // A silo's mobility runner reads its own tenant's onboarding executions and answers the task of a move out of
    // it (the token it was handed); nothing else of Step Functions.
    expect(tenants.filter((a) => a.startsWith('states:'))).toEqual([
      'states:DescribeExecution',
      'states:GetExecutionHistory',
      'states:SendTaskFailure',
      'states:SendTaskHeartbeat',
      'states:SendTaskSuccess',
    ]);
    expect(tenants).toEqual(expect.arrayContaining(['rds-db:*', 'secretsmanager:*', 's3:*']));
    const platform = actionsOf(generated['platform-permissions-boundary.json'].Statement[0]);
    expect(platform.filter((a) => a.startsWith('sts:'))).toEqual(['sts:AssumeRole', 'sts:TagSession']);
    // Nothing in IAM but passing the scope's own roles (which carry the boundary) to ECS tasks: a runner starts its
    // runner task with its own role. No role under either boundary creates, changes or passes anything else.
    for (const [scope, prefixes] of [
      ['tenants', ['Tenant-']],
      ['platform', ['Platform-', 'Pool-', 'Bridge-', 'Onboarding-']],
    ] as const) {
      const doc = generated[`${scope}-permissions-boundary.json`];
      expect(doc.Statement.slice(1)).toEqual([
        {
          Sid: 'PassingTheScopesOwnRoles',
          Effect: 'Allow',
          Action: 'iam:PassRole',
          Resource: prefixes.map((p) => `arn:aws:iam::\${aws:PrincipalAccount}:role/${p}*`),
          Condition: { StringEquals: { 'iam:PassedToService': ['ecs-tasks.amazonaws.com'] } },
        },
        {
          Sid: 'NothingInIamButPassingToTheseServices',
          Effect: 'Deny',
          Action: 'iam:*',
          Resource: '*',
          Condition: { StringNotEquals: { 'iam:PassedToService': ['ecs-tasks.amazonaws.com'] } },
        },
        {
          Sid: 'NothingInOrganizationsOrAccount',
          Effect: 'Deny',
          Action: ['organizations:*', 'account:*'],
          Resource: '*',
        },
      ]);
    }
  });

  test("tenant stacks deploy through the tenants' bootstrap, the shared stacks through the default", () => {
    const bootstrap = (name: string) =>
      (fleet.template(name).toJSON() as { Parameters: { BootstrapVersion: { Default: string } } }).Parameters
        .BootstrapVersion.Default;
    for (const name of fleet.stackNames()) {
      expect({ name, bootstrap: bootstrap(name) }).toEqual({
        name,
        bootstrap: name.startsWith('Tenant-')
          ? '/cdk-bootstrap/tftenants/version'
          : '/cdk-bootstrap/hnb659fds/version',
      });
    }
  });
});

describe("the tenants' CDK bootstrap", () => {
  type Res = { Properties: Record<string, unknown> };
  const t = generated['tenants-bootstrap-template.json'] as unknown as { Resources: Record<string, Res> };
  const statements = (r: string) =>
    (t.Resources[r].Properties.Policies as { PolicyDocument: { Statement: Statement[] } }[])[0].PolicyDocument
      .Statement;

  test('its roles are assumable only by the onboarding deploy job and the named deployers', () => {
    for (const role of ['DeploymentActionRole', 'FilePublishingRole', 'ImagePublishingRole', 'LookupRole']) {
      const trust = (t.Resources[role].Properties.AssumeRolePolicyDocument as { Statement: Statement[] })
        .Statement;
      const sameAccount = trust.filter(
        (s) =>
          JSON.stringify((s as { Principal?: unknown }).Principal) === '{"AWS":{"Ref":"AWS::AccountId"}}',
      );
      expect(sameAccount.length).toBeGreaterThan(0);
      for (const s of sameAccount) {
        expect(JSON.stringify(s.Condition)).toContain(`:role/${DEPLOY_JOB_ROLE_PREFIX}*`);
        expect(JSON.stringify(s.Condition)).toContain('{"Ref":"TrustedDeployers"}');
      }
    }
    // The prefix is the deploy job's role as synthesized (CloudFormation names it <stack>-<logical id>-<random>).
    const roleIds = Object.entries(
      fleet.template('Onboarding').toJSON().Resources as Record<string, { Type: string }>,
    )
      .filter(([, r]) => r.Type === 'AWS::IAM::Role')
      .map(([id]) => `Onboarding-${id}`);
    expect(roleIds.filter((id) => id.startsWith(DEPLOY_JOB_ROLE_PREFIX))).toHaveLength(1);
  });

  test('its deploy role changes only Tenant-* stacks and holds no cross-account rights', () => {
    const deploy = statements('DeploymentActionRole');
    const cfn = deploy.filter((s) => actionsOf(s).some((a) => a.startsWith('cloudformation:')));
    expect(cfn.length).toBeGreaterThan(0);
    for (const s of cfn) {
      expect(s.Resource).toEqual({
        'Fn::Sub': 'arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/Tenant-*/*',
      });
    }
    expect(deploy.map((s) => s.Sid)).not.toContain('PipelineCrossAccountArtifactsBucket');
    expect(deploy.flatMap(actionsOf).filter((a) => a.startsWith('s3:Put') || a.startsWith('kms:'))).toEqual(
      [],
    );
  });

  test('only its file-publishing role may write the asset bucket', () => {
    const policy = t.Resources.StagingBucketPolicy.Properties.PolicyDocument as { Statement: Statement[] };
    expect(policy.Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: ['s3:PutObject*', 's3:DeleteObject*', 's3:RestoreObject'],
        Condition: { ArnNotEquals: { 'aws:PrincipalArn': { 'Fn::GetAtt': ['FilePublishingRole', 'Arn'] } } },
      }),
    );
  });

  test('it is the CDK CLI template of this release, bootstrap version and all', () => {
    const cdk = cdkBootstrapTemplate() as { Resources: Record<string, Res> };
    expect(Object.keys(t.Resources).sort()).toEqual(Object.keys(cdk.Resources).sort());
    expect(t.Resources.CdkBootstrapVersion).toEqual(cdk.Resources.CdkBootstrapVersion);
  });
});

describe("the deploy job's source integrity", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-source-'));
    fs.mkdirSync(path.join(dir, 'lib'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"x"}');
    fs.writeFileSync(path.join(dir, 'lib', 'a.ts'), 'export const a = 1;\n');
    fs.mkdirSync(path.join(dir, 'node_modules', 'left-out'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'node_modules', 'left-out', 'index.js'), 'x');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const verify = (expected: string) => {
    try {
      return {
        code: 0,
        out: execFileSync('bash', ['-c', verifierCommand(expected)], {
          cwd: dir,
          encoding: 'utf8',
          stdio: 'pipe',
        }),
      };
    } catch (e) {
      const err = e as { status: number; stderr: string };
      return { code: err.status, out: err.stderr };
    }
  };

  test("the buildspec's verifier accepts the source the synth digested (the same algorithm, run by node -e)", () => {
    const digest = sourceDigest(dir);
    expect(verify(digest)).toEqual({ code: 0, out: `deploy source verified: ${digest}\n` });
    // What the build installs (node_modules) is not part of the source.
    fs.writeFileSync(path.join(dir, 'node_modules', 'left-out', 'index.js'), 'changed');
    expect(verify(digest).code).toBe(0);
  });

  test('a changed, added or removed file fails the build before anything is installed', () => {
    const digest = sourceDigest(dir);
    fs.writeFileSync(path.join(dir, 'lib', 'a.ts'), 'export const a = 2;\n');
    const changed = verify(digest);
    expect(changed.code).toBe(3);
    expect(changed.out).toContain(`the deploy source is not the one the synth uploaded`);
    expect(changed.out).toContain(`expected ${digest}`);
    fs.writeFileSync(path.join(dir, 'lib', 'a.ts'), 'export const a = 1;\n');
    expect(verify(digest).code).toBe(0);
    fs.writeFileSync(path.join(dir, 'postinstall.js'), 'evil()');
    expect(verify(digest).code).toBe(3);
    fs.rmSync(path.join(dir, 'postinstall.js'));
    fs.rmSync(path.join(dir, 'package.json'));
    expect(verify(digest).code).toBe(3);
  });

  test('a node_modules planted below the top (Node would load it first) changes the digest', () => {
    const digest = sourceDigest(dir);
    fs.mkdirSync(path.join(dir, 'lib', 'node_modules', 'aws-cdk-lib'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'lib', 'node_modules', 'aws-cdk-lib', 'index.js'), 'evil()');
    expect(verify(digest).code).toBe(3);
  });

  test('the asset the synth uploads is exactly the source it digested', () => {
    const project = Object.values(
      fleet.template('Onboarding').toJSON().Resources as Record<
        string,
        { Type: string; Properties: Record<string, unknown> }
      >,
    ).find((r) => r.Type === 'AWS::CodeBuild::Project')!;
    const buildspec = JSON.parse((project.Properties.Source as { BuildSpec: string }).BuildSpec);
    const command = buildspec.phases.install.commands[0] as string;
    const expected = /base64 -d\)" ([0-9a-f]{64})$/.exec(command)![1];
    const location = JSON.stringify(project.Properties.Source);
    const hash = /([0-9a-f]{64})\.zip/.exec(location)![1];
    const staged = path.join(fleet.app.outdir, `asset.${hash}`);
    expect(fs.existsSync(staged)).toBe(true);
    expect(sourceDigest(staged)).toBe(expected);
    expect(expected).toBe(sourceDigest(REPO_ROOT));
  });

  test('a symbolic link in the source is refused', () => {
    fs.symlinkSync('/etc/passwd', path.join(dir, 'lib', 'link'));
    expect(() => sourceDigest(dir)).toThrow(
      'source holds lib/link, which is not a regular file or directory',
    );
  });

  test('the repository digests as the synth digests it', () => {
    expect(sourceDigest(REPO_ROOT)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('which services the boundary lets roles pass roles to', () => {
  const role = (statement: Record<string, unknown>) => ({
    Resources: {
      R: {
        Type: 'AWS::IAM::Role',
        Properties: { Policies: [{ PolicyDocument: { Statement: [statement] } }] },
      },
    },
  });
  test("a policy's iam:PassRole, or a wildcard covering it, names its service, inline in a role too", () => {
    expect(
      passedToServices([
        role({
          Effect: 'Allow',
          Action: 'iam:Pass*',
          Resource: '*',
          Condition: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
        }),
      ]),
    ).toEqual(['ecs-tasks.amazonaws.com']);
    for (const action of ['iam:PassRole', 'iam:*', '*', ['s3:GetObject', 'iam:Pass*']]) {
      expect(() => passedToServices([role({ Effect: 'Allow', Action: action, Resource: '*' })])).toThrow(
        'R: a statement passes roles without an iam:PassedToService condition; name the service it passes them to',
      );
    }
    expect(passedToServices([role({ Effect: 'Allow', Action: 'iam:GetRole', Resource: '*' })])).toEqual([]);
  });
});
