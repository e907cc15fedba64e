import { mockClient } from 'aws-sdk-client-mock';
import {
  CloudFormationClient,
  DescribeStackEventsCommand,
  ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import {
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  CreateDBClusterSnapshotCommand,
  CreateDBSnapshotCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBSnapshotsCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { Definition, definitionOf, execute, Execution, Json, StopExecution, TaskError } from '../helpers/asl';
import { FakePrincipal, fakeSts } from '../helpers/fake-sts';
import { Moto, startMoto } from '../helpers/moto';
import { entryRequestBody } from '../../scripts/request';
import { siloMobilityRunnerName, ssmNames } from '../../contracts';
import { synthFleet } from './fleet-helpers';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  ApprovalDeps,
  expectApprovedReplace,
  expectApprovedRestore,
  expectApprovedThaw,
  expectApprovedHandover,
  expectApprovedVouch,
} from '../../lambda/tenant-provisioner/mobility-approval';
import type { Env } from '../../lambda/tenant-provisioner/request';
import { expectApprovedMoveIn, expectMoveHeld } from '../../lambda/tenant-provisioner/mobility-move';

// The synthesized onboarding state machine, executed: requests go in through the real onboarding entry, its
// Lambda steps are the real handler (the registry and the user pool are DynamoDB's and Cognito's APIs, from moto),
// the deploy job and EventBridge are scripted, and every other AWS service is stubbed at the SDK boundary. A path
// that reads a field the input does not have fails here as it would in AWS.
const cfn = mockClient(CloudFormationClient);
const ecs = mockClient(ECSClient);
const elb = mockClient(ElasticLoadBalancingV2Client);
const rds = mockClient(RDSClient);
const ssm = mockClient(SSMClient);
const sfn = mockClient(SFNClient);

const STATE_MACHINE = 'arn:aws:states:us-east-1:111122223333:stateMachine:Workflow';
const REQUESTER = 'arn:aws:iam::111122223333:role/onboarding-pipeline';
const PIPELINE: FakePrincipal = {
  accessKeyId: 'AKIAPIPELINE00000001',
  secretAccessKey: 'pipeline-secret',
  arn: 'arn:aws:sts::111122223333:assumed-role/onboarding-pipeline/ci',
};
let moto: Moto;
let userPoolId: string;
let steps: typeof import('../../lambda/onboarding');
let entry: typeof import('../../lambda/onboarding-entry');
let definition: Definition;

beforeAll(async () => {
  moto = await startMoto();
  userPoolId = await moto.createUserPool();
  Object.assign(process.env, {
    USER_POOL_ID: userPoolId,
    STATE_MACHINE_ARN: STATE_MACHINE,
    REQUESTERS: REQUESTER,
    APPROVERS: '',
  });
  steps = await import('../../lambda/onboarding');
  entry = await import('../../lambda/onboarding-entry');
  definition = definitionOf(synthFleet().template('Onboarding').toJSON() as never);
});
afterAll(async () => {
  await moto.stop();
});

interface Build {
  action: string;
  phase: string;
  tenantId: string;
  request: string;
}
let builds: Build[];
/** The shared cells' mobility runners as the workflow invoked them: function ARN and payload. */
let runnerCalls: { functionArn: string; payload: Record<string, unknown> }[];
/** What the runner does (default: the real runner's approval checks, then success). */
let onRunner: (
  payload: Record<string, unknown>,
  model: 'pool' | 'bridge' | 'silo',
) => Promise<void | Record<string, unknown>> | void | Record<string, unknown>;
/** The running execution's input, as the entry started it (what Step Functions would tell the runner). */
let runningInput: { id: string; input: string } | undefined;
let events: { Source?: string; DetailType: string; Detail: unknown }[];
/** The running execution's history of Task state exits (what GetExecutionHistory would list), oldest first. */
let stateExits: { state: string; output: string }[] = [];
/** What the deploy job does for each build (default: succeeds). */
let onBuild: (b: Build) => Promise<void> | void;

beforeEach(async () => {
  [cfn, ecs, elb, rds, ssm, sfn].forEach((m) => m.reset());
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(global, 'fetch').mockImplementation(fakeSts([PIPELINE]));
  await moto.resetRegistry();
  builds = [];
  runnerCalls = [];
  onRunner = expectHeldForRestore;
  process.env.APPROVERS = '';
  events = [];
  onBuild = () => undefined;
  // A service that becomes ready on the second look.
  ssm.on(GetParameterCommand).resolves({
    Parameter: { Value: JSON.stringify({ cluster: 'c', service: 's', targetGroupArn: 'tg' }) },
  });
  ecs
    .on(DescribeServicesCommand)
    .resolvesOnce({
      services: [
        {
          desiredCount: 2,
          runningCount: 0,
          deployments: [{ status: 'PRIMARY', rolloutState: 'IN_PROGRESS' }],
        },
      ],
    })
    .resolves({
      services: [
        { desiredCount: 2, runningCount: 2, deployments: [{ status: 'PRIMARY', rolloutState: 'COMPLETED' }] },
      ],
    });
  elb
    .on(DescribeTargetHealthCommand)
    .resolves({ TargetHealthDescriptions: [{ TargetHealth: { State: 'healthy' } }] });
  cfn.on(DescribeStackEventsCommand).rejects(new Error('Stack with id Tenant-x does not exist'));
});

/** Runs the state machine on `input` as execution `id` (what StartExecution would do). */
async function run(input: Record<string, unknown>, id: string): Promise<Execution & { id: string }> {
  stateExits = [];
  const result = await execute(definition, input as Json, {
    executionId: id,
    onTaskExit: (state, output) => stateExits.push({ state, output: JSON.stringify(output) }),
    async task(resource, parameters) {
      if (resource.includes('codebuild:startBuild')) {
        const env = Object.fromEntries(
          (
            parameters as { EnvironmentVariablesOverride: { Name: string; Value: string }[] }
          ).EnvironmentVariablesOverride.map((v) => [v.Name, v.Value]),
        );
        const b = {
          action: env.ACTION,
          phase: env.TENANT_PHASE,
          tenantId: env.TENANT_ID,
          request: env.TENANT_REQUEST,
        };
        builds.push(b);
        await onBuild(b);
        return { Build: { BuildStatus: 'SUCCEEDED' } } as Json;
      }
      if (resource.includes('events:putEvents')) {
        for (const e of (parameters as { Entries: { DetailType: string; Detail: unknown }[] }).Entries)
          events.push(e);
        return { Entries: [{ EventId: 'e' }] } as Json;
      }
      // A runner answering through the task's token: invoked by name, its answer is what it sends Step Functions.
      // ... or a silo's runner, by the name accept returned (the generic lambda:invoke, FunctionName and Payload).
      const callback = resource.endsWith(':lambda:invoke.waitForTaskToken');
      const byName = callback || resource.endsWith(':states:::lambda:invoke');
      const fn = byName ? String((parameters as { FunctionName: string }).FunctionName) : resource;
      if (fn.includes(':function:tenantforge-') || fn.startsWith('tenantforge-silo-')) {
        const payload = (byName ? (parameters as { Payload: Json }).Payload : parameters) as Record<
          string,
          unknown
        >;
        runnerCalls.push({ functionArn: fn, payload });
        const answer = (await onRunner(
          payload,
          fn.startsWith('tenantforge-silo-') ? 'silo' : fn.includes('-pool-') ? 'pool' : 'bridge',
        )) ?? { action: 'restore' };
        // The generic lambda:invoke answers with the function's response in Payload, as Step Functions does.
        return (callback || !byName ? answer : { Payload: answer, StatusCode: 200 }) as Json;
      }
      // The one Lambda function: the real handler.
      return (await steps.handler(parameters as never)) as Json;
    },
  });
  return { ...result, id };
}

type Outcome =
  | (Execution & { id: string; input: string })
  | { status: 'REFUSED'; statusCode: number; cause: string; path: string[] };

/**
 * A request as a named requester sends it to the onboarding entry; when the entry starts the workflow, the
 * execution it started runs, with the input and name the entry gave it.
 */
async function ask(
  action: 'onboard' | 'offboard' | 'restore' | 'move' | 'purge',
  request: Record<string, unknown>,
): Promise<Outcome> {
  const started = sfn.commandCalls(StartExecutionCommand).length;
  sfn.on(StartExecutionCommand).resolves({ executionArn: 'x', startDate: new Date() });
  const payload = JSON.stringify({ action, request });
  const answer = await entry.handler({
    body: await entryRequestBody({ payload, region: 'us-east-1', credentials: PIPELINE }),
    isBase64Encoded: false,
    requestContext: { http: { method: 'POST' }, authorizer: { iam: { userArn: PIPELINE.arn } } },
  } as unknown as LambdaFunctionURLEvent);
  const body = JSON.parse(answer.body);
  if (answer.statusCode !== 202) {
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(started);
    return { status: 'REFUSED', statusCode: answer.statusCode, cause: body.message, path: [] };
  }
  const call = sfn.commandCalls(StartExecutionCommand)[started].args[0].input;
  const id = `${STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${call.name}`;
  expect(body.execution).toBe(id);
  runningInput = { id, input: call.input! };
  try {
    return { ...(await run(JSON.parse(call.input!), id)), input: call.input! };
  } finally {
    runningInput = undefined;
  }
}

/**
 * The real runner's approval (lambda/tenant-provisioner/mobility-approval.ts; the restore itself is tested on
 * PostgreSQL in test/lambda/mobility-runner.test.ts), run at the moment the workflow invokes the runner: against
 * the registry (moto) and the execution as the entry started it (Step Functions' answer); the archive is there.
 */
async function expectHeldForRestore(
  payload: Record<string, unknown>,
  model: 'pool' | 'bridge' | 'silo',
): Promise<void> {
  await expectApprovedRestore(
    payload.archive as string,
    payload.tenantId as string,
    payload.execution as string,
    runnerEnv(model),
    runnerDeps(),
  );
}

/** The same for a restore over a tenant's data, and for its thaw (the approval each of those runs first). */
async function expectHeldForReplace(
  payload: Record<string, unknown>,
  model: 'pool' | 'bridge' | 'silo',
): Promise<Record<string, unknown>> {
  const tenantId = payload.tenantId as string;
  if (payload.action === 'thaw') {
    await expectApprovedThaw(tenantId, payload.execution as string, runnerEnv(model, tenantId), runnerDeps());
    return { action: 'thaw', tenantId, restored: false, safetyArchive: '' };
  }
  if (payload.action === 'checkReplace') {
    const env = runnerEnv(model, tenantId);
    await expectApprovedReplace(
      payload.archive as string,
      tenantId,
      payload.execution as string,
      env,
      runnerDeps(),
    );
    await expectApprovedThaw(tenantId, payload.execution as string, env, runnerDeps());
    return { action: 'checkReplace', tenantId };
  }
  expect(payload.action).toBe('replace');
  await expectApprovedReplace(
    payload.archive as string,
    tenantId,
    payload.execution as string,
    runnerEnv(model, tenantId),
    runnerDeps(),
  );
  return { action: 'replace', tenantId, safetyArchive: `tenants/${tenantId}/20261128T120000Z-5afe5afe.tfa` };
}

/** A runner's environment: a shared cell's, or (silo) the one of `tenantId`'s own silo. */
const runnerEnv = (model: 'pool' | 'bridge' | 'silo', tenantId?: string) =>
  ({
    model,
    ownStack: model === 'pool' ? 'Pool' : model === 'bridge' ? 'Bridge' : `Tenant-${tenantId}`,
    registryTable: 'TenantRegistry',
  }) as Env;

function runnerDeps(): ApprovalDeps {
  return {
    registryEntry: (id) => moto.get(id),
    onboardingStateMachineArn: STATE_MACHINE,
    onboardingExecution: async (arn) => {
      if (arn !== runningInput?.id) throw Object.assign(new Error(arn), { name: 'ExecutionDoesNotExist' });
      return {
        status: 'RUNNING',
        stateMachineArn: STATE_MACHINE,
        input: runningInput.input,
        redriveCount: 0,
      };
    },
    stateOutput: async (arn, stateName) => {
      if (arn !== runningInput?.id) throw Object.assign(new Error(arn), { name: 'ExecutionDoesNotExist' });
      return [...stateExits].reverse().find((e) => e.state === stateName)?.output;
    },
    s3: { send: async () => ({}) } as unknown as S3Client,
    bucket: 'archives',
  };
}

const onboard = (request: Record<string, unknown>) =>
  ask('onboard', { adminEmail: `admin@${String(request.tenantId)}.example`, ...request });
const offboard = (tenantId: string) => ask('offboard', { tenantId });
const failBuild = (b: Build) => {
  throw new TaskError(
    'States.TaskFailed',
    JSON.stringify({ Build: { BuildStatus: 'FAILED', id: b.tenantId } }),
  );
};

describe('onboarding workflow, executed', () => {
  test('a silo tenant: create-phase deploy, readiness, steady-phase deploy, active, TenantOnboarded; SUCCEEDED', async () => {
    const r = await onboard({ tenantId: 'initrode', name: 'Initrode', model: 'silo' });
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'DeployCreatePhase',
      'CheckReady',
      'ProtectedResources',
      'DeploySteadyPhase',
      'SiloStartsFromArchive',
      'InviteAdmin',
      'MarkActive',
      'EmitOnboarded',
      'Onboarded',
    ]);
    expect(builds.map((b) => `${b.action}:${b.phase}`)).toEqual(['deploy:create', 'deploy:steady']);
    expect(JSON.parse(builds[0].request)).toEqual({
      id: 'initrode',
      name: 'Initrode',
      model: 'silo',
      settings: {},
    });
    expect(events).toEqual([
      { Source: 'tenantforge.onboarding', DetailType: 'TenantOnboarded', Detail: { tenantId: 'initrode' } },
    ]);
    const item = await moto.get('initrode');
    expect(item).toMatchObject({ status: 'active', model: 'silo' });
    expect(item!.lock).toBeUndefined();
    // Readiness was retried until the service reached steady state (simulated time).
    expect((r as Execution).seconds).toBeGreaterThan(0);
    // Its first administrator was invited, with the tenant claim set by the platform.
    expect(await moto.user(userPoolId, 'admin@initrode.example')).toMatchObject({
      enabled: true,
      attributes: { 'custom:tenant_id': 'initrode' },
    });
  });

  test('a pool tenant has nothing to protect: one deploy, and no archive to restore', async () => {
    const r = await onboard({ tenantId: 'initrode', model: 'pool' });
    expect(r.status).toBe('SUCCEEDED');
    expect(builds.map((b) => `${b.action}:${b.phase}`)).toEqual(['deploy:create']);
    expect(r.path).toEqual(expect.arrayContaining(['StartsFromArchive', 'InviteAdmin']));
    expect(runnerCalls).toEqual([]);
  });

  test("an approver's tenant started from an archive: its cell's runner restores it before anyone is invited", async () => {
    const archive = 'tenants/acme/20261128T030405Z-1a2b3c4d.tfa';
    const request = { tenantId: 'acme-eu', model: 'pool', restoreFrom: archive };
    // From a requester: refused by the entry (the archive may hold another customer's data).
    const refused = await onboard(request);
    expect(refused).toMatchObject({ status: 'REFUSED', statusCode: 403 });
    expect(await moto.get('acme-eu')).toBeUndefined();
    process.env.APPROVERS = REQUESTER;
    const r = await onboard(request);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'DeployCreatePhase',
      'CheckReady',
      'ProtectedResources',
      'StartsFromArchive',
      'RestorePoolArchive',
      'InviteAdmin',
      'MarkActive',
      'EmitOnboarded',
      'Onboarded',
    ]);
    // The pool cell's runner, by its fixed name, with this execution (which holds the tenant) and the archive.
    expect(runnerCalls).toEqual([
      {
        functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-pool-mobility',
        payload: {
          action: 'restore',
          tenantId: 'acme-eu',
          archive,
          execution: (r as { id: string }).id,
          // A data step: it waits for its token (the runner may hand it to its task, which answers).
          taskToken: expect.any(String),
        },
      },
    ]);
    const item = await moto.get('acme-eu');
    expect(item).toMatchObject({ status: 'active', model: 'pool' });
    expect(item!.lock).toBeUndefined();
    expect(item!.restoreArchive).toBeUndefined();
    // An answer lost on the way back (Lambda's service error) is retried: the runner, run again, finds exactly
    // the archive's rows it wrote and reports done (test/lambda/mobility-runner.test.ts), so the onboarding goes on.
    let failures = 1;
    onRunner = async (payload) => {
      await expectHeldForRestore(payload, 'pool');
      if (failures-- > 0) throw new TaskError('Lambda.ServiceException', 'the answer was lost');
    };
    const retried = await onboard({ tenantId: 'acme-ca', model: 'pool', restoreFrom: archive });
    expect(retried.status).toBe('SUCCEEDED');
    expect(runnerCalls.filter((c) => c.payload.tenantId === 'acme-ca')).toHaveLength(2);
    onRunner = expectHeldForRestore;
    // A bridge tenant's archive is restored by the bridge cell's runner.
    const bridge = await onboard({
      tenantId: 'hooli-eu',
      model: 'bridge',
      restoreFrom: 'tenants/hooli/a.tfa',
    });
    expect(bridge.status).toBe('SUCCEEDED');
    expect(bridge.path).toContain('RestoreBridgeArchive');
    expect(runnerCalls[runnerCalls.length - 1].functionArn).toMatch(/:function:tenantforge-bridge-mobility$/);
  });

  test("an approver's tenant started from the other shared cell's archive: vouched for there to the workflow, handed over", async () => {
    const archive = 'tenants/wonka/20261128T030405Z-1a2b3c4d.tfa';
    const sha256 = 'a1'.repeat(32);
    const handover = `https://pool-archives.s3.us-east-1.amazonaws.com/${archive}?X-Amz-Signature=abc`;
    const request = { tenantId: 'wonka-b', model: 'bridge', restoreFrom: archive, restoreFromModel: 'pool' };
    // The real runners' approvals, at the moment the workflow invokes each: the pool runner's to vouch (it answers
    // through the task token), the bridge runner's to restore (which reads what the vouch task got from the
    // execution's history).
    const handedOver: { sha256: string; from: string }[] = [];
    onRunner = async (payload, model) => {
      const [tenantId, execution] = [payload.tenantId as string, payload.execution as string];
      if (payload.action === 'vouch') {
        expect(model).toBe('pool');
        expect(payload.taskToken).toMatch(/^token:VouchPoolArchiveForBridge:/);
        await expectApprovedVouch(archive, tenantId, execution, runnerEnv('pool'), runnerDeps());
        return { sha256, handover, execution, tenantId, archive };
      }
      expect(model).toBe('bridge');
      handedOver.push(
        await expectApprovedHandover(
          archive,
          tenantId,
          execution,
          payload.handover as string,
          runnerEnv('bridge'),
          runnerDeps(),
        ),
      );
      return { action: 'restore' };
    };
    // From a requester: refused by the entry; an approver's request goes through.
    expect(await onboard(request)).toMatchObject({ status: 'REFUSED', statusCode: 403 });
    process.env.APPROVERS = REQUESTER;
    const r = await onboard(request);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'DeployCreatePhase',
      'CheckReady',
      'ProtectedResources',
      'StartsFromArchive',
      'VouchPoolArchiveForBridge',
      'RestoreHandedOverPoolArchiveIntoBridge',
      'ForgetHandoverLinkFromPoolIntoBridge',
      'InviteAdmin',
      'MarkActive',
      'EmitOnboarded',
      'Onboarded',
    ]);
    const id = (r as { id: string }).id;
    expect(runnerCalls).toEqual([
      {
        functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-pool-mobility',
        payload: {
          action: 'vouch',
          tenantId: 'wonka-b',
          archive,
          execution: id,
          taskToken: expect.stringMatching(/^token:/),
        },
      },
      {
        functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-bridge-mobility',
        payload: {
          action: 'restore',
          tenantId: 'wonka-b',
          archive,
          execution: id,
          handover,
          taskToken: expect.any(String),
        },
      },
    ]);
    expect(handedOver).toEqual([{ sha256, from: "the pool cell's runner" }]);
    // The link is not in the execution's output; the request's fields are released with the lock.
    expect(JSON.stringify((r as { output?: unknown }).output)).not.toContain('X-Amz-Signature');
    const item = await moto.get('wonka-b');
    expect(item).toMatchObject({ status: 'active', model: 'bridge' });
    for (const field of ['lock', 'restoreArchive', 'restoreArchiveModel'] as const) {
      expect(item![field]).toBeUndefined();
    }

    // The handed-over restore fails: the onboarding fails with its reason, and nothing of the request stays.
    const why = "the handed-over copy of tenants/wonka/x.tfa (from the pool cell's runner) has SHA-256 ...";
    onRunner = (payload) => {
      if (payload.action === 'vouch') {
        return { sha256, handover, execution: payload.execution, tenantId: payload.tenantId, archive };
      }
      throw new TaskError('Error', JSON.stringify({ errorType: 'Error', errorMessage: why }));
    };
    const failed = await onboard({ ...request, tenantId: 'wonka-c' });
    expect(failed.status).toBe('FAILED');
    const after = await moto.get('wonka-c');
    expect(after).toMatchObject({ status: 'failed', failedDuring: 'onboarding' });
    expect(after!.failureReason).toContain(why);
    for (const field of ['lock', 'restoreArchive', 'restoreArchiveModel'] as const) {
      expect(after![field]).toBeUndefined();
    }
    // A vouch task the pool runner fails (SendTaskFailure) never reaches the bridge runner.
    onRunner = (payload) => {
      if (payload.action === 'vouch') throw new TaskError('ProvisioningInputError', 'refused');
      return {};
    };
    runnerCalls = [];
    const bad = await onboard({ ...request, tenantId: 'wonka-d' });
    expect(bad.status).toBe('FAILED');
    expect(runnerCalls.map((c) => c.payload.action)).toEqual(['vouch']);
    // The request names the archive's cell only with an archive, and only a shared cell.
    for (const [extra, reason] of [
      [{ restoreFrom: undefined }, '"restoreFromModel" is "pool": it names the cell of "restoreFrom"'],
      [{ restoreFromModel: 'silo' }, '"restoreFromModel" is "silo": name the shared cell'],
    ] as const) {
      const refused = await onboard({ ...request, tenantId: 'wonka-e', ...extra });
      expect(refused).toMatchObject({ status: 'REFUSED', statusCode: 400 });
      expect((refused as { cause: string }).cause).toContain(reason);
    }
    // Naming the tenant's own cell is the ordinary restore from its cell's archive.
    onRunner = expectHeldForRestore;
    const own = await onboard({ ...request, tenantId: 'wonka-f', restoreFromModel: 'bridge' });
    expect(own.path).toContain('RestoreBridgeArchive');
  });

  test("an approver's new silo started from a pool tenant's archive: sealed, then handed over into its own runner", async () => {
    const archive = 'tenants/wonka/20261128T030405Z-1a2b3c4d.tfa';
    const sha256 = 'b2'.repeat(32);
    const handover = `https://pool-archives.s3.us-east-1.amazonaws.com/${archive}?X-Amz-Signature=def`;
    const request = {
      tenantId: 'wonka-silo',
      model: 'silo',
      restoreFrom: archive,
      restoreFromModel: 'pool',
    };
    const handedOver: unknown[] = [];
    onRunner = async (payload, model) => {
      const [tenantId, execution] = [payload.tenantId as string, payload.execution as string];
      if (payload.action === 'vouch') {
        expect(model).toBe('pool');
        await expectApprovedVouch(archive, tenantId, execution, runnerEnv('pool'), runnerDeps());
        return { sha256, handover, execution, tenantId, archive };
      }
      // The silo's own runner: its approval as a silo runner sees it.
      const env = { model: 'silo', ownStack: 'Tenant-wonka-silo', registryTable: 'TenantRegistry' } as Env;
      handedOver.push(
        await expectApprovedHandover(
          archive,
          tenantId,
          execution,
          payload.handover as string,
          env,
          runnerDeps(),
        ),
      );
      return { action: 'restore' };
    };
    // A silo starts from a shared cell's archive only, and only an approver asks for it.
    expect(await onboard({ ...request, restoreFromModel: undefined })).toMatchObject({
      status: 'REFUSED',
      statusCode: 400,
    });
    expect(await onboard(request)).toMatchObject({ status: 'REFUSED', statusCode: 403 });
    process.env.APPROVERS = REQUESTER;
    const r = await onboard(request);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'DeployCreatePhase',
      'CheckReady',
      'ProtectedResources',
      'DeploySteadyPhase',
      'SiloStartsFromArchive',
      'VouchPoolArchiveForSilo',
      'RestoreHandedOverPoolArchiveIntoSilo',
      'ForgetHandoverLinkFromPoolIntoSilo',
      'InviteAdmin',
      'MarkActive',
      'EmitOnboarded',
      'Onboarded',
    ]);
    const id = (r as { id: string }).id;
    // The silo's runner by the name derived from its tenant id (the role may invoke the silos' runners by pattern).
    expect(runnerCalls[1]).toEqual({
      functionArn: siloMobilityRunnerName('wonka-silo'),
      payload: {
        action: 'restore',
        tenantId: 'wonka-silo',
        archive,
        execution: id,
        handover,
        taskToken: expect.any(String),
      },
    });
    expect(runnerCalls[1].functionArn).toMatch(/^tenantforge-silo-[0-9a-f]{16}-mobility$/);
    expect(handedOver).toEqual([{ sha256, from: "the pool cell's runner" }]);
    expect(await moto.get('wonka-silo')).toMatchObject({ status: 'active', model: 'silo' });
  });

  test("a restore the runner refuses fails the onboarding with the runner's reason: failed, released, nobody invited", async () => {
    process.env.APPROVERS = REQUESTER;
    const why = 'tenant "acme-us" already has rows in invoices: nothing was written';
    onRunner = () => {
      throw new TaskError('Error', JSON.stringify({ errorType: 'Error', errorMessage: why }));
    };
    const r = await onboard({ tenantId: 'acme-us', model: 'pool', restoreFrom: 'tenants/acme/a.tfa' });
    expect(r.status).toBe('FAILED');
    expect(r.path).toContain('RestorePoolArchive');
    expect(r.path).not.toContain('InviteAdmin');
    const item = await moto.get('acme-us');
    expect(item).toMatchObject({ status: 'failed', failedDuring: 'onboarding' });
    expect(item!.failureReason).toContain(why);
    expect(item!.lock).toBeUndefined();
    expect(item!.restoreArchive).toBeUndefined();
    expect(events.map((e) => e.DetailType)).toEqual(['TenantOnboardingFailed']);
    expect(await moto.user(userPoolId, 'admin@acme-us.example')).toBeUndefined();
  });

  test("a restore's failure is the runner's reason, never an older failure among the tenant stack's events", async () => {
    process.env.APPROVERS = REQUESTER;
    // A retried onboarding: the stack's events still hold the first attempt's failed deploy.
    cfn.on(DescribeStackEventsCommand).resolves({
      StackEvents: [
        {
          StackId: 's',
          EventId: 'e',
          StackName: 'Tenant-wonka-r',
          Timestamp: new Date(0),
          LogicalResourceId: 'Tenant',
          ResourceType: 'Custom::BridgeTenant',
          ResourceStatus: 'CREATE_FAILED',
          ResourceStatusReason: 'an older deploy failed',
        },
      ],
    });
    const why = "the handed-over copy of tenants/wonka/a.tfa (from the pool cell's runner) has SHA-256 ...";
    onRunner = (payload) => {
      if (payload.action === 'vouch') {
        return {
          sha256: 'c3'.repeat(32),
          handover: 'https://b.s3.us-east-1.amazonaws.com/tenants/wonka/a.tfa',
          execution: payload.execution,
          tenantId: payload.tenantId,
          archive: payload.archive,
        };
      }
      throw new TaskError('Error', JSON.stringify({ errorType: 'Error', errorMessage: why }));
    };
    const r = await onboard({
      tenantId: 'wonka-r',
      model: 'bridge',
      restoreFrom: 'tenants/wonka/a.tfa',
      restoreFromModel: 'pool',
    });
    expect(r.status).toBe('FAILED');
    expect(r.path).toContain('ReadArchiveFailureReason');
    const item = await moto.get('wonka-r');
    expect(item!.failureReason).toContain(why);
    expect(item!.failureReason).not.toContain('an older deploy failed');
  });

  test('a failed deploy: the reason is recorded, the lock released, TenantOnboardingFailed emitted; FAILED with the reason', async () => {
    onBuild = failBuild;
    const r = await onboard({ tenantId: 'initrode', model: 'pool' });
    expect(r.status).toBe('FAILED');
    expect(r.path.slice(-5)).toEqual([
      'ReadFailureReason',
      'MarkFailed',
      'WhichFailureEvent',
      'EmitOnboardingFailed',
      'Failed',
    ]);
    expect(r.cause).toBe('Tenant-initrode: States.TaskFailed: build FAILED');
    expect(events).toEqual([
      {
        Source: 'tenantforge.onboarding',
        DetailType: 'TenantOnboardingFailed',
        Detail: { tenantId: 'initrode', reason: r.cause },
      },
    ]);
    const item = await moto.get('initrode');
    expect(item).toMatchObject({ status: 'failed', failureReason: r.cause });
    expect(item!.lock).toBeUndefined();
  });

  test('a failed first deploy can be retried: the next request is accepted and succeeds', async () => {
    onBuild = failBuild;
    expect((await onboard({ tenantId: 'initrode', model: 'pool' })).status).toBe('FAILED');
    onBuild = () => undefined;
    expect((await onboard({ tenantId: 'initrode', model: 'pool' })).status).toBe('SUCCEEDED');
    expect(await moto.get('initrode')).toMatchObject({ status: 'active' });
  });

  test('an invalid request is refused by the entry and never reaches the registry, the workflow or the deploy job', async () => {
    const r = await onboard({ tenantId: 'Acme!', model: 'pool' });
    expect(r).toMatchObject({ status: 'REFUSED', statusCode: 400 });
    expect(r.cause).toContain('field "id"');
    expect(builds).toEqual([]);
    expect(events).toEqual([]);
  });

  test('an execution started directly (not by the entry) is refused by its first step and changes nothing', async () => {
    expect((await onboard({ tenantId: 'acme', model: 'pool' })).status).toBe('SUCCEEDED');
    const before = await moto.get('acme');
    builds = [];
    events = [];
    const forged = await run(
      { action: 'offboard', tenant: { tenantId: 'acme', model: 'pool', dataRetained: false } },
      'arn:aws:states:us-east-1:111122223333:execution:Workflow:forged',
    );
    expect(forged).toMatchObject({ status: 'FAILED', error: 'RequestRejected' });
    expect(forged.path).toEqual(['Accept', 'RequestRejected']);
    expect(forged.cause).toContain('does not hold tenant \\"acme\\"');
    expect(builds).toEqual([]);
    expect(events).toEqual([]);
    expect(await moto.get('acme')).toEqual(before);
  });

  test('a duplicate request, and an offboarding, arriving during an onboarding are refused and change nothing', async () => {
    const during: Outcome[] = [];
    onBuild = async (b) => {
      if (b.phase === 'create') {
        during.push(await onboard({ tenantId: 'initrode', model: 'pool' }));
        during.push(await offboard('initrode'));
      }
    };
    const first = await onboard({ tenantId: 'initrode', model: 'pool' });
    expect(first.status).toBe('SUCCEEDED');
    expect(during.map((d) => d.status)).toEqual(['REFUSED', 'REFUSED']);
    expect(during[0].cause).toContain('is being changed by another request');
    expect(builds).toHaveLength(1);
    expect(await moto.get('initrode')).toMatchObject({ status: 'active' });
  });

  test('an execution that times out is reconciled from its status-change event: failed with the reason', async () => {
    onBuild = () => {
      throw new StopExecution('TIMED_OUT');
    };
    const r = (await onboard({ tenantId: 'initrode', model: 'pool' })) as Execution & {
      id: string;
      input: string;
    };
    expect(r.status).toBe('TIMED_OUT');
    expect(await moto.get('initrode')).toMatchObject({ status: 'provisioning' });
    // What the ReconcileEndedExecutions rule sends the step function; Step Functions confirms it ended.
    sfn.on(DescribeExecutionCommand, { executionArn: r.id }).resolves({ status: 'TIMED_OUT' } as never);
    await steps.handler({
      step: 'reconcile',
      executionArn: r.id,
      status: r.status,
      input: r.input,
    });
    const item = await moto.get('initrode');
    expect(item).toMatchObject({ status: 'failed' });
    expect(item!.failureReason).toContain('ended TIMED_OUT');
    expect(item!.lock).toBeUndefined();
  });

  test('a failure inside the failure path still ends the execution with a reason, not a runtime error', async () => {
    onBuild = async (b) => {
      // Someone reconciled the tenant meanwhile: this execution no longer holds it.
      sfn.on(DescribeExecutionCommand).resolves({ status: 'ABORTED' } as never);
      await steps.handler({
        step: 'reconcile',
        executionArn: (await moto.get(b.tenantId))!.lock!,
        status: 'ABORTED',
        input: JSON.stringify({ tenant: { tenantId: b.tenantId } }),
      });
      failBuild(b);
    };
    const r = await onboard({ tenantId: 'initrode', model: 'pool' });
    expect(r).toMatchObject({ status: 'FAILED', error: 'TenantRequestFailed' });
    expect(r.path.slice(-3)).toEqual(['ReadFailureReason', 'MarkFailed', 'FailedUnrecorded']);
    expect(await moto.get('initrode')).toMatchObject({ status: 'failed' });
  });
});

describe("restoring over a tenant's data, executed", () => {
  const ARCHIVE = 'tenants/acme/20261127T030405Z-1a2b3c4d.tfa';
  const restore = (tenantId: string, from: string) => ask('restore', { tenantId, from });
  /** What the registry said while the runner ran (the API answers `moving` with 503). */
  let during: unknown[];

  beforeEach(async () => {
    process.env.APPROVERS = REQUESTER;
    during = [];
    onRunner = async (payload, model) => {
      during.push(await moto.get(payload.tenantId as string));
      return expectHeldForReplace(payload, model);
    };
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', failureReason: 'an old failure' });
  });

  test("an approver's restore: the tenant's cell's runner replaces its data while it answers 503, then it serves again", async () => {
    // From a requester: refused (it replaces what the tenant's users see), and nothing changes.
    process.env.APPROVERS = '';
    const refused = await restore('acme', ARCHIVE);
    expect(refused).toMatchObject({ status: 'REFUSED', statusCode: 403 });
    expect(refused.cause).toContain('only an approver may request it');
    expect(await moto.get('acme')).toMatchObject({ status: 'active' });
    expect((await moto.get('acme'))!.lock).toBeUndefined();
    process.env.APPROVERS = REQUESTER;

    const r = await restore('acme', ARCHIVE);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'RestoreInItsCell',
      'RestorePoolTenantOver',
      'MarkRestoredPool',
      'EmitRestoredPool',
      'Restored',
    ]);
    const id = (r as { id: string }).id;
    expect(runnerCalls).toEqual([
      {
        functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-pool-mobility',
        payload: {
          action: 'replace',
          tenantId: 'acme',
          archive: ARCHIVE,
          execution: id,
          taskToken: expect.any(String),
        },
      },
    ]);
    // While the runner worked the tenant was `moving` within its own model, held by the execution, with the archive.
    expect(during).toEqual([
      expect.objectContaining({ status: 'moving', movingTo: 'pool', lock: id, restoreArchive: ARCHIVE }),
    ]);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'pool' });
    for (const gone of ['lock', 'movingTo', 'restoreArchive', 'failureReason'] as const) {
      expect(item![gone]).toBeUndefined();
    }
    expect(item!.requestedBy).toBe(`${PIPELINE.arn} (approver)`);
    expect(events).toEqual([
      {
        Source: 'tenantforge.onboarding',
        DetailType: 'TenantRestored',
        Detail: {
          tenantId: 'acme',
          archive: ARCHIVE,
          safetyArchive: 'tenants/acme/20261128T120000Z-5afe5afe.tfa',
        },
      },
    ]);
    expect(builds).toEqual([]);

    // A bridge tenant: the bridge cell's runner.
    await moto.put({ tenantId: 'hooli', model: 'bridge', status: 'active' });
    const bridge = await restore('hooli', 'tenants/hooli/a.tfa');
    expect(bridge.status).toBe('SUCCEEDED');
    expect(bridge.path).toContain('RestoreBridgeTenantOver');
    expect(runnerCalls[runnerCalls.length - 1].functionArn).toMatch(/:function:tenantforge-bridge-mobility$/);
  });

  test('a silo tenant: its own runner replaces its data (one of its own archives, in its own bucket), then it serves again', async () => {
    await moto.put({ tenantId: 'northwind', model: 'silo', status: 'active' });
    const from = 'tenants/northwind/20261127T030405Z-1a2b3c4d.tfa';
    const r = await restore('northwind', from);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'RestoreInItsCell',
      'CheckSiloRestore',
      'RestoreSiloTenantOver',
      'MarkRestoredSilo',
      'EmitRestoredSilo',
      'Restored',
    ]);
    const id = (r as { id: string }).id;
    // Its own runner, by the name derived from its id, asked first whether it can carry the request out (nothing
    // frozen yet); its checks passed (expectHeldForReplace, as a silo's).
    expect(runnerCalls).toEqual(
      ['checkReplace', 'replace'].map((action) => ({
        functionArn: siloMobilityRunnerName('northwind'),
        payload: {
          action,
          tenantId: 'northwind',
          archive: from,
          execution: id,
          // The replace is a data step: it waits for its token.
          ...(action === 'replace' ? { taskToken: expect.any(String) } : {}),
        },
      })),
    );
    expect(during).toEqual([
      expect.objectContaining({ status: 'moving', movingTo: 'silo', lock: id }),
      expect.objectContaining({
        status: 'moving',
        model: 'silo',
        movingTo: 'silo',
        lock: id,
        restoreArchive: from,
      }),
    ]);
    expect(await moto.get('northwind')).toMatchObject({ status: 'active', model: 'silo' });
    expect(events).toEqual([
      expect.objectContaining({
        DetailType: 'TenantRestored',
        Detail: {
          tenantId: 'northwind',
          archive: from,
          safetyArchive: 'tenants/northwind/20261128T120000Z-5afe5afe.tfa',
        },
      }),
    ]);
    expect(builds).toEqual([]);

    // A replace that fails: the silo's runner thaws it (its answer read from Payload), and it serves again.
    runnerCalls = [];
    events = [];
    onRunner = async (payload, model) => {
      expect(model).toBe('silo');
      if (payload.action === 'replace') {
        throw new TaskError('Error', JSON.stringify({ errorMessage: 'the archive is at schema version 9' }));
      }
      return expectHeldForReplace(payload, model);
    };
    const failed = await restore('northwind', from);
    expect(failed.status).toBe('FAILED');
    expect(failed.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'RestoreInItsCell',
      'CheckSiloRestore',
      'RestoreSiloTenantOver',
      'ReadRestoreFailureReason',
      'ThawInItsCell',
      'ThawSiloTenant',
      'RestoredAfterAll',
      'ServeAgainAfterRestoreFailed',
      'AbandonedOrFailed',
      'EmitRestoreFailed',
      'RestoreFailed',
    ]);
    expect(runnerCalls.map((c) => c.payload.action)).toEqual(['checkReplace', 'replace', 'thaw']);
    const item = await moto.get('northwind');
    expect(item).toMatchObject({ status: 'active', model: 'silo' });
    expect(item!.failureReason).toContain('the archive is at schema version 9');

    // ... and one whose answer was lost after it committed: the thaw says so, and the restore is done.
    onRunner = async (payload) => {
      if (payload.action === 'replace') throw new TaskError('Lambda.ServiceException', '{}');
      return {
        action: 'thaw',
        tenantId: 'northwind',
        restored: true,
        safetyArchive: 'tenants/northwind/s.tfa',
      };
    };
    const lost = await restore('northwind', from);
    expect(lost.status).toBe('SUCCEEDED');
    // A silo whose runner does not exist froze nothing: it serves again at once, with the way out.
    onRunner = () => {
      throw new TaskError('Lambda.ResourceNotFoundException', '{"errorMessage":"Function not found"}');
    };
    const missing = await restore('northwind', from);
    expect(missing.status).toBe('FAILED');
    expect(missing.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'RestoreInItsCell',
      'CheckSiloRestore',
      'SiloRunnerNotThere',
      'ServeAgainAfterRestoreFailed',
      'AbandonedOrFailed',
      'EmitRestoreFailed',
      'RestoreFailed',
    ]);
    const served = await moto.get('northwind');
    expect(served).toMatchObject({ status: 'active', model: 'silo' });
    expect(served!.failureReason).toContain('the mobility runner of this silo does not exist');
    expect(lost.path).toEqual(expect.arrayContaining(['ThawSiloTenant', 'MarkRestoredAfterAll']));

    // A runner that refuses the request (one of an earlier release, without the IAM to read the execution) is
    // asked nothing more: nothing was frozen, so the tenant serves again with the runner's reason, never left 503.
    runnerCalls = [];
    onRunner = () => {
      throw new TaskError(
        'ProvisioningInputError',
        JSON.stringify({
          errorMessage: 'AccessDeniedException: not authorized to perform: states:DescribeExecution',
        }),
      );
    };
    const refused = await restore('northwind', from);
    expect(refused.status).toBe('FAILED');
    expect(refused.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'RestoreInItsCell',
      'CheckSiloRestore',
      'ReadRestoreCheckFailureReason',
      'ServeAgainAfterRestoreFailed',
      'AbandonedOrFailed',
      'EmitRestoreFailed',
      'RestoreFailed',
    ]);
    expect(runnerCalls.map((c) => c.payload.action)).toEqual(['checkReplace']);
    const after = await moto.get('northwind');
    expect(after).toMatchObject({ status: 'active', model: 'silo' });
    expect(after!.failureReason).toContain('states:DescribeExecution');
  });

  test("refused by the entry, changing nothing: another tenant's archive, a bad key, an unknown, held or offboarded tenant", async () => {
    const refusedWith = async (tenantId: string, from: string, why: string) => {
      const before = await moto.get(tenantId);
      const r = await restore(tenantId, from);
      expect(r).toMatchObject({ status: 'REFUSED', statusCode: 400 });
      expect(r.cause).toContain(why);
      expect(await moto.get(tenantId)).toEqual(before);
    };
    await refusedWith('acme', 'tenants/globex/a.tfa', 'is tenant "globex"\'s archive');
    await refusedWith(
      'acme',
      '../acme.tfa',
      '"from" is "../acme.tfa": give the key of one of the tenant\'s archives',
    );
    await refusedWith('nobody', 'tenants/nobody/a.tfa', 'tenant "nobody" is unknown');
    await moto.put({ tenantId: 'initech', model: 'pool', status: 'provisioning', lock: 'arn:other' });
    await refusedWith('initech', 'tenants/initech/a.tfa', 'is being changed by another request (arn:other)');
    await moto.put({ tenantId: 'gone', model: 'pool', status: 'offboarded' });
    await refusedWith('gone', 'tenants/gone/a.tfa', 'tenant "gone" is offboarded: only an active tenant');
    expect(runnerCalls).toEqual([]);
  });

  test('a replace that fails is not run twice: the runner thaws the tenant, which serves again with what it had and the reason', async () => {
    const why = "the tenant's archive tenants/acme/x.tfa is at schema version 9: nothing was written";
    onRunner = async (payload, model) => {
      if (payload.action === 'replace') {
        throw new TaskError('Lambda.ServiceException', JSON.stringify({ errorMessage: why }));
      }
      // (A runner of an earlier release says nothing of whether its replace committed: taken as not.)
      const { restored, ...answer } = await expectHeldForReplace(payload, model);
      expect(restored).toBe(false);
      return answer;
    };
    const r = await restore('acme', ARCHIVE);
    expect(r.status).toBe('FAILED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'RestoreInItsCell',
      'RestorePoolTenantOver',
      'ReadRestoreFailureReason',
      'ThawInItsCell',
      'ThawPoolTenant',
      'RestoredAfterAll',
      'ServeAgainAfterRestoreFailed',
      'AbandonedOrFailed',
      'EmitRestoreFailed',
      'RestoreFailed',
    ]);
    // The replace once (its invocation may have run: never again), then the thaw, by the same execution.
    expect(runnerCalls.map((c) => c.payload.action)).toEqual(['replace', 'thaw']);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'pool' });
    expect(item!.failureReason).toContain(why);
    for (const gone of ['lock', 'movingTo', 'restoreArchive'] as const) expect(item![gone]).toBeUndefined();
    expect(events.map((e) => [e.DetailType, (e.Detail as { reason: string }).reason])).toEqual([
      ['TenantRestoreFailed', expect.stringContaining(why)],
    ]);
  });

  test('a thaw that fails too leaves it moving (503) with the reason, and a new restore request finishes it', async () => {
    onRunner = () => {
      throw new TaskError('Error', JSON.stringify({ errorMessage: 'the database did not answer' }));
    };
    const r = await restore('acme', ARCHIVE);
    expect(r.status).toBe('FAILED');
    expect(r.path.slice(-4)).toEqual([
      'ThawPoolTenant',
      'KeepFrozenAfterThawFailed',
      'EmitRestoreFailed',
      'RestoreFailed',
    ]);
    let item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'moving', movingTo: 'pool' });
    expect(item!.failureReason).toContain(
      'lifting the freeze failed too: request the restore again to finish it',
    );
    expect(item!.lock).toBeUndefined();
    // The thaw was retried (it is idempotent) before giving up.
    expect(runnerCalls.filter((c) => c.payload.action === 'thaw').length).toBeGreaterThan(1);
    // Offboarding it now is refused with the way out.
    const off = await offboard('acme');
    expect(off).toMatchObject({ status: 'REFUSED', statusCode: 400 });
    expect(off.cause).toContain(
      'was left frozen by a restore: nothing was changed; abandon the restore first',
    );

    onRunner = (payload, model) => expectHeldForReplace(payload, model);
    const again = await restore('acme', ARCHIVE);
    expect(again.status).toBe('SUCCEEDED');
    item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active' });
    expect(item!.movingTo).toBeUndefined();
    expect(item!.failureReason).toBeUndefined();
  });

  test("a replace whose answer was lost after it committed: the thaw finds the archive's rows there, and the restore is done", async () => {
    onRunner = async (payload, model) => {
      const answer = await expectHeldForReplace(payload, model);
      if (payload.action === 'replace') {
        throw new TaskError('Lambda.ServiceException', 'the answer was lost');
      }
      return { ...answer, restored: true, safetyArchive: 'tenants/acme/before-restore-0123.tfa' };
    };
    const r = await restore('acme', ARCHIVE);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path.slice(-5)).toEqual([
      'ThawPoolTenant',
      'RestoredAfterAll',
      'MarkRestoredAfterAll',
      'EmitRestoredAfterAll',
      'Restored',
    ]);
    expect(runnerCalls.map((c) => c.payload.action)).toEqual(['replace', 'thaw']);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active' });
    expect(item!.failureReason).toBeUndefined();
    expect(events).toEqual([
      expect.objectContaining({
        DetailType: 'TenantRestored',
        Detail: { tenantId: 'acme', archive: ARCHIVE, safetyArchive: 'tenants/acme/before-restore-0123.tfa' },
      }),
    ]);
  });

  test('an approver abandons a restore that left the tenant frozen: thawed, it serves again with what it has', async () => {
    // Nothing to abandon while it is active, and only an approver may ask.
    const active = await ask('restore', { tenantId: 'acme', abandon: true });
    expect(active).toMatchObject({ status: 'REFUSED', statusCode: 400 });
    expect(active.cause).toContain('not left frozen by a restore: there is nothing to abandon');
    await moto.put({
      tenantId: 'acme',
      model: 'pool',
      status: 'moving',
      movingTo: 'pool',
      failureReason: 'the workflow execution x ended TIMED_OUT',
    });
    process.env.APPROVERS = '';
    expect(await ask('restore', { tenantId: 'acme', abandon: true })).toMatchObject({ statusCode: 403 });
    process.env.APPROVERS = REQUESTER;
    const r = await ask('restore', { tenantId: 'acme', abandon: true });
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'AbandonReason',
      'ThawInItsCell',
      'ThawPoolTenant',
      'RestoredAfterAll',
      'ServeAgainAfterRestoreFailed',
      'AbandonedOrFailed',
      'RestoreAbandoned',
    ]);
    // The thaw only: nothing is replaced.
    expect(runnerCalls.map((c) => c.payload)).toEqual([
      { action: 'thaw', tenantId: 'acme', execution: (r as { id: string }).id },
    ]);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active' });
    expect(item!.failureReason).toContain('the restore was abandoned at the request of an approver');
    for (const gone of ['lock', 'movingTo', 'restoreArchive'] as const) expect(item![gone]).toBeUndefined();
  });

  test('an execution that times out mid-restore is reconciled to moving (503) with the reason, never to failed', async () => {
    onRunner = () => {
      throw new StopExecution('TIMED_OUT');
    };
    const r = (await restore('acme', ARCHIVE)) as Execution & { id: string; input: string };
    expect(r.status).toBe('TIMED_OUT');
    sfn.on(DescribeExecutionCommand, { executionArn: r.id }).resolves({ status: 'TIMED_OUT' } as never);
    await steps.handler({ step: 'reconcile', executionArn: r.id, status: r.status, input: r.input });
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'moving', movingTo: 'pool' });
    expect(item!.failureReason).toContain('ended TIMED_OUT');
    expect(item!.failureReason).toContain('request the restore again to finish it');
    expect(item!.lock).toBeUndefined();
    expect(item!.restoreArchive).toBeUndefined();
  });

  test('a workflow execution started directly for a moving tenant is refused by its first step', async () => {
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'moving', movingTo: 'pool', lock: 'arn:x' });
    const r = await run(
      { action: 'restore', tenant: { tenantId: 'acme', model: 'pool', restoreArchive: ARCHIVE } },
      'arn:aws:states:us-east-1:111122223333:execution:Workflow:forged',
    );
    expect(r).toMatchObject({ status: 'FAILED', error: 'RequestRejected' });
    expect(runnerCalls).toEqual([]);
    expect(await moto.get('acme')).toMatchObject({ status: 'moving', lock: 'arn:x' });
  });
});

describe('offboarding workflow, executed', () => {
  beforeEach(() => {
    cfn.on(ListStackResourcesCommand).resolves({
      StackResourceSummaries: [
        {
          LogicalResourceId: 'Db',
          PhysicalResourceId: 'northwind-db',
          ResourceType: 'AWS::RDS::DBInstance',
          ResourceStatus: 'CREATE_COMPLETE',
          LastUpdatedTimestamp: new Date(),
        },
      ],
    });
    rds.on(CreateDBSnapshotCommand).resolves({});
    rds
      .on(DescribeDBSnapshotsCommand)
      .resolvesOnce({ DBSnapshots: [{ Status: 'creating' }] })
      .resolves({ DBSnapshots: [{ Status: 'available' }] });
  });

  test('an idle-friendly silo (Aurora): the cluster is snapshotted and watched, then the same retire and destroy', async () => {
    cfn.on(ListStackResourcesCommand).resolves({
      StackResourceSummaries: [
        {
          LogicalResourceId: 'Writer',
          PhysicalResourceId: 'northwind-writer',
          ResourceType: 'AWS::RDS::DBInstance',
          ResourceStatus: 'CREATE_COMPLETE',
          LastUpdatedTimestamp: new Date(),
        },
        {
          LogicalResourceId: 'Cluster',
          PhysicalResourceId: 'northwind-cluster',
          ResourceType: 'AWS::RDS::DBCluster',
          ResourceStatus: 'CREATE_COMPLETE',
          LastUpdatedTimestamp: new Date(),
        },
      ],
    });
    rds.on(CreateDBClusterSnapshotCommand).resolves({});
    rds
      .on(DescribeDBClusterSnapshotsCommand)
      .resolvesOnce({ DBClusterSnapshots: [{ Status: 'creating' }] })
      .resolves({ DBClusterSnapshots: [{ Status: 'available' }] });
    expect((await onboard({ tenantId: 'northwind', model: 'silo' })).status).toBe('SUCCEEDED');
    builds = [];
    const r = await offboard('northwind');
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path.filter((p) => p === 'SnapshotStatus')).toHaveLength(2);
    expect(builds.map((b) => `${b.action}:${b.phase}`)).toEqual(['deploy:retire', 'destroy:retire']);
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)[0].args[0].input.DBClusterIdentifier).toBe(
      'northwind-cluster',
    );
    expect(rds.commandCalls(CreateDBSnapshotCommand)).toHaveLength(0);
    expect(rds.commandCalls(DescribeDBSnapshotsCommand)).toHaveLength(0);
    const item = await moto.get('northwind');
    expect(item).toMatchObject({ status: 'offboarded', dataRetained: true });
    expect(item!.finalSnapshotId).toMatch(/^northwind-final-/);
  });

  test('a silo tenant: final snapshot recorded, retire-phase deploy, destroy, offboarded with data kept', async () => {
    expect((await onboard({ tenantId: 'northwind', model: 'silo' })).status).toBe('SUCCEEDED');
    builds = [];
    events = [];
    const r = await offboard('northwind');
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'DisableUsers',
      'IsSilo',
      'FinalSnapshot',
      'WaitForSnapshot',
      'SnapshotStatus',
      'SnapshotAvailable',
      'WaitForSnapshot',
      'SnapshotStatus',
      'SnapshotAvailable',
      'RecordSnapshot',
      'DeployRetirePhase',
      'DestroyTenantStack',
      'MarkOffboarded',
      'EmitOffboarded',
      'Offboarded',
    ]);
    expect(builds.map((b) => `${b.action}:${b.phase}`)).toEqual(['deploy:retire', 'destroy:retire']);
    expect(events).toEqual([
      { Source: 'tenantforge.onboarding', DetailType: 'TenantOffboarded', Detail: { tenantId: 'northwind' } },
    ]);
    const item = await moto.get('northwind');
    expect(item).toMatchObject({ status: 'offboarded', dataRetained: true });
    expect(item!.finalSnapshotId).toMatch(/^northwind-final-/);
    expect(item!.lock).toBeUndefined();
    // Its users lost access before anything else happened.
    expect((await moto.user(userPoolId, 'admin@northwind.example'))!.enabled).toBe(false);
  });

  test('onboarding the same id again is refused, then accepted as an explicit restore that brings its data back', async () => {
    expect((await onboard({ tenantId: 'northwind', model: 'silo' })).status).toBe('SUCCEEDED');
    expect((await offboard('northwind')).status).toBe('SUCCEEDED');
    builds = [];
    const again = await onboard({ tenantId: 'northwind', model: 'silo' });
    expect(again).toMatchObject({ status: 'REFUSED', statusCode: 400 });
    expect(again.cause).toContain('ids are never reused for a new customer');
    expect(builds).toEqual([]);
    const restored = await onboard({ tenantId: 'northwind', model: 'silo', restore: true });
    expect(restored.status).toBe('SUCCEEDED');
    const request = JSON.parse(builds[0].request);
    expect(request).toMatchObject({ id: 'northwind', restore: true });
    expect(request.settings.restoredFromSnapshot).toMatch(/^northwind-final-/);
    expect(await moto.get('northwind')).toMatchObject({ status: 'active' });
    expect((await moto.user(userPoolId, 'admin@northwind.example'))!.enabled).toBe(true);
  });

  test('a failed destroy leaves the tenant failed with the reason and emits TenantOffboardingFailed', async () => {
    expect((await onboard({ tenantId: 'acme', model: 'pool' })).status).toBe('SUCCEEDED');
    events = [];
    onBuild = (b) => (b.action === 'destroy' ? failBuild(b) : undefined);
    const r = await offboard('acme');
    expect(r.status).toBe('FAILED');
    expect(events.map((e) => e.DetailType)).toEqual(['TenantOffboardingFailed']);
    expect(await moto.get('acme')).toMatchObject({ status: 'failed', failureReason: r.cause });
  });
});

describe('state machine definition', () => {
  test('is valid Amazon States Language', async () => {
    const { default: validator } = await import('asl-validator');
    const { isValid, errors } = validator(definition);
    expect(errors).toEqual([]);
    expect(isValid).toBe(true);
  });
});

describe('moving a tenant between the pool and bridge cells, executed', () => {
  const ARCHIVE = 'tenants/acme/20261128T160000Z-0a0b0c0d.tfa';
  const SHA = 'c3'.repeat(32);
  const LINK = `https://pool-archives.s3.us-east-1.amazonaws.com/${ARCHIVE}?X-Amz-Signature=abc`;
  const kept = JSON.stringify({
    id: 'acme',
    name: 'Acme',
    model: 'pool',
    settings: { deletionPolicy: 'retain' },
  });
  const move = (tenantId: string, to: string) => ask('move', { tenantId, to });
  /** What the registry said each time a runner ran (the API answers `moving` with 503). */
  let during: unknown[];
  /** The runners' real approvals at the moment the workflow invokes each; `fail` makes one fail after it. */
  const runners = (fail?: (payload: Record<string, unknown>) => string | undefined) => {
    onRunner = async (payload, model) => {
      during.push(await moto.get(payload.tenantId as string));
      const [tenantId, execution] = [payload.tenantId as string, payload.execution as string];
      if (payload.action === 'moveOut') {
        expect(payload.taskToken).toMatch(/^token:MoveOut/);
        await expectMoveHeld('source', tenantId, execution, runnerEnv(model, tenantId), runnerDeps());
      } else if (payload.action === 'thaw') {
        await expectMoveHeld('source', tenantId, execution, runnerEnv(model, tenantId), runnerDeps());
      } else if (payload.action === 'dropMovedIn') {
        await expectMoveHeld(
          'destination',
          tenantId,
          execution,
          runnerEnv(model, tenantId),
          runnerDeps(),
          'drop',
        );
      } else {
        expect(payload.action).toBe('restore');
        await expectApprovedMoveIn(
          payload.archive as string,
          tenantId,
          execution,
          payload.handover as string,
          runnerEnv(model, tenantId),
          runnerDeps(),
        );
      }
      const why = fail?.(payload);
      if (why) throw new TaskError('Error', JSON.stringify({ errorType: 'Error', errorMessage: why }));
      if (payload.action === 'moveOut') {
        return { sha256: SHA, handover: LINK, execution, tenantId, archive: ARCHIVE, schemaVersion: 5 };
      }
      return payload.action === 'thaw' || payload.action === 'dropMovedIn'
        ? { action: payload.action, restored: false }
        : { action: 'restore', schemaVersion: 6 };
    };
  };

  beforeEach(async () => {
    process.env.APPROVERS = REQUESTER;
    during = [];
    runners();
    await moto.put({ tenantId: 'acme', model: 'pool', status: 'active', schema: 'pool', request: kept });
  });

  test("an approver's move: its place built in bridge, then frozen and handed over by the pool runner, restored, switched, the source retired", async () => {
    process.env.APPROVERS = '';
    expect(await move('acme', 'bridge')).toMatchObject({ status: 'REFUSED', statusCode: 403 });
    process.env.APPROVERS = REQUESTER;
    const r = await move('acme', 'bridge');
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'MoveOutOfItsCell',
      'DeployMovePhasePoolToBridge',
      'MoveOutPoolToBridge',
      'RestoreMovedPoolIntoBridge',
      'ForgetMoveLinkPoolToBridge',
      'SwitchModel',
      'EmitMoved',
      'DeployMovedTenant',
      'Moved',
    ]);
    const id = (r as { id: string }).id;
    expect(runnerCalls).toEqual([
      {
        functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-pool-mobility',
        payload: {
          action: 'moveOut',
          tenantId: 'acme',
          execution: id,
          taskToken: expect.stringMatching(/^token:/),
        },
      },
      {
        functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-bridge-mobility',
        payload: {
          action: 'restore',
          tenantId: 'acme',
          archive: ARCHIVE,
          execution: id,
          handover: LINK,
          taskToken: expect.any(String),
        },
      },
    ]);
    // While the runners worked, the tenant was moving to bridge (503), held by the execution.
    expect(during).toEqual([
      expect.objectContaining({ status: 'moving', model: 'pool', movingTo: 'bridge', lock: id }),
      expect.objectContaining({ status: 'moving', model: 'pool', movingTo: 'bridge', lock: id }),
    ]);
    const moved = JSON.stringify({
      id: 'acme',
      name: 'Acme',
      model: 'bridge',
      firstModel: 'pool',
      settings: { deletionPolicy: 'retain' },
    });
    // The stack with the bridge place added beside the untouched pool one, then as moved.
    expect(builds).toEqual([
      {
        action: 'deploy',
        phase: 'steady',
        tenantId: 'acme',
        request: JSON.stringify({ ...JSON.parse(kept), movingTo: 'bridge' }),
      },
      { action: 'deploy', phase: 'steady', tenantId: 'acme', request: moved },
    ]);
    const item = await moto.get('acme');
    expect(item).toMatchObject({
      status: 'active',
      model: 'bridge',
      schema: 't_acme',
      schemaVersion: 6,
      keptCopy: 'pool',
      request: moved,
      requestedBy: `${PIPELINE.arn} (approver)`,
    });
    for (const gone of ['lock', 'movingTo', 'failureReason'] as const) expect(item![gone]).toBeUndefined();
    expect(events).toEqual([
      {
        Source: 'tenantforge.onboarding',
        DetailType: 'TenantMoved',
        Detail: { tenantId: 'acme', from: 'pool', to: 'bridge' },
      },
    ]);
    // The link is not in the execution's output.
    expect(JSON.stringify((r as { output?: unknown }).output)).not.toContain('X-Amz-Signature');
    // Moving it back meets the copy the move kept (removing it is not built in AWS): refused, nothing changed.
    const back = await move('acme', 'pool');
    expect(back).toMatchObject({ status: 'REFUSED', statusCode: 400 });
    expect((back as { cause: string }).cause).toContain('still has the pool copy its last move kept');
  });

  test('a restore that fails rolls back: the bridge place removed by a deploy as before, thawed, serving in pool with the reason', async () => {
    const why = "the handed-over copy of tenants/acme/x.tfa (from the pool cell's runner) has SHA-256 ...";
    runners((p) => (p.action === 'restore' ? why : undefined));
    // Whether the registry marked the move aborted when each deploy ran (only then does the destination's
    // provisioner remove its place).
    const aborted: unknown[] = [];
    onBuild = async () => void aborted.push((await moto.get('acme'))!.moveAborted);
    const r = await move('acme', 'bridge');
    expect(r.status).toBe('FAILED');
    expect(aborted).toEqual([undefined, true]);
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'MoveOutOfItsCell',
      'DeployMovePhasePoolToBridge',
      'MoveOutPoolToBridge',
      'RestoreMovedPoolIntoBridge',
      'ReadMoveFailureReason',
      'AbortMove',
      'BuiltSiloToRemove',
      'DeployWithoutMove',
      'DropMovedInCopy',
      'DropMovedIntoBridge',
      'ThawWhereItWas',
      'ThawMovingPoolTenant',
      'ServeAgainAfterMoveFailed',
      'EmitMoveFailed',
      'MoveFailed',
    ]);
    expect(builds.map((b) => b.request)).toEqual([
      JSON.stringify({ ...JSON.parse(kept), movingTo: 'bridge' }),
      kept,
    ]);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'pool', schema: 'pool', request: kept });
    expect(item!.failureReason).toContain(why);
    for (const gone of ['lock', 'movingTo', 'keptCopy', 'moveAborted'] as const) {
      expect(item![gone]).toBeUndefined();
    }
    expect(events).toEqual([
      expect.objectContaining({
        DetailType: 'TenantMoveFailed',
        Detail: expect.objectContaining({ tenantId: 'acme', to: 'bridge' }),
      }),
    ]);
  });

  test('a failed move deploy rolls back the same way; a failed rollback leaves it moving (503), and a new request finishes the move', async () => {
    onBuild = (b) => {
      if (b.request.includes('movingTo')) failBuild(b);
    };
    const r = await move('acme', 'bridge');
    expect(r.status).toBe('FAILED');
    expect(r.path).toEqual(
      expect.arrayContaining([
        'DeployMovePhasePoolToBridge',
        'ReadMoveDeployFailureReason',
        'AbortMove',
        'DeployWithoutMove',
        'DropMovedIntoBridge',
        'ThawMovingPoolTenant',
        'ServeAgainAfterMoveFailed',
      ]),
    );
    expect(r.path).not.toContain('RestoreMovedPoolIntoBridge');
    expect(await moto.get('acme')).toMatchObject({ status: 'active', model: 'pool' });

    // The restore fails, and so does the deploy that would remove the bridge place: the tenant stays moving.
    runners((p) => (p.action === 'restore' ? 'restore failed' : undefined));
    onBuild = (b) => {
      if (!b.request.includes('movingTo')) failBuild(b);
    };
    const stuck = await move('acme', 'bridge');
    expect(stuck.status).toBe('FAILED');
    expect(stuck.path).toEqual(
      expect.arrayContaining(['DeployWithoutMove', 'KeepMovingAfterRollbackFailed', 'EmitMoveFailed']),
    );
    expect(stuck.path).not.toContain('ThawWhereItWas');
    // The destination's place stays in the stack with its copy (the same request sent again finds it there).
    expect(stuck.path).not.toContain('DropMovedIntoBridge');
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'moving', model: 'pool', movingTo: 'bridge' });
    expect(item!.failureReason).toContain('request the move again to finish it');
    expect(item!.lock).toBeUndefined();
    // Only a move to the same cell is accepted now, and it finishes the move.
    expect(await move('acme', 'pool')).toMatchObject({ status: 'REFUSED', statusCode: 400 });
    runners();
    onBuild = () => undefined;
    const finished = await move('acme', 'bridge');
    expect(finished.status).toBe('SUCCEEDED');
    expect(await moto.get('acme')).toMatchObject({ status: 'active', model: 'bridge', keptCopy: 'pool' });
  });

  describe('into a silo of its own', () => {
    const moveRequest = JSON.stringify({ ...JSON.parse(kept), movingTo: 'silo' });
    const moved = JSON.stringify({
      id: 'acme',
      name: 'Acme',
      model: 'silo',
      firstModel: 'pool',
      settings: {
        deletionPolicy: 'retain',
        instanceClass: 't4g.medium',
        multiAz: true,
        backupRetentionDays: 14,
      },
    });

    /** How every move's path into a silo begins, and how its rollback ends once the silo is removed. */
    const INTO_SILO = ['Accept', 'OnboardOrOffboard', 'MoveOutOfItsCell'];
    const THAWED_IN_POOL = [
      'ThawWhereItWas',
      'ThawMovingPoolTenant',
      'ServeAgainAfterMoveFailed',
      'EmitMoveFailed',
      'MoveFailed',
    ];
    /** The registry's record of how far the move got in building the silo, when each deploy ran. */
    const stages: unknown[] = [];
    const recordStages = () => {
      stages.length = 0;
      onBuild = async () => void stages.push((await moto.get('acme'))!.moveSilo);
    };

    test("an approver's move: its silo built as one is onboarded, then handed over by the pool runner, restored by the silo's own runner, switched", async () => {
      recordStages();
      const r = await move('acme', 'silo');
      expect(r.status).toBe('SUCCEEDED');
      expect(r.path).toEqual([
        ...INTO_SILO,
        'DeployMovePhasePoolToSilo',
        'CheckMovedSiloReadyPool',
        'MarkMoveSiloSealedPool',
        'SealMovePhasePoolToSilo',
        'MoveOutPoolToSilo',
        'MarkMoveSiloFilledPool',
        'RestoreMovedPoolIntoSilo',
        'ForgetMoveLinkPoolToSilo',
        'SwitchModel',
        'EmitMoved',
        'DeployMovedTenant',
        'Moved',
      ]);
      const id = (r as { id: string }).id;
      expect(runnerCalls).toEqual([
        {
          functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-pool-mobility',
          payload: {
            action: 'moveOut',
            tenantId: 'acme',
            execution: id,
            taskToken: expect.stringMatching(/^token:/),
          },
        },
        // The silo's own runner, by the name derived from its tenant id.
        {
          functionArn: siloMobilityRunnerName('acme'),
          payload: {
            action: 'restore',
            tenantId: 'acme',
            archive: ARCHIVE,
            execution: id,
            handover: LINK,
            taskToken: expect.any(String),
          },
        },
      ]);
      expect(during).toEqual([
        expect.objectContaining({ status: 'moving', model: 'pool', movingTo: 'silo', lock: id }),
        expect.objectContaining({ status: 'moving', model: 'pool', movingTo: 'silo', lock: id }),
      ]);
      // Unprotected first (a failed deploy rolls back clean), sealed once its service answers, then as moved.
      expect(builds).toEqual([
        { action: 'deploy', phase: 'create', tenantId: 'acme', request: moveRequest },
        { action: 'deploy', phase: 'steady', tenantId: 'acme', request: moveRequest },
        { action: 'deploy', phase: 'steady', tenantId: 'acme', request: moved },
      ]);
      // Recorded before the seal, then before the restore; gone with the switch.
      expect(stages).toEqual([undefined, 'sealed', undefined]);
      const item = await moto.get('acme');
      expect(item).toMatchObject({
        status: 'active',
        model: 'silo',
        schemaVersion: 6,
        keptCopy: 'pool',
        request: moved,
      });
      for (const gone of ['lock', 'movingTo', 'failureReason'] as const) expect(item![gone]).toBeUndefined();
      expect(events).toEqual([
        expect.objectContaining({
          DetailType: 'TenantMoved',
          Detail: { tenantId: 'acme', from: 'pool', to: 'silo' },
        }),
      ]);
      expect(JSON.stringify((r as { output?: unknown }).output)).not.toContain('X-Amz-Signature');
      // Readiness was the silo's own service's (its parameter), not the pool cell's.
      expect(ssm.commandCalls(GetParameterCommand).map((c) => c.args[0].input.Name)).toEqual([
        ssmNames.apiServiceFor('silo', 'acme'),
        ssmNames.apiServiceFor('silo', 'acme'),
      ]);
      // The pool copy it kept is purged by the pool cell's runner, as after a move between the shared cells.
      onRunner = (payload, model) => {
        expect({ action: payload.action, model }).toEqual({ action: 'purge', model: 'pool' });
        return { action: 'purge' };
      };
      expect((await ask('purge', { tenantId: 'acme' })).status).toBe('SUCCEEDED');
      const purged = await moto.get('acme');
      expect(purged).toMatchObject({ status: 'active', model: 'silo' });
      expect(purged!.keptCopy).toBeUndefined();
    });

    test('into a silo of the profile the move names: every deploy builds that profile, and the registry keeps it', async () => {
      const r = await ask('move', { tenantId: 'acme', to: 'silo', profile: 'production' });
      expect(r.status).toBe('SUCCEEDED');
      const movedProduction = JSON.stringify({
        id: 'acme',
        name: 'Acme',
        model: 'silo',
        firstModel: 'pool',
        settings: {
          deletionPolicy: 'retain',
          profile: 'production',
          instanceClass: 't4g.small',
          multiAz: true,
          backupRetentionDays: 14,
        },
      });
      const withProfile = JSON.stringify({
        ...JSON.parse(kept),
        movingTo: 'silo',
        movingProfile: 'production',
      });
      expect(builds.map((b) => [b.phase, b.request])).toEqual([
        ['create', withProfile],
        ['steady', withProfile],
        ['steady', movedProduction],
      ]);
      const item = await moto.get('acme');
      expect(item).toMatchObject({ status: 'active', model: 'silo', request: movedProduction });
      expect(item!.moveProfile).toBeUndefined();
    });

    test("a restore that fails after the seal: the silo's runner empties its copy, its protection is lifted, the silo removed, thawed in pool", async () => {
      const why = "the handed-over copy of tenants/acme/x.tfa (from the pool cell's runner) has SHA-256 ...";
      runners((p) => (p.action === 'restore' ? why : undefined));
      recordStages();
      const r = await move('acme', 'silo');
      expect(r.status).toBe('FAILED');
      expect(r.path).toEqual([
        ...INTO_SILO,
        'DeployMovePhasePoolToSilo',
        'CheckMovedSiloReadyPool',
        'MarkMoveSiloSealedPool',
        'SealMovePhasePoolToSilo',
        'MoveOutPoolToSilo',
        'MarkMoveSiloFilledPool',
        'RestoreMovedPoolIntoSilo',
        'ReadMoveFailureReason',
        'AbortMove',
        'BuiltSiloToRemove',
        'EmptyMovedInSilo',
        'RetireMovedInSilo',
        'DeployWithoutMove',
        'DropMovedInCopy',
        'ForgetRemovedSilo',
        ...THAWED_IN_POOL,
      ]);
      // The drop ran as the silo's runner with the move marked aborted (its real check, in `runners`).
      expect(
        runnerCalls.map((c) => [c.functionArn.replace(/^arn:.*:function:/, ''), c.payload.action]),
      ).toEqual([
        ['tenantforge-pool-mobility', 'moveOut'],
        [siloMobilityRunnerName('acme'), 'restore'],
        [siloMobilityRunnerName('acme'), 'dropMovedIn'],
        ['tenantforge-pool-mobility', 'thaw'],
      ]);
      expect(builds.map((b) => [b.phase, b.request])).toEqual([
        ['create', moveRequest],
        ['steady', moveRequest],
        ['retire', moveRequest],
        ['steady', kept],
      ]);
      expect(stages).toEqual([undefined, 'sealed', 'filled', 'filled']);
      const item = await moto.get('acme');
      expect(item).toMatchObject({ status: 'active', model: 'pool', schema: 'pool', request: kept });
      expect(item!.failureReason).toContain(why);
      for (const gone of ['lock', 'movingTo', 'keptCopy', 'moveAborted', 'moveSilo'] as const) {
        expect(item![gone]).toBeUndefined();
      }
    });

    test('a silo whose first deploy fails is not sealed: the deploy without the move, thawed in pool', async () => {
      onBuild = (b) => {
        if (b.phase === 'create') failBuild(b);
      };
      const r = await move('acme', 'silo');
      expect(r.status).toBe('FAILED');
      expect(r.path).toEqual([
        ...INTO_SILO,
        'DeployMovePhasePoolToSilo',
        'ReadMoveDeployFailureReason',
        'AbortMove',
        'BuiltSiloToRemove',
        'DeployWithoutMove',
        'DropMovedInCopy',
        'ForgetRemovedSilo',
        ...THAWED_IN_POOL,
      ]);
      expect(builds.map((b) => b.phase)).toEqual(['create', 'steady']);
      // Never frozen (the freeze comes once the silo is up): the thaw finds nothing to lift.
      expect(runnerCalls.map((c) => c.payload.action)).toEqual(['thaw']);
      expect(await moto.get('acme')).toMatchObject({ status: 'active', model: 'pool' });
    });

    test('a silo whose service never becomes ready is not sealed: the deploy without the move alone removes it, never frozen', async () => {
      ecs.reset();
      ecs.on(DescribeServicesCommand).resolves({
        services: [
          {
            desiredCount: 2,
            runningCount: 0,
            deployments: [{ status: 'PRIMARY', rolloutState: 'FAILED', rolloutStateReason: 'tasks failed' }],
          },
        ],
      });
      recordStages();
      const r = await move('acme', 'silo');
      expect(r.status).toBe('FAILED');
      expect(r.path).toEqual([
        ...INTO_SILO,
        'DeployMovePhasePoolToSilo',
        'CheckMovedSiloReadyPool',
        'ReadMoveDeployFailureReason',
        'AbortMove',
        'BuiltSiloToRemove',
        'DeployWithoutMove',
        'DropMovedInCopy',
        'ForgetRemovedSilo',
        ...THAWED_IN_POOL,
      ]);
      // Nothing was protected, and the silo's runner (with its database) holds nothing: neither is asked for.
      expect(builds.map((b) => [b.phase, b.request])).toEqual([
        ['create', moveRequest],
        ['steady', kept],
      ]);
      expect(stages).toEqual([undefined, undefined]);
      expect(runnerCalls.map((c) => c.payload.action)).toEqual(['thaw']);
      const item = await moto.get('acme');
      expect(item).toMatchObject({ status: 'active', model: 'pool' });
      expect(item!.failureReason).toContain('tasks failed');
    });

    test('a move sent again after its rollback failed meets the silo the first one filled: its failed create deploy still has the silo emptied, unprotected and removed', async () => {
      // The first: the restore fails, and so does the deploy that would remove the (emptied, unprotected) silo.
      runners((p) => (p.action === 'restore' ? 'restore failed' : undefined));
      onBuild = (b) => {
        if (b.request === kept) failBuild(b);
      };
      const stuck = await move('acme', 'silo');
      expect(stuck.status).toBe('FAILED');
      expect(stuck.path).toEqual(
        expect.arrayContaining(['EmptyMovedInSilo', 'RetireMovedInSilo', 'KeepMovingAfterRollbackFailed']),
      );
      expect(stuck.path).not.toContain('ForgetRemovedSilo');
      expect(await moto.get('acme')).toMatchObject({
        status: 'moving',
        movingTo: 'silo',
        moveSilo: 'filled',
      });

      // The same move again; its create-phase deploy fails, and CloudFormation rolls the stack back to the silo the
      // first one left. This execution never reached the seal, but the registry says the silo was filled.
      builds = [];
      runnerCalls = [];
      runners();
      onBuild = (b) => {
        if (b.phase === 'create') failBuild(b);
      };
      const again = await move('acme', 'silo');
      expect(again.status).toBe('FAILED');
      expect(again.path).toEqual([
        ...INTO_SILO,
        'DeployMovePhasePoolToSilo',
        'ReadMoveDeployFailureReason',
        'AbortMove',
        'BuiltSiloToRemove',
        'EmptyMovedInSilo',
        'RetireMovedInSilo',
        'DeployWithoutMove',
        'DropMovedInCopy',
        'ForgetRemovedSilo',
        ...THAWED_IN_POOL,
      ]);
      expect(builds.map((b) => [b.phase, b.request])).toEqual([
        ['create', moveRequest],
        ['retire', moveRequest],
        ['steady', kept],
      ]);
      expect(runnerCalls.map((c) => c.payload.action)).toEqual(['dropMovedIn', 'thaw']);
      const item = await moto.get('acme');
      expect(item).toMatchObject({ status: 'active', model: 'pool' });
      expect(item!.moveSilo).toBeUndefined();
    });

    /** A move stuck after a failed rollback, as the registry keeps it, at `stage`. */
    const stuckAt = async (stage: 'sealed' | 'filled') =>
      moto.put({
        ...(await moto.get('acme'))!,
        status: 'moving',
        movingTo: 'silo',
        moveSilo: stage,
        failureReason: 'restore failed; removing its place in the other cell failed too',
      });
    /** The tenant's stack as CloudFormation lists it: with the silo's database, or without. */
    const stackHolds = (database: boolean) =>
      cfn.on(ListStackResourcesCommand).resolves({
        StackResourceSummaries: [
          {
            LogicalResourceId: 'Tenant',
            ResourceType: 'Custom::PoolTenant',
            ResourceStatus: 'UPDATE_COMPLETE' as const,
            LastUpdatedTimestamp: new Date(),
          },
          ...(database
            ? [
                {
                  LogicalResourceId: 'CellDatabaseInstance05044F07',
                  ResourceType: 'AWS::RDS::DBInstance',
                  ResourceStatus: 'UPDATE_COMPLETE' as const,
                  LastUpdatedTimestamp: new Date(),
                },
              ]
            : []),
        ],
      });

    test('a silo recorded as filled whose runner is not there while its database is: its protection is lifted anyway, then it is removed', async () => {
      await stuckAt('filled');
      stackHolds(true);
      const inner = onRunner;
      onRunner = (payload, model) => {
        if (payload.action === 'dropMovedIn') {
          throw new TaskError('Lambda.ResourceNotFoundException', 'Function not found');
        }
        return inner(payload, model);
      };
      onBuild = (b) => {
        if (b.phase === 'create') failBuild(b);
      };
      const r = await move('acme', 'silo');
      expect(r.status).toBe('FAILED');
      expect(r.path).toEqual(
        expect.arrayContaining(['AbortMove', 'EmptyMovedInSilo', 'RetireMovedInSilo', 'DeployWithoutMove']),
      );
      expect(r.path).not.toContain('KeepMovingAfterRollbackFailed');
      expect(builds.map((b) => b.phase)).toEqual(['create', 'retire', 'steady']);
      expect(await moto.get('acme')).toMatchObject({ status: 'active', model: 'pool' });
    });

    test('a silo the registry records but the stack no longer holds (its removal landed late) is never built again to be removed', async () => {
      await stuckAt('filled');
      stackHolds(false);
      onBuild = (b) => {
        if (b.phase === 'create') failBuild(b);
      };
      const r = await move('acme', 'silo');
      expect(r.status).toBe('FAILED');
      expect(r.path).toEqual([
        ...INTO_SILO,
        'DeployMovePhasePoolToSilo',
        'ReadMoveDeployFailureReason',
        'AbortMove',
        'BuiltSiloToRemove',
        'DeployWithoutMove',
        'DropMovedInCopy',
        'ForgetRemovedSilo',
        ...THAWED_IN_POOL,
      ]);
      expect(builds.map((b) => b.phase)).toEqual(['create', 'steady']);
      const item = await moto.get('acme');
      expect(item).toMatchObject({ status: 'active', model: 'pool' });
      expect(item!.moveSilo).toBeUndefined();
    });

    test('a seal that fails: the protection it may have set is lifted, nothing to empty (never frozen), then the silo is removed', async () => {
      stackHolds(true);
      recordStages();
      const seal = onBuild;
      onBuild = async (b) => {
        await seal(b);
        if (b.phase === 'steady' && b.request === moveRequest) failBuild(b);
      };
      const r = await move('acme', 'silo');
      expect(r.status).toBe('FAILED');
      expect(r.path).toEqual([
        ...INTO_SILO,
        'DeployMovePhasePoolToSilo',
        'CheckMovedSiloReadyPool',
        'MarkMoveSiloSealedPool',
        'SealMovePhasePoolToSilo',
        'ReadMoveDeployFailureReason',
        'AbortMove',
        'BuiltSiloToRemove',
        'RetireMovedInSilo',
        'DeployWithoutMove',
        'DropMovedInCopy',
        'ForgetRemovedSilo',
        ...THAWED_IN_POOL,
      ]);
      expect(builds.map((b) => [b.phase, b.request])).toEqual([
        ['create', moveRequest],
        ['steady', moveRequest],
        ['retire', moveRequest],
        ['steady', kept],
      ]);
      expect(stages).toEqual([undefined, 'sealed', 'sealed', 'sealed']);
      expect(runnerCalls.map((c) => c.payload.action)).toEqual(['thaw']);
      expect((await moto.get('acme'))!.moveSilo).toBeUndefined();
    });
  });

  describe('out of its silo', () => {
    const inSilo = JSON.stringify({
      id: 'acme',
      name: 'Acme',
      model: 'silo',
      settings: {
        deletionPolicy: 'retain',
        instanceClass: 't4g.medium',
        multiAz: true,
        backupRetentionDays: 14,
      },
    });
    const moveRequest = JSON.stringify({ ...JSON.parse(inSilo), movingTo: 'pool' });
    const withoutSilo = {
      id: 'acme',
      name: 'Acme',
      model: 'pool',
      firstModel: 'silo',
      settings: { deletionPolicy: 'retain' },
    };
    // As moved: in the pool, the silo kept as it was (its stack keeps building it until a purge).
    const keepingSilo = JSON.stringify({ ...withoutSilo, keptSilo: JSON.parse(inSilo) });
    const siloRunnerName = siloMobilityRunnerName('acme');
    const databaseInStack = (database: boolean) =>
      cfn.on(ListStackResourcesCommand).resolves({
        StackResourceSummaries: database
          ? [
              {
                LogicalResourceId: 'CellDatabaseInstance05044F07',
                ResourceType: 'AWS::RDS::DBInstance',
                ResourceStatus: 'UPDATE_COMPLETE' as const,
                LastUpdatedTimestamp: new Date(),
              },
            ]
          : [],
      });

    beforeEach(async () => {
      await moto.put({ tenantId: 'acme', model: 'silo', status: 'active', schema: 'app', request: inSilo });
    });

    test("an approver's move: its pool place added beside the silo, frozen and handed over by the silo's own runner, restored, switched, the silo kept", async () => {
      const r = await move('acme', 'pool');
      expect(r.status).toBe('SUCCEEDED');
      expect(r.path).toEqual([
        'Accept',
        'OnboardOrOffboard',
        'MoveOutOfItsCell',
        'DeployMovePhaseSiloToPool',
        'MoveOutSiloToPool',
        'RestoreMovedSiloIntoPool',
        'ForgetMoveLinkSiloToPool',
        'SwitchModel',
        'EmitMoved',
        'DeployMovedTenant',
        'Moved',
      ]);
      const id = (r as { id: string }).id;
      // The runners' own checks passed at each call (runners(): the silo's as the source, the pool's restore
      // reading the digest and link from the silo's MoveOut task).
      expect(runnerCalls).toEqual([
        {
          functionArn: siloRunnerName,
          payload: {
            action: 'moveOut',
            tenantId: 'acme',
            execution: id,
            taskToken: expect.stringMatching(/^token:/),
          },
        },
        {
          functionArn: 'arn:aws:lambda:us-east-1:111122223333:function:tenantforge-pool-mobility',
          payload: {
            action: 'restore',
            tenantId: 'acme',
            archive: ARCHIVE,
            execution: id,
            handover: LINK,
            taskToken: expect.any(String),
          },
        },
      ]);
      expect(during).toEqual([
        expect.objectContaining({ status: 'moving', model: 'silo', movingTo: 'pool', lock: id }),
        expect.objectContaining({ status: 'moving', model: 'silo', movingTo: 'pool', lock: id }),
      ]);
      expect(builds).toEqual([
        { action: 'deploy', phase: 'steady', tenantId: 'acme', request: moveRequest },
        { action: 'deploy', phase: 'steady', tenantId: 'acme', request: keepingSilo },
      ]);
      const item = await moto.get('acme');
      expect(item).toMatchObject({
        status: 'active',
        model: 'pool',
        schema: 'pool',
        keptCopy: 'silo',
        request: keepingSilo,
      });
      expect(JSON.stringify((r as { output?: unknown }).output)).not.toContain('X-Amz-Signature');
      // While the silo is kept: no other move, no offboarding (its protected database is in the stack).
      expect((await move('acme', 'bridge')) as { cause: string }).toMatchObject({
        status: 'REFUSED',
        cause: expect.stringContaining('still has the silo copy its last move kept'),
      });
      expect((await offboard('acme')) as { cause: string }).toMatchObject({
        status: 'REFUSED',
        cause: expect.stringContaining('still keeps the silo it moved out of'),
      });

      // The purge: the silo's runner empties it, a deploy lifts its protection, the deploy without it removes it.
      databaseInStack(true);
      builds = [];
      runnerCalls = [];
      onRunner = (payload, model) => {
        expect({ action: payload.action, model }).toEqual({ action: 'purge', model: 'silo' });
        return { action: 'purge' };
      };
      const purge = await ask('purge', { tenantId: 'acme' });
      expect(purge.status).toBe('SUCCEEDED');
      expect(purge.path).toEqual([
        'Accept',
        'OnboardOrOffboard',
        'PurgeInItsCell',
        'KeptSiloStillThere',
        'PurgeKeptSiloCopy',
        'RetireKeptSilo',
        'DeployWithoutKeptSilo',
        'MarkPurged',
        'EmitCopyPurged',
        'Purged',
      ]);
      expect(runnerCalls.map((c) => c.functionArn)).toEqual([siloRunnerName]);
      expect(builds).toEqual([
        { action: 'deploy', phase: 'retire', tenantId: 'acme', request: keepingSilo },
        { action: 'deploy', phase: 'steady', tenantId: 'acme', request: JSON.stringify(withoutSilo) },
      ]);
      const purged = await moto.get('acme');
      expect(purged).toMatchObject({ status: 'active', model: 'pool', request: JSON.stringify(withoutSilo) });
      for (const gone of ['lock', 'keptCopy', 'purgeCopy'] as const) expect(purged![gone]).toBeUndefined();
    });

    test("a restore that fails rolls back: the pool place removed, the silo's runner thaws it, serving in its silo with the reason", async () => {
      const why = 'the handed-over copy has SHA-256 ...';
      runners((p) => (p.action === 'restore' ? why : undefined));
      const r = await move('acme', 'pool');
      expect(r.status).toBe('FAILED');
      expect(r.path).toEqual([
        'Accept',
        'OnboardOrOffboard',
        'MoveOutOfItsCell',
        'DeployMovePhaseSiloToPool',
        'MoveOutSiloToPool',
        'RestoreMovedSiloIntoPool',
        'ReadMoveFailureReason',
        'AbortMove',
        'BuiltSiloToRemove',
        'DeployWithoutMove',
        'DropMovedInCopy',
        'DropMovedIntoPool',
        'ThawWhereItWas',
        'ThawMovingSiloTenant',
        'ServeAgainAfterMoveFailed',
        'EmitMoveFailed',
        'MoveFailed',
      ]);
      expect(runnerCalls.map((c) => [c.functionArn.replace(/.*:function:/, ''), c.payload.action])).toEqual([
        [siloRunnerName, 'moveOut'],
        ['tenantforge-pool-mobility', 'restore'],
        ['tenantforge-pool-mobility', 'dropMovedIn'],
        [siloRunnerName, 'thaw'],
      ]);
      expect(builds.map((b) => b.request)).toEqual([moveRequest, inSilo]);
      const item = await moto.get('acme');
      expect(item).toMatchObject({ status: 'active', model: 'silo', request: inSilo });
      expect(item!.failureReason).toContain(why);
      for (const gone of ['lock', 'movingTo', 'keptCopy', 'moveAborted'] as const)
        expect(item![gone]).toBeUndefined();
    });

    test('a purge that fails is released with the reason, the silo still kept; one whose removal already landed only deploys', async () => {
      expect((await move('acme', 'pool')).status).toBe('SUCCEEDED');
      databaseInStack(true);
      builds = [];
      onRunner = () => ({ action: 'purge' });
      onBuild = (b) => {
        if (b.phase === 'retire') failBuild(b);
      };
      const failed = await ask('purge', { tenantId: 'acme' });
      expect(failed.status).toBe('FAILED');
      expect(failed.path).toEqual(expect.arrayContaining(['RetireKeptSilo', 'ReadPurgeDeployFailureReason']));
      expect(failed.path).not.toContain('DeployWithoutKeptSilo');
      const kept = await moto.get('acme');
      expect(kept).toMatchObject({ status: 'active', model: 'pool', keptCopy: 'silo', request: keepingSilo });
      expect(kept!.lock).toBeUndefined();
      expect(kept!.failureReason).toBeDefined();
      // An earlier purge's removal landed but not its last write: the stack holds no database, so nothing is
      // emptied or retired (that deploy would build the silo again), only the deploy without it, then recorded.
      databaseInStack(false);
      onBuild = () => undefined;
      builds = [];
      runnerCalls = [];
      const again = await ask('purge', { tenantId: 'acme' });
      expect(again.status).toBe('SUCCEEDED');
      expect(again.path).toEqual([
        'Accept',
        'OnboardOrOffboard',
        'PurgeInItsCell',
        'KeptSiloStillThere',
        'DeployWithoutKeptSilo',
        'MarkPurged',
        'EmitCopyPurged',
        'Purged',
      ]);
      expect(runnerCalls).toEqual([]);
      expect(builds.map((b) => b.phase)).toEqual(['steady']);
      expect(await moto.get('acme')).toMatchObject({ request: JSON.stringify(withoutSilo) });
    });
  });

  test("after a move, an approver's purge: the old cell's runner removes the kept copy, then it can move back", async () => {
    expect((await move('acme', 'bridge')).status).toBe('SUCCEEDED');
    runnerCalls = [];
    events = [];
    const purge = () => ask('purge', { tenantId: 'acme' });
    const purged: unknown[] = [];
    onRunner = async (payload, model) => {
      purged.push(await moto.get('acme'));
      expect({ action: payload.action, model }).toEqual({ action: 'purge', model: 'pool' });
      return { action: 'purge' };
    };
    const r = await purge();
    expect(r.status).toBe('SUCCEEDED');
    expect(r.path).toEqual([
      'Accept',
      'OnboardOrOffboard',
      'PurgeInItsCell',
      'PurgeKeptPoolCopy',
      'MarkPurged',
      'EmitCopyPurged',
      'Purged',
    ]);
    // The tenant served on from bridge meanwhile (active, held by the purge).
    expect(purged).toEqual([
      expect.objectContaining({
        status: 'active',
        model: 'bridge',
        purgeCopy: 'pool',
        lock: (r as { id: string }).id,
      }),
    ]);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'bridge' });
    for (const gone of ['lock', 'keptCopy', 'purgeCopy'] as const) expect(item![gone]).toBeUndefined();
    expect(events).toEqual([
      {
        Source: 'tenantforge.onboarding',
        DetailType: 'TenantCopyPurged',
        Detail: { tenantId: 'acme', copy: 'pool' },
      },
    ]);
    // Now it can move back, into its first model: the stack it started as.
    runners();
    builds = [];
    expect((await move('acme', 'pool')).status).toBe('SUCCEEDED');
    expect(builds[builds.length - 1].request).toBe(kept);
    expect(await moto.get('acme')).toMatchObject({ model: 'pool', keptCopy: 'bridge', request: kept });
  });

  test('a purge that fails releases the tenant with the reason; it serves on, its copy still recorded', async () => {
    await moto.put({ tenantId: 'acme', model: 'bridge', status: 'active', keptCopy: 'pool', request: kept });
    onRunner = () => {
      throw new TaskError(
        'Error',
        JSON.stringify({ errorType: 'Error', errorMessage: 'the pool database is gone' }),
      );
    };
    const r = await ask('purge', { tenantId: 'acme' });
    expect(r.status).toBe('FAILED');
    expect(r.path.slice(-4)).toEqual([
      'PurgeKeptPoolCopy',
      'ReadPurgeFailureReason',
      'ReleaseAfterPurgeFailed',
      'PurgeFailed',
    ]);
    const item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'active', model: 'bridge', keptCopy: 'pool' });
    expect(item!.failureReason).toContain('the pool database is gone');
    for (const gone of ['lock', 'purgeCopy'] as const) expect(item![gone]).toBeUndefined();
    // The same purge sent again finishes it, and the reason goes with the copy.
    onRunner = () => ({ action: 'purge' });
    expect((await ask('purge', { tenantId: 'acme' })).status).toBe('SUCCEEDED');
    const done = await moto.get('acme');
    for (const gone of ['keptCopy', 'failureReason'] as const) expect(done![gone]).toBeUndefined();
  });

  test('an offboarded tenant (its data kept) has its kept copy purged too; a failure releases it, still offboarded', async () => {
    await moto.put({
      tenantId: 'acme',
      model: 'bridge',
      status: 'offboarded',
      keptCopy: 'pool',
      request: kept,
    });
    onRunner = () => {
      throw new TaskError(
        'Error',
        JSON.stringify({ errorType: 'Error', errorMessage: 'the pool database is gone' }),
      );
    };
    const failed = await ask('purge', { tenantId: 'acme' });
    expect(failed.status).toBe('FAILED');
    let item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'offboarded', model: 'bridge', keptCopy: 'pool' });
    expect(item!.failureReason).toContain('the pool database is gone');
    for (const gone of ['lock', 'purgeCopy'] as const) expect(item![gone]).toBeUndefined();
    onRunner = () => ({ action: 'purge' });
    const done = await ask('purge', { tenantId: 'acme' });
    expect(done.status).toBe('SUCCEEDED');
    item = await moto.get('acme');
    expect(item).toMatchObject({ status: 'offboarded', model: 'bridge' });
    for (const gone of ['lock', 'purgeCopy', 'keptCopy'] as const) expect(item![gone]).toBeUndefined();
  });

  test("the final deploy's failure leaves the tenant moved and served by bridge, and says how to retire the source", async () => {
    onBuild = (b) => {
      if (b.request.includes('"firstModel"')) failBuild(b);
    };
    const r = await move('acme', 'bridge');
    expect(r.status).toBe('FAILED');
    expect(r.path.slice(-3)).toEqual(['EmitMoved', 'DeployMovedTenant', 'MovedSourceNotRetired']);
    expect((r as { cause?: string }).cause).toContain('the tenant was moved and is served by the other cell');
    expect(await moto.get('acme')).toMatchObject({ status: 'active', model: 'bridge', keptCopy: 'pool' });
  });
});
