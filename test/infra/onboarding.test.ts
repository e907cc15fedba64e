import { Match, Template } from 'aws-cdk-lib/assertions';
import { definitionOf } from '../helpers/asl';
import * as path from 'path';
import { sourceDigest, verifierCommand } from '../../lib/source-digest';
import { newApp, synthFleet } from './fleet-helpers';
import { OnboardingStack } from '../../lib/stacks/onboarding-stack';

// The pipeline's shape and permissions as deployed; its paths are executed in onboarding-workflow.test.ts.
const fleet = synthFleet();
const t: Template = fleet.template('Onboarding');
const resources = t.toJSON().Resources as Record<
  string,
  { Type: string; Properties: Record<string, unknown> }
>;
const def = definitionOf(t.toJSON() as never);
const states = def.States as Record<string, Record<string, unknown>>;
const FAILURE_PATH = [
  'ReadFailureReason',
  'ReadArchiveFailureReason',
  'MarkFailed',
  'EmitOnboardingFailed',
  'EmitOffboardingFailed',
];
/** Restores into a new tenant deploy nothing: their failure reason is read without the stack's events. */
const FROM_ARCHIVE = /^(Restore(Pool|Bridge)Archive|Vouch\w+ArchiveFor\w+|RestoreHandedOver\w+)$/;
/** A restore over a tenant's data has its own failure path: the tenant is thawed and serves again (never `failed`). */
const RESTORE_STEPS = ['RestorePoolTenantOver', 'RestoreBridgeTenantOver', 'RestoreSiloTenantOver'];
const RESTORE_FAILURE_PATH: Record<string, string> = {
  ReadRestoreFailureReason: 'GenericRestoreFailureReason',
  ThawPoolTenant: 'KeepFrozenAfterThawFailed',
  ThawBridgeTenant: 'KeepFrozenAfterThawFailed',
  ThawSiloTenant: 'KeepFrozenAfterThawFailed',
  // Nothing frozen yet: a refusal serves the tenant again with the runner's reason.
  CheckSiloRestore: 'ReadRestoreCheckFailureReason',
  ReadRestoreCheckFailureReason: 'GenericRestoreCheckFailureReason',
  ServeAgainAfterRestoreFailed: 'RestoreFailedUnrecorded',
  KeepFrozenAfterThawFailed: 'RestoreFailedUnrecorded',
  EmitRestoreFailed: 'RestoreFailed',
  // Once the rows are replaced nothing goes back to the thaw: the tenant holds the archive's data.
  MarkRestoredPool: 'RestoredUnrecorded',
  MarkRestoredBridge: 'RestoredUnrecorded',
  MarkRestoredSilo: 'RestoredUnrecorded',
  MarkRestoredAfterAll: 'RestoredUnrecorded',
  EmitRestoredPool: 'RestoredNotAnnounced',
  EmitRestoredBridge: 'RestoredNotAnnounced',
  EmitRestoredSilo: 'RestoredNotAnnounced',
  EmitRestoredAfterAll: 'RestoredNotAnnounced',
};

/** A move's steps before its switch catch into its own failure path, which rolls back (never `failed`). */
const MOVE_RUNNER_STEPS = /^(MoveOut(Pool|Bridge|Silo)To\w+|RestoreMoved\w+|MarkMoveSilo(Sealed|Filled)\w+)$/;
// ... and into a silo, its readiness and seal, whose reasons are read from the tenant stack's events too.
const MOVE_DEPLOY_STEPS = /^(DeployMovePhase\w+|CheckMovedSiloReady\w+|SealMovePhase\w+ToSilo)$/;
const MOVE_FAILURE_PATH: Record<string, string> = {
  ReadMoveFailureReason: 'GenericMoveFailureReason',
  ReadMoveDeployFailureReason: 'GenericMoveFailureReason',
  AbortMove: 'KeepMovingAfterRollbackFailed',
  DropMovedIntoPool: 'KeepMovingAfterRollbackFailed',
  DropMovedIntoBridge: 'KeepMovingAfterRollbackFailed',
  // (its runner not there: no silo to empty, the protection lifted anyway; below)
  EmptyMovedInSilo: 'KeepMovingAfterRollbackFailed',
  RetireMovedInSilo: 'KeepMovingAfterRollbackFailed',
  DeployWithoutMove: 'KeepMovingAfterRollbackFailed',
  // The silo is gone: a registry that still records its stage only costs a later rollback a needless deploy.
  ForgetRemovedSilo: 'ThawWhereItWas',
  ThawMovingPoolTenant: 'KeepMovingAfterThawFailed',
  ThawMovingBridgeTenant: 'KeepMovingAfterThawFailed',
  ThawMovingSiloTenant: 'KeepMovingAfterThawFailed',
  ServeAgainAfterMoveFailed: 'MoveFailedUnrecorded',
  KeepMovingAfterThawFailed: 'MoveFailedUnrecorded',
  KeepMovingAfterRollbackFailed: 'MoveFailedUnrecorded',
  EmitMoveFailed: 'MoveFailed',
  // Once switched, nothing goes back to the rollback: the tenant may already be served by the other cell.
  SwitchModel: 'MoveSwitchUnrecorded',
  EmitMoved: 'DeployMovedTenant',
  DeployMovedTenant: 'MovedSourceNotRetired',
  // A purge's steps: the tenant serves on from its cell; a failure only releases it with the reason.
  PurgeKeptPoolCopy: 'ReadPurgeFailureReason',
  PurgeKeptBridgeCopy: 'ReadPurgeFailureReason',
  PurgeKeptSiloCopy: 'ReadPurgeFailureReason',
  RetireKeptSilo: 'ReadPurgeDeployFailureReason',
  DeployWithoutKeptSilo: 'ReadPurgeDeployFailureReason',
  ReadPurgeDeployFailureReason: 'GenericPurgeFailureReason',
  MarkPurged: 'ReadPurgeFailureReason',
  ReadPurgeFailureReason: 'GenericPurgeFailureReason',
  ReleaseAfterPurgeFailed: 'PurgeFailedUnrecorded',
  EmitCopyPurged: 'Purged',
};

function statementsOf(roleLogicalIdPart: string): Record<string, unknown>[] {
  const policy = Object.values(resources).find(
    (r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(roleLogicalIdPart),
  )!;
  return (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
}

describe('onboarding pipeline', () => {
  test("with a DNS zone, an onboarding's readiness is checked at the tenant's name, a move into a silo's at the silo's own service", () => {
    const app = newApp();
    const stack = new OnboardingStack(app, 'Onboarding', {
      env: { region: 'us-east-1' },
      domainName: 'tenants.example.com',
    });
    const named = definitionOf(Template.fromStack(stack).toJSON() as never).States as Record<
      string,
      { Parameters?: Record<string, unknown> }
    >;
    expect(named.CheckReady.Parameters).toMatchObject({
      'host.$': "States.Format('{}.tenants.example.com', $.tenant.hostname)",
    });
    // The tenant's name may still reach the cell it leaves until resolvers catch up; that cell answers too.
    for (const from of ['Pool', 'Bridge']) {
      expect(named[`CheckMovedSiloReady${from}`].Parameters).toEqual({
        step: 'checkReady',
        'tenantId.$': '$.tenant.tenantId',
        model: 'silo',
      });
    }
  });

  test('every task after the request is accepted catches every error into the failure path', () => {
    const tasks = Object.entries(states).filter(([, s]) => s.Type === 'Task');
    for (const [name, s] of tasks) {
      if (
        name === 'Accept' ||
        FAILURE_PATH.includes(name) ||
        RESTORE_FAILURE_PATH[name] ||
        MOVE_FAILURE_PATH[name]
      ) {
        continue;
      }
      expect({ name, catch: s.Catch }).toEqual({
        name,
        catch: [
          // A silo whose runner does not exist froze nothing: it serves again at once.
          ...(name === 'RestoreSiloTenantOver'
            ? [
                {
                  ErrorEquals: ['Lambda.ResourceNotFoundException'],
                  ResultPath: '$.error',
                  Next: 'SiloRunnerNotThere',
                },
              ]
            : []),
          {
            ErrorEquals: ['States.ALL'],
            ResultPath: '$.error',
            Next: RESTORE_STEPS.includes(name)
              ? 'ReadRestoreFailureReason'
              : MOVE_RUNNER_STEPS.test(name)
                ? 'ReadMoveFailureReason'
                : MOVE_DEPLOY_STEPS.test(name)
                  ? 'ReadMoveDeployFailureReason'
                  : FROM_ARCHIVE.test(name)
                    ? 'ReadArchiveFailureReason'
                    : 'ReadFailureReason',
          },
        ],
      });
    }
    // Each step of the restore's and the move's failure paths catches into its next step or an end state, never
    // back into it.
    for (const [name, next] of Object.entries({ ...RESTORE_FAILURE_PATH, ...MOVE_FAILURE_PATH })) {
      expect({ name, catch: states[name].Catch }).toEqual({
        name,
        catch: [
          ...(name === 'EmptyMovedInSilo'
            ? [
                expect.objectContaining({
                  ErrorEquals: ['Lambda.ResourceNotFoundException'],
                  Next: 'RetireMovedInSilo',
                }),
              ]
            : []),
          ...(name === 'ThawSiloTenant' || name === 'CheckSiloRestore'
            ? [
                expect.objectContaining({
                  ErrorEquals: ['Lambda.ResourceNotFoundException'],
                  Next: 'SiloRunnerNotThere',
                }),
              ]
            : []),
          expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: next }),
        ],
      });
    }
    // The failure path's own steps catch into its next step or an end state, never back into it.
    for (const reason of ['ReadFailureReason', 'ReadArchiveFailureReason']) {
      expect(states[reason].Catch).toEqual([
        expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'GenericFailureReason' }),
      ]);
    }
    // Every state that catches into the archive's reason is a restore into a new tenant.
    expect(
      Object.entries(states)
        .filter(([, s]) => JSON.stringify(s.Catch ?? []).includes('"ReadArchiveFailureReason"'))
        .map(([name]) => name)
        .filter((name) => !FROM_ARCHIVE.test(name)),
    ).toEqual([]);
    expect(states.MarkFailed.Catch).toEqual([
      expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'FailedUnrecorded' }),
    ]);
  });

  test("a restore over a tenant's data is invoked once: only errors that say the runner did not run are retried", () => {
    for (const [name, runner] of [
      ['RestorePoolTenantOver', 'tenantforge-pool-mobility'],
      ['RestoreBridgeTenantOver', 'tenantforge-bridge-mobility'],
    ]) {
      const retried = (states[name].Retry as { ErrorEquals: string[] }[]).flatMap((r) => r.ErrorEquals);
      expect({ name, retried: retried.sort() }).toEqual({
        name,
        retried: [
          'Lambda.ResourceConflictException',
          'Lambda.TooManyRequestsException',
          'ThrottlingException',
        ],
      });
      // A data step: it waits for its token (the runner, or the runner task it starts, answers), beating.
      expect(states[name].Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
      expect(JSON.stringify(states[name].Parameters)).toContain(`:function:${runner}`);
      expect((states[name].Parameters as { Payload: unknown }).Payload).toEqual({
        action: 'replace',
        'tenantId.$': '$.tenant.tenantId',
        'archive.$': '$.tenant.restoreArchive',
        'execution.$': '$$.Execution.Id',
        'taskToken.$': '$$.Task.Token',
      });
      expect(states[name]).toMatchObject({ HeartbeatSeconds: 600, TimeoutSeconds: 4 * 3600 });
    }
  });

  test('the first step admits only the execution holding its lock (taken by the entry); rejection ends it there', () => {
    expect(def.StartAt).toBe('Accept');
    expect(states.Accept.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RequestRejected' },
    ]);
    expect(states.Accept.Parameters).toMatchObject({
      'execution.$': '$$.Execution.Id',
      'input.$': '$',
      step: 'accept',
    });
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
    // The execution outlasts its longest path, a move into a silo rolled back after its seal: each state's own
    // timeout, and the readiness check's retries (20 s growing 1.2x, 20 times), which deploy nothing.
    const longest = [
      'DeployMovePhasePoolToSilo',
      'CheckMovedSiloReadyPool',
      'MarkMoveSiloSealedPool',
      'SealMovePhasePoolToSilo',
      'MoveOutPoolToSilo',
      'MarkMoveSiloFilledPool',
      'RestoreMovedPoolIntoSilo',
      'ReadMoveFailureReason',
      'AbortMove',
      'EmptyMovedInSilo',
      'RetireMovedInSilo',
      'DeployWithoutMove',
      'ForgetRemovedSilo',
      'ThawMovingPoolTenant',
      'ServeAgainAfterMoveFailed',
    ];
    // Each state: its attempts (a retrier of errors that say the call never ran, throttling, adds only its
    // waits; any other adds whole attempts, the readiness check's `NotReady` among them) and the waits between.
    type Retrier = {
      ErrorEquals: string[];
      IntervalSeconds?: number;
      BackoffRate?: number;
      MaxAttempts?: number;
    };
    const worstOf = (name: string) => {
      const s = states[name];
      let seconds = Number(s.TimeoutSeconds);
      for (const r of (s.Retry ?? []) as Retrier[]) {
        const attempts = r.MaxAttempts ?? 3;
        for (let i = 0; i < attempts; i++) seconds += (r.IntervalSeconds ?? 1) * (r.BackoffRate ?? 2) ** i;
        if (!r.ErrorEquals.includes('ThrottlingException')) seconds += attempts * Number(s.TimeoutSeconds);
      }
      return seconds;
    };
    const worst = longest.reduce((sum, name) => sum + worstOf(name), 0);
    expect(worst).toBeGreaterThan(10 * 3600);
    expect(def.TimeoutSeconds).toBeGreaterThan(worst);
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

  test('the deploy job verifies its source, installs from the lockfile only, builds no image, and assumes only the tenant bootstrap roles', () => {
    const project = Object.values(resources).find((r) => r.Type === 'AWS::CodeBuild::Project')!;
    const buildspec = JSON.parse((project.Properties.Source as { BuildSpec: string }).BuildSpec);
    // The source check comes first, with the digest written into the command (no variable an override sets).
    expect(buildspec.phases.install.commands).toEqual([
      verifierCommand(sourceDigest(path.join(__dirname, '..', '..'))),
      'npm ci --ignore-scripts --no-audit --no-fund',
    ]);
    expect(buildspec.env.variables).toBeUndefined();
    expect(buildspec.phases.build.commands[0]).toContain('-c "tenantPhase=$TENANT_PHASE"');
    expect(buildspec.phases.build.commands[0]).not.toMatch(/docker|--build/);
    expect(project.Properties.Environment).toMatchObject({ PrivilegedMode: false });
    const assume = statementsOf('DeployTenantRole').find((s) => s.Sid === 'AssumeTenantBootstrapRoles')!;
    expect(assume.Action).toEqual(['sts:AssumeRole', 'sts:TagSession']);
    const roles = JSON.stringify(assume.Resource);
    expect(roles).toContain('role/cdk-tftenants-deploy-role-');
    expect(roles).toContain('role/cdk-tftenants-file-publishing-role-');
    expect(roles).not.toMatch(/hnb659fds|image-publishing|lookup/);
    // Only the workflow starts builds: no other policy in the stack names codebuild:StartBuild.
    const starters = Object.entries(resources).filter(
      ([, r]) =>
        r.Type === 'AWS::IAM::Policy' &&
        JSON.stringify(r.Properties.PolicyDocument).includes('codebuild:StartBuild'),
    );
    expect(starters.map(([, r]) => JSON.stringify(r.Properties.Roles))).toEqual([
      expect.stringMatching(/WorkflowRole/),
    ]);
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

  test('requests come only through the IAM-authorized entry: no event rule starts the workflow', () => {
    const rules = Object.values(resources).filter((r) => r.Type === 'AWS::Events::Rule');
    expect(rules.map((r) => JSON.stringify(r.Properties.EventPattern))).toEqual([
      expect.stringContaining('"source":["aws.states"]'),
    ]);
    t.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'AWS_IAM' });
    // Only the entry may start the workflow.
    const starters = Object.values(resources).filter(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        JSON.stringify(r.Properties.PolicyDocument).includes('states:StartExecution'),
    );
    expect(starters.map((r) => JSON.stringify(r.Properties.Roles))).toEqual([expect.stringMatching(/Entry/)]);
    // With no principals named, nobody may call the entry: no invoke permission at all.
    expect(Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Permission')).toHaveLength(1);
  });

  test('the steps manage users only in the platform user pool, and the entry writes the registry', () => {
    const cognito = statementsOf('StepsServiceRole').find((s) => s.Sid === 'ManageTenantUsers')!;
    expect(JSON.stringify(cognito.Resource)).toContain(':userpool/');
    expect(cognito.Action).not.toContain('cognito-idp:AdminUpdateUserAttributes');
    expect(statementsOf('EntryServiceRole').map((s) => s.Sid)).toEqual(
      expect.arrayContaining(['TenantRegistryItems', 'TenantRegistryKey']),
    );
  });
});

describe('onboarding entry with named principals', () => {
  const REQUESTER = 'arn:aws:iam::111122223333:role/onboarding-pipeline';
  const APPROVER = 'arn:aws:iam::111122223333:user/cfo';
  const named = synthFleet(undefined, { onboarding: { requesters: [REQUESTER], approvers: [APPROVER] } });
  const o = named.template('Onboarding');

  test('only they may invoke the function URL (both permissions AWS requires), and the function knows them', () => {
    const perms = Object.values(o.findResources('AWS::Lambda::Permission')).map(
      (r) => (r as { Properties: Record<string, unknown> }).Properties,
    );
    const byPrincipal = (p: string) =>
      perms
        .filter((x) => x.Principal === p)
        .map((x) => x.Action)
        .sort();
    expect(byPrincipal(REQUESTER)).toEqual(['lambda:InvokeFunction', 'lambda:InvokeFunctionUrl']);
    expect(byPrincipal(APPROVER)).toEqual(['lambda:InvokeFunction', 'lambda:InvokeFunctionUrl']);
    expect(
      perms.find((x) => x.Action === 'lambda:InvokeFunction' && x.Principal === REQUESTER),
    ).toMatchObject({
      InvokedViaFunctionUrl: true,
    });
    expect(
      perms.find((x) => x.Action === 'lambda:InvokeFunctionUrl' && x.Principal === REQUESTER),
    ).toMatchObject({
      FunctionUrlAuthType: 'AWS_IAM',
    });
    o.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ REQUESTERS: REQUESTER, APPROVERS: APPROVER }),
      },
    });
  });

  test('a principal that is not an IAM role or user ARN is refused at synth, with the option to fix', () => {
    expect(() =>
      synthFleet(undefined, { onboarding: { requesters: ['arn:aws:iam::111122223333:root'] } }),
    ).toThrow('-c onboardingRequesters: "arn:aws:iam::111122223333:root" is not an IAM role or user ARN');
    expect(() => synthFleet(undefined, { onboarding: { approvers: ['*'] } })).toThrow(
      '-c onboardingApprovers: "*"',
    );
  });
});
