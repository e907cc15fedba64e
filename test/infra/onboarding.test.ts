import { Match, Template } from 'aws-cdk-lib/assertions';
import { synthFleet } from './fleet-helpers';

const fleet = synthFleet();
const t: Template = fleet.template('Onboarding');
const resources = t.toJSON().Resources as Record<
  string,
  { Type: string; Properties: Record<string, unknown> }
>;

function definition(): {
  StartAt: string;
  States: Record<string, Record<string, unknown>>;
  TimeoutSeconds?: number;
} {
  const [sm] = Object.values(resources).filter((r) => r.Type === 'AWS::StepFunctions::StateMachine');
  const body = sm.Properties.DefinitionString as { 'Fn::Join': [string, unknown[]] };
  // Tokens (ARNs, partition) sit inside JSON strings; render each as plain text.
  const text = body['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('');
  return JSON.parse(text);
}

describe('onboarding pipeline', () => {
  const def = definition();
  const states = def.States;

  test('the workflow validates, marks provisioning, deploys, waits for readiness, marks active and emits TenantOnboarded', () => {
    const path: string[] = [];
    let name: string | undefined = 'MarkProvisioning';
    while (name) {
      path.push(name);
      name = states[name].Next as string | undefined;
    }
    expect(path).toEqual([
      'MarkProvisioning',
      'DeployTenantStack',
      'CheckReady',
      'MarkActive',
      'EmitOnboarded',
      'Onboarded',
    ]);
    expect(states.DeployTenantStack.Resource).toMatch(/codebuild:startBuild.sync/);
    // The request is kept in the registry, so offboarding can build the same stack to destroy it.
    expect(states.MarkProvisioning.Parameters).toMatchObject({
      'request.$': '$.tenant.tenantRequest',
      status: 'provisioning',
    });
    expect(states.EmitOnboarded.Parameters).toMatchObject({
      Entries: [expect.objectContaining({ DetailType: 'TenantOnboarded' })],
    });
  });

  test('every task after validation catches every error into the failure path, which records the reason and emits TenantOnboardingFailed', () => {
    const tasks = Object.entries(states).filter(([, s]) => s.Type === 'Task');
    const failurePath = ['ReadFailureReason', 'MarkFailed', 'EmitOnboardingFailed'];
    for (const [name, s] of tasks) {
      if (name === 'Validate' || failurePath.includes(name)) continue;
      expect({ name, catch: s.Catch }).toEqual({
        name,
        catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ReadFailureReason' }],
      });
    }
    expect(states.ReadFailureReason.Next).toBe('MarkFailed');
    expect(states.MarkFailed.Next).toBe('EmitOnboardingFailed');
    expect(states.EmitOnboardingFailed.Next).toBe('OnboardingFailed');
    expect(states.OnboardingFailed).toMatchObject({ Type: 'Fail', Error: 'TenantOnboardingFailed' });
    expect(states.EmitOnboardingFailed.Parameters).toMatchObject({
      Entries: [expect.objectContaining({ DetailType: 'TenantOnboardingFailed' })],
    });
  });

  test('an invalid request ends in RequestRejected without touching the registry', () => {
    expect(states.Validate.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RequestRejected' },
    ]);
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
      if (name !== 'EmitOnboarded' && name !== 'EmitOnboardingFailed' && name !== 'EmitOffboarded') {
        expect({ name, timeout: s.TimeoutSeconds }).toEqual({ name, timeout: expect.any(Number) });
      }
    }
    expect(states.CheckReady.Retry).toEqual(
      expect.arrayContaining([expect.objectContaining({ ErrorEquals: ['NotReady'], MaxAttempts: 12 })]),
    );
    expect(def.TimeoutSeconds).toBe(3 * 3600);
    t.hasResourceProperties('AWS::CodeBuild::Project', { TimeoutInMinutes: 90 });
  });

  test("offboarding takes a silo tenant's final snapshot before destroying its stack", () => {
    expect(states.IsSilo.Choices).toEqual([
      expect.objectContaining({ Variable: '$.tenant.model', StringEquals: 'silo', Next: 'FinalSnapshot' }),
    ]);
    expect(states.IsSilo.Default).toBe('DestroyTenantStack');
    expect(states.FinalSnapshot.Next).toBe('WaitForSnapshot');
    expect(states.RecordSnapshot.Next).toBe('DestroyTenantStack');
    expect(states.DestroyTenantStack.Next).toBe('MarkOffboarded');
  });

  test('the deploy job can only assume the CDK bootstrap roles: no "*" action, no "*" resource', () => {
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
    const buildPolicy = policies.find((p) =>
      JSON.stringify(p.Properties.Roles).includes('DeployTenantRole'),
    )!;
    const statements = (buildPolicy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] })
      .Statement;
    const assume = statements.find((s) => s.Sid === 'AssumeCdkBootstrapRoles')!;
    expect(assume.Action).toEqual(['sts:AssumeRole', 'sts:TagSession']);
    expect(JSON.stringify(assume.Resource)).toContain('role/cdk-hnb659fds-deploy-role-');
    expect(statements.map((s) => s.Action).flat()).not.toEqual(
      expect.arrayContaining([expect.stringMatching(/^(cloudformation|iam|ec2|rds):/)]),
    );
    t.hasResourceProperties('AWS::CodeBuild::Project', {
      Environment: Match.objectLike({ PrivilegedMode: false }),
      EncryptionKey: Match.anyValue(),
    });
  });

  test('requests arrive as EventBridge events and start the workflow', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['tenantforge.requests'], 'detail-type': ['OnboardTenant', 'OffboardTenant'] },
      Targets: [Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('Workflow') } })],
    });
  });
});
