import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { uploadArchive } from '../../lambda/tenant-provisioner/archives';
import {
  handoverLinkSeconds,
  HANDOVER_LINK_SECONDS,
  LARGE_HANDOVER_LINK_SECONDS,
} from '../../lambda/tenant-provisioner/mobility-handover';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeTasksCommand, ECSClient, RunTaskCommand } from '@aws-sdk/client-ecs';
import {
  launchSettingsFromEnv,
  startRunnerTask,
  rangedLinkBytes,
  runnerTaskFromEnv,
  UNKNOWN_BYTES,
  workBytes,
} from '../../lambda/tenant-provisioner/runner-task';
import { answeringTask, stepStillWaiting, taskOutcome } from '../../lambda/tenant-provisioner/runner-answers';
import { Moto, startMoto } from '../helpers/moto';

// The runner's pieces for work larger than its function (lambda/tenant-provisioner/runner-task.ts); the whole
// hand-over, function to task to the workflow's answer, runs in test/lambda/mobility-runner.test.ts.

describe('runner task settings and sizing', () => {
  const fn = {
    RUNNER_TASK_LAUNCHER: 'pool-launcher',
    RUNNER_TASK_CLUSTER: 'arn:aws:ecs:us-east-1:111122223333:cluster/c',
    RUNNER_TASK_ABOVE_BYTES: '1073741824',
  };
  const launcher = {
    RUNNER_TASK_CLUSTER: 'arn:aws:ecs:us-east-1:111122223333:cluster/c',
    RUNNER_TASK_DEFINITION: 'Family',
    RUNNER_TASK_SUBNETS: 'subnet-a,subnet-b',
    RUNNER_TASK_SECURITY_GROUPS: 'sg-1',
    RUNNER_TASK_PUBLIC_IP: 'true',
  };

  test('the function reads its launcher; the task itself and an unconfigured function hand nothing on', () => {
    expect(runnerTaskFromEnv(fn)).toEqual({
      launcher: 'pool-launcher',
      cluster: fn.RUNNER_TASK_CLUSTER,
      aboveBytes: 1024 ** 3,
    });
    expect(runnerTaskFromEnv({ ...fn, RUNNER_IN_TASK: 'true' })).toBeUndefined();
    expect(runnerTaskFromEnv({})).toBeUndefined();
    expect(() => runnerTaskFromEnv({ ...fn, RUNNER_TASK_CLUSTER: '' })).toThrow(
      'mobility runner misconfigured: RUNNER_TASK_LAUNCHER is set but RUNNER_TASK_CLUSTER is not set',
    );
    expect(() => runnerTaskFromEnv({ ...fn, RUNNER_TASK_ABOVE_BYTES: 'lots' })).toThrow(
      'RUNNER_TASK_ABOVE_BYTES is "lots", not a byte count',
    );
    expect(launchSettingsFromEnv(launcher)).toEqual({
      cluster: launcher.RUNNER_TASK_CLUSTER,
      taskDefinition: 'Family',
      subnets: ['subnet-a', 'subnet-b'],
      securityGroups: ['sg-1'],
      publicIp: true,
    });
  });

  test('the launcher starts the runner task only for an event key, with its own settings and nothing else', async () => {
    const ecs = new ECSClient({});
    const stub = mockClient(ecs);
    stub.on(RunTaskCommand).resolves({ tasks: [{ taskArn: 'arn:task' }] });
    for (const bad of [
      undefined,
      'tenants/acme/x.tfa',
      'runner-events/../x.json',
      'runner-events/0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f.json',
      'runner-events/out/0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f.result.json',
      { key: 'x' },
    ]) {
      await expect(startRunnerTask(ecs, launchSettingsFromEnv(launcher), bad)).rejects.toThrow(
        "the launcher starts the runner task only for an event the runner put in the cell's bucket",
      );
    }
    expect(stub.commandCalls(RunTaskCommand)).toHaveLength(0);
    const key = 'runner-events/in/0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f.json';
    expect(await startRunnerTask(ecs, launchSettingsFromEnv(launcher), key)).toBe('arn:task');
    expect(stub.commandCalls(RunTaskCommand)[0].args[0].input).toMatchObject({
      taskDefinition: 'Family',
      overrides: {
        containerOverrides: [{ name: 'runner', environment: [{ name: 'MOBILITY_EVENT_KEY', value: key }] }],
      },
      clientToken: '0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f',
      networkConfiguration: {
        awsvpcConfiguration: {
          subnets: ['subnet-a', 'subnet-b'],
          securityGroups: ['sg-1'],
          assignPublicIp: 'ENABLED',
        },
      },
    });
  });

  test('each data step is sized by what it reads and writes; other steps stay in the function', async () => {
    const sizing = {
      archiveBytes: async (key: string) => (key === 'tenants/a/x.tfa' ? 700 : 0),
      linkBytes: async () => 900,
      tenantBytes: async (tenant: string) => (tenant === 'a' ? 500 : 0),
    };
    const archive = { key: 'tenants/a/x.tfa' };
    expect(await workBytes({ action: 'moveOut', tenantId: 'a' }, sizing, 100)).toBe(500);
    expect(await workBytes({ action: 'vouch', tenantId: 'b', archive }, sizing, 100)).toBe(700);
    expect(await workBytes({ action: 'restore', tenantId: 'b', archive }, sizing, 100)).toBe(700);
    expect(
      await workBytes(
        { action: 'restore', tenantId: 'b', archive, handover: new URL('https://s3.example/x') },
        sizing,
        100,
      ),
    ).toBe(900);
    // A replace exports what the tenant holds (its safety archive), then restores the archive.
    expect(await workBytes({ action: 'replace', tenantId: 'a', archive }, sizing, 100)).toBe(1200);
    // A link whose size cannot be learned counts as large (a task can finish what the function may not).
    expect(await rangedLinkBytes(new URL('http://127.0.0.1:9/archive.tfa'))).toBe(UNKNOWN_BYTES);
    for (const action of ['thaw', 'purge', 'dropMovedIn', 'checkReplace'] as const) {
      expect(await workBytes({ action, tenantId: 'a', archive }, sizing, 100)).toBe(0);
    }
  });
});

describe('a worker answering a workflow step', () => {
  const named = (name: string) => Object.assign(new Error(name), { name });
  const report = { action: 'restore', tenantId: 'a' } as never;

  test('beats at once, answers with its report or its error, and only logs a refused beat', async () => {
    const calls: string[] = [];
    const answers = {
      heartbeat: async (t: string) => void calls.push(`beat ${t}`),
      success: async (t: string, output: string) => void calls.push(`success ${t} ${output}`),
      failure: async (t: string, error: string) => void calls.push(`failure ${t} ${error}`),
    };
    expect(
      await answeringTask(
        'restore',
        'tk',
        answers,
        async () => report,
        () => undefined,
      ),
    ).toBe(report);
    expect(calls).toEqual(['beat tk', `success tk ${JSON.stringify(report)}`]);
    // Work handed to a task, or a step that answers itself (moveOut, vouch): nothing sent but the beat.
    calls.length = 0;
    await answeringTask(
      'moveOut',
      'tk',
      answers,
      async () => report,
      () => undefined,
    );
    expect(calls).toEqual(['beat tk']);
    // A failure is the step's, named as a function's error would be.
    calls.length = 0;
    await expect(
      answeringTask(
        'restore',
        'tk',
        answers,
        async () => Promise.reject(named('TenantBusy')),
        () => undefined,
      ),
    ).rejects.toThrow('TenantBusy');
    expect(calls).toEqual(['beat tk', 'failure tk TenantBusy']);
    // A refused beat stops nothing by itself (the work's last look before it commits asks again), and is logged.
    const logged: string[] = [];
    await answeringTask(
      'restore',
      'tk',
      { ...answers, heartbeat: async () => Promise.reject(named('TaskTimedOut')) },
      async () => report,
      (message, fields) => void logged.push(`${message}: ${String(fields.error)}`),
    );
    expect(logged).toEqual(['heartbeat not taken: TaskTimedOut: TaskTimedOut']);
  });

  test('commits only while its step still waits for it', async () => {
    const refusing = (name: string) => ({
      heartbeat: async () => Promise.reject(named(name)),
      success: async () => undefined,
      failure: async () => undefined,
    });
    for (const over of ['TaskTimedOut', 'InvalidToken', 'TaskDoesNotExist']) {
      await expect(stepStillWaiting(refusing(over), 'tk')).rejects.toThrow(
        `the workflow's step no longer waits for this work (${over}: it timed out, or was retried): nothing was committed`,
      );
    }
    await expect(stepStillWaiting(refusing('ThrottlingException'), 'tk')).resolves.toBeUndefined();
  });

  test("a large archive's handover link outlives its runner task's start", () => {
    expect(handoverLinkSeconds(1024 ** 3)).toBe(HANDOVER_LINK_SECONDS);
    expect(handoverLinkSeconds(1024 ** 3 + 1)).toBe(LARGE_HANDOVER_LINK_SECONDS);
    expect(LARGE_HANDOVER_LINK_SECONDS).toBeGreaterThanOrEqual(30 * 60);
  });
});

describe("an operator's poll for a step handed to the runner task", () => {
  test('a result not there yet is "still running", though S3 answers 403 for it (no ListBucket), not an error', async () => {
    const s3 = new S3Client({});
    const s3Stub = mockClient(s3);
    s3Stub.on(GetObjectCommand).rejects(
      Object.assign(new Error('Access Denied'), {
        name: 'AccessDenied',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const ecs = new ECSClient({});
    mockClient(ecs)
      .on(DescribeTasksCommand)
      .resolves({ tasks: [{ taskArn: 'arn:task', lastStatus: 'RUNNING' }] });
    expect(
      await taskOutcome(
        { tenantId: 'acme', result: 'runner-events/x.result.json', task: 'arn:task' },
        { s3, ecs, bucket: 'b', cluster: 'c' },
      ),
    ).toEqual({ action: 'result', tenantId: 'acme', pending: true, status: 'RUNNING' });
  });
});

describe('archives larger than one PutObject', () => {
  let moto: Moto;
  let s3: S3Client;
  const bucket = 'runner-task-archives';

  beforeAll(async () => {
    moto = await startMoto();
    s3 = new S3Client({ endpoint: moto.endpoint, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(
      new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }),
    );
  });
  afterAll(() => moto.stop());

  test('go up in parts, byte for byte, never over an existing archive, leaving no parts behind', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parts-')), 'big.tfa');
    const bytes = randomBytes(12 * 1024 ** 2 + 17);
    fs.writeFileSync(file, bytes);
    // Above 5 MiB here (5 GiB in AWS): three parts of 5 MiB, the last shorter.
    const single = 5 * 1024 ** 2;
    const { key, versionId } = await uploadArchive(
      s3,
      bucket,
      'big',
      file,
      bytes.length,
      { model: 'pool' },
      'one',
      single,
    );
    expect(key).toBe('tenants/big/one.tfa');
    expect(versionId).toBeTruthy();
    const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(Buffer.from(await o.Body!.transformToByteArray()).equals(bytes)).toBe(true);
    expect(o.Metadata).toEqual({ 'tenant-id': 'big', model: 'pool' });
    await expect(
      uploadArchive(s3, bucket, 'big', file, bytes.length, { model: 'pool' }, 'one', single),
    ).rejects.toThrow();
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).toEqual([]);
  });
});
