import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DEPLOY_SCOPES } from '../../contracts';
import { executionPolicies, permissionsOf, RESOURCE_PERMISSIONS } from '../../lib/deploy-policy';
import { sourceDigest, verifierScript } from '../../lib/source-digest';
import { DEPLOY_DIR, deployPolicyFiles, fleetResourceTypes } from '../../scripts/deploy-policies';
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
const generated = deployPolicyFiles();
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
    for (const name of fleet.stackNames()) {
      const scope = name.startsWith('Tenant-') ? 'tenants' : 'platform';
      const allowed = new Set(
        Object.entries(generated)
          .filter(([f]) => f.startsWith(`${scope}-execution-policy-`))
          .flatMap(([, d]) =>
            (d.Statement as Statement[]).filter((s) => s.Effect === 'Allow').flatMap(actionsOf),
          ),
      );
      const resources = fleet.template(name).toJSON().Resources as Record<string, { Type: string }>;
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
      'the deploy policy has no permissions for AWS::Redshift::Cluster: add it to RESOURCE_PERMISSIONS in lib/deploy-policy.ts, then npm run deploy-policies',
    );
  });

  test('grants nothing else: every table entry is a type some template uses', () => {
    const used = new Set([...types.tenants, ...types.platform]);
    expect(Object.keys(RESOURCE_PERMISSIONS).filter((t) => !used.has(t))).toEqual([]);
  });

  test("the tenants' bootstrap can create only what tenant stacks hold", () => {
    const tenantActions = Object.entries(generated)
      .filter(([f]) => f.startsWith('tenants-'))
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
            expect.stringMatching(new RegExp(`^arn:aws:iam::\\*:(role|policy)/${p}\\*$`)),
          ),
        });
        if (
          iam.some((a) =>
            /^iam:(CreateRole|PutRolePolicy|AttachRolePolicy|PutRolePermissionsBoundary)$/.test(a),
          )
        ) {
          expect(s.Condition).toEqual({
            StringLike: { 'iam:PermissionsBoundary': 'arn:aws:iam::*:policy/tenantforge-boundary' },
          });
        }
        if (iam.includes('iam:PassRole')) {
          expect(s.Condition).toEqual({ StringEquals: { 'iam:PassedToService': expect.any(Array) } });
        }
      }
    }
    for (const scope of ['tenants', 'platform']) {
      const denies = Object.entries(generated)
        .filter(([f]) => f.startsWith(`${scope}-`))
        .flatMap(([, d]) => d.Statement as Statement[])
        .filter((s) => s.Effect === 'Deny');
      expect(denies.map((s) => s.Sid)).toEqual(['NeverLoosenTheBoundary', 'NeverDropTheBoundary']);
    }
  });

  test('no statement in deploy/ or in any template allows "*", "*:*", "iam:*" or unbounded role creation', () => {
    const allStatements: { where: string; s: Statement }[] = [];
    for (const [file, doc] of Object.entries(generated)) {
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

  test('every role in every template carries the permissions boundary', () => {
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
            boundary: expect.stringContaining(':policy/tenantforge-boundary'),
          },
        );
      }
    }
    expect(roles).toBeGreaterThan(20);
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
        out: execFileSync(process.execPath, ['-e', verifierScript()], {
          cwd: dir,
          env: { ...process.env, SOURCE_DIGEST: expected },
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
