import { Match, Template } from 'aws-cdk-lib/assertions';
import { definitionOf } from '../helpers/asl';
import { synthFleet } from './fleet-helpers';

// The pipeline's shape and permissions as deployed; its paths are executed in onboarding-workflow.test.ts.
const fleet = synthFleet();
const t: Template = fleet.template('Onboarding');
const resources = t.toJSON().Resources as Record<
  string,
  { Type: string; Properties: Record<string, unknown> }
>;
const def = definitionOf(t.toJSON() as never);
const states = def.States as Record<string, Record<string, unknown>>;
const FAILURE_PATH = ['ReadFailureReason', 'MarkFailed', 'EmitOnboardingFailed', 'EmitOffboardingFailed'];

function statementsOf(roleLogicalIdPart: string): Record<string, unknown>[] {
  const policy = Object.values(resources).find(
    (r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(roleLogicalIdPart),
  )!;
  return (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
}

describe('onboarding pipeline', () => {
  test('every task after the request is accepted catches every error into the failure path', () => {
    const tasks = Object.entries(states).filter(([, s]) => s.Type === 'Task');
    for (const [name, s] of tasks) {
      if (name === 'Begin' || FAILURE_PATH.includes(name)) continue;
      expect({ name, catch: s.Catch }).toEqual({
        name,
        catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ReadFailureReason' }],
      });
    }
    // The failure path's own steps catch into its next step or an end state, never back into it.
    expect(states.ReadFailureReason.Catch).toEqual([
      expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'GenericFailureReason' }),
    ]);
    expect(states.MarkFailed.Catch).toEqual([
      expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'FailedUnrecorded' }),
    ]);
  });

  test('a request is accepted by one step that validates it and takes the tenant lock; rejection ends it there', () => {
    expect(states.Begin.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RequestRejected' },
    ]);
    expect(states.Begin.Parameters).toMatchObject({ 'execution.$': '$$.Execution.Id' });
    expect(states.RequestRejected).toMatchObject({ Type: 'Fail', Error: 'RequestRejected' });
  });

  test('every task retries throttling with backoff, readiness is polled, and everything has a timeout', () => {
    for (const [name, s] of Object.entries(states).filter(([, x]) => x.Type === 'Task')) {
      const retry = s.Retry as { ErrorEquals: string[]; BackoffRate: number; MaxAttempts: number }[];
      expect({
        name,
        throttling: retry?.some((r) => r.ErrorEquals.includes('ThrottlingException') && r.BackoffRate > 1),
      }).toEqual({
        name,
        throttling: true,
      });
      if (!name.startsWith('Emit')) {
        expect({ name, timeout: s.TimeoutSeconds }).toEqual({ name, timeout: expect.any(Number) });
      }
    }
    expect(states.CheckReady.Retry).toEqual(
      expect.arrayContaining([expect.objectContaining({ ErrorEquals: ['NotReady'], MaxAttempts: 20 })]),
    );
    expect(def.TimeoutSeconds).toBe(6 * 3600);
    t.hasResourceProperties('AWS::CodeBuild::Project', { TimeoutInMinutes: 90 });
  });

  test('an execution that ends without recording it is reconciled: its status change reaches the step function', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: {
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
          stateMachineArn: [{ Ref: Match.stringLikeRegexp('Workflow') }],
        },
      },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Steps'), 'Arn'] },
          InputTransformer: Match.objectLike({ InputTemplate: Match.stringLikeRegexp('"step":"reconcile"') }),
        }),
      ],
    });
  });

  test('the deploy job installs from the lockfile only, builds no image, and assumes only the deploy and file-publishing roles', () => {
    const project = Object.values(resources).find((r) => r.Type === 'AWS::CodeBuild::Project')!;
    const buildspec = JSON.parse((project.Properties.Source as { BuildSpec: string }).BuildSpec);
    expect(buildspec.phases.install.commands).toEqual(['npm ci --ignore-scripts --no-audit --no-fund']);
    expect(buildspec.phases.build.commands[0]).toContain('-c "tenantPhase=$TENANT_PHASE"');
    expect(buildspec.phases.build.commands[0]).not.toMatch(/docker|--build/);
    expect(project.Properties.Environment).toMatchObject({ PrivilegedMode: false });
    const assume = statementsOf('DeployTenantRole').find((s) => s.Sid === 'AssumeCdkBootstrapRoles')!;
    expect(assume.Action).toEqual(['sts:AssumeRole', 'sts:TagSession']);
    const roles = JSON.stringify(assume.Resource);
    expect(roles).toContain('role/cdk-hnb659fds-deploy-role-');
    expect(roles).toContain('role/cdk-hnb659fds-file-publishing-role-');
    expect(roles).not.toMatch(/image-publishing|lookup/);
  });

  test('no policy grants "*" actions; the steps cannot modify a database, only snapshot a silo one', () => {
    const policies = Object.values(resources).filter(
      (r) => r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy',
    );
    for (const p of policies) {
      for (const st of (p.Properties.PolicyDocument as { Statement: { Action: string | string[] }[] })
        .Statement) {
        const actions = Array.isArray(st.Action) ? st.Action : [st.Action];
        expect(actions).not.toContain('*');
        expect(actions.filter((a) => a.endsWith(':*'))).toEqual([]);
      }
    }
    const steps = statementsOf('StepsServiceRole');
    const actions = steps.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])) as string[];
    expect(actions.filter((a) => a.startsWith('rds:'))).toEqual(
      expect.arrayContaining(['rds:CreateDBSnapshot', 'rds:DescribeDBSnapshots']),
    );
    expect(actions).not.toContain('rds:ModifyDBInstance');
    expect(actions.filter((a) => /^rds:(Modify|Delete)/.test(a))).toEqual([]);
    const snapshot = steps.find((s) => s.Sid === 'SnapshotSiloDatabases')!;
    expect(snapshot.Condition).toEqual({ StringEquals: { 'aws:ResourceTag/isolation-model': 'silo' } });
  });

  test('the steps read and write the registry with exactly the key rights DynamoDB needs, for that table only', () => {
    const steps = statementsOf('StepsServiceRole');
    expect(steps.find((s) => s.Sid === 'TenantRegistryItems')).toMatchObject({
      Action: ['dynamodb:GetItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
    });
    expect(steps.find((s) => s.Sid === 'TenantRegistryKey')).toMatchObject({
      Action: [
        'kms:Decrypt',
        'kms:DescribeKey',
        'kms:Encrypt',
        'kms:GenerateDataKey',
        'kms:ReEncryptFrom',
        'kms:ReEncryptTo',
      ],
      Condition: {
        StringEquals: {
          'kms:ViaService': 'dynamodb.us-east-1.amazonaws.com',
          'kms:EncryptionContext:aws:dynamodb:tableName': {
            Ref: expect.stringMatching(/^SsmParameterValuetenantforgeplatformregistrytablename/),
          },
        },
      },
    });
  });

  test('requests arrive as EventBridge events and start the workflow', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['tenantforge.requests'], 'detail-type': ['OnboardTenant', 'OffboardTenant'] },
      Targets: [Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('Workflow') } })],
    });
  });
});
