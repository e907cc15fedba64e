/**
 * The cell's mobility runner: a function of its own (the provisioner's code and network, a role of its own with the
 * cell's archive bucket) that accepts only mobility events (mobility.ts). Operators who run
 * `npm run tenant -- export|restore --aws` hold invoke on this function only.
 *
 * Environment (the CDK construct sets it): the provisioner's, plus ARCHIVE_BUCKET, ARCHIVE_KEY_SECRET_ARN,
 * RUNTIME_DB_USER, RUNTIME_DB_SLOTS, RUNTIME_DB_AUTH=iam (tests: RUNTIME_DB_PASSWORD), MAX_ARCHIVE_BYTES, S3_DUALSTACK (S3 and Step
 * Functions over their dual-stack endpoints); a shared
 * cell's runner, and a silo's, also ONBOARDING_STATE_MACHINE_ARN (the onboarding workflow, whose executions it may read).
 */
import { GetItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ECSClient } from '@aws-sdk/client-ecs';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { invokeJson } from './invoke';
import { S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { Signer } from '@aws-sdk/rds-signer';
import { Pool, PoolConfig } from 'pg';
import { REGISTRY_KEY, registryItemFromAttributes, tenantOfStackName } from '../../contracts';
import { ArchiveKey, estimateTenantBytes } from '../../db/mobility';
import { dataModel } from '../../db/models';
import { TenantDatabase } from '../../db/tenant-context';
import { connect, connectionConfig, contextKey } from './connection';
import { log } from './index';
import {
  isMobilityEvent,
  MobilityEvent,
  MobilityReport,
  parseMobilityEvent,
  runMobilityEvent,
} from './mobility';
import {
  handToTask,
  HandedToTask,
  headBytes,
  OPERATOR_TASK_ACTIONS,
  rangedLinkBytes,
  RunnerTask,
  runnerTaskFromEnv,
  TASK_ACTIONS,
  workBytes,
} from './runner-task';
import {
  answeringTask,
  newResultKey,
  StillRunning,
  stepStillWaiting,
  TaskAnswers,
  taskOutcome,
  writeOutcome,
} from './runner-answers';
import { ProvisioningInputError, readEnv } from './request';
import { RUNTIME_STARTUP_OPTIONS } from '../../db/roles';
import { DEFAULT_RUNTIME_SLOTS, parseSlots, slotPool } from '../../db/slots';

let s3: S3Client | undefined;
let dynamo: DynamoDBClient | undefined;
let secrets: SecretsManagerClient | undefined;
let sfn: SFNClient | undefined;
let presigner: S3Client | undefined;
let ecs: ECSClient | undefined;
let lambdaClient: LambdaClient | undefined;

/** Asks the cell's launcher (launcher-entry.ts) to start the runner task for the event at `eventKey`. */
async function launchRunnerTask(launcher: string, eventKey: string): Promise<string> {
  lambdaClient ??= new LambdaClient({
    // Longer than the launcher may take (a cold start and RunTask; its timeout is 30 s).
    requestHandler: { ...API_TIMEOUTS, socketTimeout: 45_000, requestTimeout: 45_000 },
    useDualstackEndpoint: process.env.S3_DUALSTACK === 'true',
    // One attempt: a retried start could start a second task (RunTask's client token also guards it).
    maxAttempts: 1,
  });
  return (await invokeJson<{ taskArn: string }>(lambdaClient, launcher, { eventKey })).taskArn;
}
/**
 * The registry and Step Functions are read inside a restore's transaction too (its last check before it commits):
 * a call that hangs must fail in seconds, not hold the transaction open until the function's 15 minutes run out.
 * (`requestTimeout` alone only logs a warning: it throws with throwOnRequestTimeout.)
 */
const API_TIMEOUTS = {
  connectionTimeout: 3_000,
  socketTimeout: 10_000,
  requestTimeout: 10_000,
  throwOnRequestTimeout: true,
};

/**
 * Step Functions, over its dual-stack endpoint in a cell without NAT gateways (a silo's cheaper profiles: its
 * functions go out over IPv6 only).
 */
export function stepFunctions(): SFNClient {
  return new SFNClient({
    requestHandler: API_TIMEOUTS,
    useDualstackEndpoint: process.env.S3_DUALSTACK === 'true',
  });
}

function setting(name: string): string {
  const v = process.env[name];
  if (!v)
    throw new Error(
      `mobility runner misconfigured: environment ${name} is not set (the CDK construct sets it)`,
    );
  return v;
}

/** The cell's archive bucket's client (the runner task reads its handed event with it too). */
export function archiveClient(): S3Client {
  return (s3 ??= new S3Client({
    // A cell without NAT gateways reaches S3 over IPv6 (its dual-stack endpoint).
    useDualstackEndpoint: process.env.S3_DUALSTACK === 'true',
    // Tests only: an S3 emulator on a loopback address serves path-style requests.
    forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true',
    // An idle socket only, never a whole request: an archive of gigabytes uploads in one PutObject for minutes
    // before its response begins. (The HeadObject inside a restore's transaction has its own deadline.)
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 60_000 },
  }));
}

/**
 * Runs a mobility event: here, or, for a workflow step whose work is larger than this function can finish, in a
 * new runner task of the cell (runner-task.ts), which answers the step through its token.
 */
export async function handler(
  event: MobilityEvent,
): Promise<MobilityReport | (HandedToTask & { result?: string }) | StillRunning> {
  const env = readEnv();
  if (!isMobilityEvent(event)) {
    throw new ProvisioningInputError(
      'the mobility runner accepts only mobility events ({ "action": "export" | "restore", "tenantId": ..., "archive"?: ... })',
    );
  }
  // A handover link and a task token are credentials: logged as present, never as values.
  log('mobility event', {
    ...event,
    ...(event.handover !== undefined ? { handover: '(a link, not logged)' } : {}),
    ...(event.taskToken !== undefined ? { taskToken: '(a task token, not logged)' } : {}),
  });
  dynamo ??= new DynamoDBClient({ requestHandler: API_TIMEOUTS });
  secrets ??= new SecretsManagerClient({});
  const runtimeUser = setting('RUNTIME_DB_USER');
  let runtimePool: Pool | undefined;
  let runtimeDb: TenantDatabase | undefined;
  try {
    const deps: Parameters<typeof runMobilityEvent>[2] = {
      connect: () => connect(env, log),
      runtimeDatabase: async () => {
        // The runtime role signs in as the API does: a short-lived IAM token (for the slot role a connection
        // signs in as, db/slots.ts), no password exists for it.
        const password =
          process.env.RUNTIME_DB_AUTH === 'iam'
            ? (params?: { user?: string }) =>
                new Signer({
                  hostname: env.host,
                  port: env.port,
                  username: params?.user ?? runtimeUser,
                  region: process.env.AWS_REGION,
                }).getAuthToken()
            : setting('RUNTIME_DB_PASSWORD');
        if (runtimeDb) return runtimeDb;
        // As the API's connections: one login role per connection in a shared cell (I8), so no tenant's SQL can
        // end this export's backend.
        const slots = dataModel(env.model).databasePerTenant
          ? undefined
          : (parseSlots(process.env.RUNTIME_DB_SLOTS, 'the RUNTIME_DB_SLOTS environment variable') ??
            DEFAULT_RUNTIME_SLOTS);
        const config: PoolConfig = {
          ...connectionConfig(env, runtimeUser, ''),
          password,
          max: 2,
          application_name: 'tenant-mobility',
          // As the API's connections (service/src/db-pool.ts): the role's defaults cannot start it as a tenant.
          options: RUNTIME_STARTUP_OPTIONS,
        };
        runtimePool = slots ? slotPool(config, slots, (f) => log('security event', f)) : new Pool(config);
        return (runtimeDb = new TenantDatabase({
          pool: runtimePool,
          model: env.model,
          contextKey: await contextKey(env),
          siloTenantId: dataModel(env.model).databasePerTenant ? tenantOfStackName(env.ownStack) : undefined,
        }));
      },
      archiveKey: async () => {
        const arn = setting('ARCHIVE_KEY_SECRET_ARN');
        const secret = await secrets!.send(new GetSecretValueCommand({ SecretId: arn }));
        return ArchiveKey.fromHex(secret.SecretString?.trim(), `the archive key secret ${arn}`);
      },
      registryEntry: async (tenantId) =>
        registryItemFromAttributes(
          (
            await dynamo!.send(
              new GetItemCommand({
                TableName: env.registryTable,
                Key: { [REGISTRY_KEY]: { S: tenantId } },
                ConsistentRead: true,
              }),
            )
          ).Item as never,
        ),
      ...(process.env.ONBOARDING_STATE_MACHINE_ARN
        ? {
            onboardingStateMachineArn: process.env.ONBOARDING_STATE_MACHINE_ARN,
            onboardingExecution: async (executionArn: string) => {
              sfn ??= stepFunctions();
              const r = await sfn.send(new DescribeExecutionCommand({ executionArn }));
              return {
                status: r.status,
                input: r.input,
                stateMachineArn: r.stateMachineArn,
                redriveCount: r.redriveCount,
                stateMachineVersionArn: r.stateMachineVersionArn,
                stateMachineAliasArn: r.stateMachineAliasArn,
              };
            },
            stateOutput: async (executionArn: string, stateName: string) => {
              sfn ??= stepFunctions();
              // Newest first: the latest exit from the state (a retried task exits once, when it finally succeeds).
              let nextToken: string | undefined;
              do {
                const page = await sfn.send(
                  new GetExecutionHistoryCommand({
                    executionArn,
                    reverseOrder: true,
                    includeExecutionData: true,
                    maxResults: 1000,
                    nextToken,
                  }),
                );
                const exit = page.events?.find(
                  (e) => e.type === 'TaskStateExited' && e.stateExitedEventDetails?.name === stateName,
                );
                if (exit) return exit.stateExitedEventDetails?.output;
                nextToken = page.nextToken;
              } while (nextToken);
              return undefined;
            },
            sendTaskSuccess: async (taskToken: string, output: string) => {
              sfn ??= stepFunctions();
              await sfn.send(new SendTaskSuccessCommand({ taskToken, output }));
            },
            sendTaskFailure: async (taskToken: string, error: string, cause: string) => {
              sfn ??= stepFunctions();
              await sfn.send(new SendTaskFailureCommand({ taskToken, error: error.slice(0, 256), cause }));
            },
          }
        : {}),
      s3: archiveClient(),
      // Handover links name S3's dual-stack endpoint, reachable over IPv4 and IPv6 alike (an emulator's endpoint in
      // tests, which cannot be combined with it).
      presigner: (presigner ??= new S3Client({
        useDualstackEndpoint: !process.env.AWS_ENDPOINT_URL_S3,
        forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true',
      })),
      bucket: setting('ARCHIVE_BUCKET'),
      // The function's temporary storage; the runner task's volume (MOBILITY_WORK_DIR, set by its task definition).
      workDir: process.env.MOBILITY_WORK_DIR ?? '/tmp/tenant-archives',
      maxArchiveBytes: Number(process.env.MAX_ARCHIVE_BYTES ?? 9 * 1024 ** 3),
      log,
    };
    const parsed = parseMobilityEvent(event);
    const inTask = process.env.RUNNER_IN_TASK === 'true';
    const task = runnerTaskFromEnv();
    const ecsClient = () =>
      (ecs ??= new ECSClient({ useDualstackEndpoint: process.env.S3_DUALSTACK === 'true' }));
    const sizeOf = (budget: number) =>
      workBytes(
        parsed,
        {
          archiveBytes: (key) => headBytes(deps.s3, deps.bucket, key),
          linkBytes: rangedLinkBytes,
          tenantBytes: async (tenantId, upTo) =>
            estimateTenantBytes((await deps.runtimeDatabase()).forTenant(tenantId), upTo),
        },
        budget,
      );
    const handOff = async (handed: MobilityEvent, bytes: number, to: RunnerTask) => {
      const started = await handToTask(handed, bytes, to, {
        s3: deps.s3,
        bucket: deps.bucket,
        launch: (eventKey) => launchRunnerTask(to.launcher, eventKey),
      });
      log('handed to the runner task', { ...started });
      return started;
    };
    if (parsed.action === 'result') {
      const silo = env.model === 'silo' ? tenantOfStackName(env.ownStack) : undefined;
      if (silo !== undefined && parsed.tenantId !== silo) {
        throw new ProvisioningInputError(
          `tenant "${parsed.tenantId}" is not this silo's: the runner of stack ${env.ownStack} serves tenant "${silo}" only`,
        );
      }
      if (!task) {
        throw new ProvisioningInputError(
          `the runner of ${env.ownStack} starts no runner task here${inTask ? ' (this is one)' : ''}: there is nothing to poll`,
        );
      }
      return await taskOutcome(
        { tenantId: parsed.tenantId, result: parsed.result!, task: parsed.task! },
        { s3: deps.s3, ecs: ecsClient(), bucket: deps.bucket, cluster: task.cluster },
      );
    }
    const token = parsed.taskToken;
    if (token === undefined) {
      // An operator's export or restore (or another invoke without a workflow's token).
      if (parsed.result !== undefined && !inTask) {
        throw new ProvisioningInputError(
          'mobility event field "result" is set: leave it out (the runner sets it when it hands an export or restore to its task)',
        );
      }
      if (task && OPERATOR_TASK_ACTIONS.has(parsed.action)) {
        const bytes = await sizeOf(task.aboveBytes);
        if (bytes > task.aboveBytes) {
          // Too large for this function: the task does it, and the operator's command polls for its outcome.
          const result = newResultKey();
          return { ...(await handOff({ ...event, result }, bytes, task)), result };
        }
      }
      if (parsed.result === undefined) return await runMobilityEvent(event, env, deps);
      // The runner task doing an operator's step: its outcome goes where the operator's command polls.
      const result = parsed.result;
      try {
        const report = await runMobilityEvent(event, env, deps);
        await writeOutcome(deps.s3, deps.bucket, result, { tenantId: parsed.tenantId, report });
        return report;
      } catch (e) {
        await writeOutcome(deps.s3, deps.bucket, result, {
          tenantId: parsed.tenantId,
          error: { name: (e as Error).name || 'Error', message: (e as Error).message },
        }).catch(() => undefined);
        throw e;
      }
    }
    // A workflow step waiting for its token: answered through it, by this function or by a runner task.
    sfn ??= stepFunctions();
    const client = sfn;
    const answers: TaskAnswers = {
      heartbeat: async (t) => void (await client.send(new SendTaskHeartbeatCommand({ taskToken: t }))),
      success: async (t, output) =>
        void (await client.send(new SendTaskSuccessCommand({ taskToken: t, output }))),
      failure: async (t, error, cause) =>
        void (await client.send(
          new SendTaskFailureCommand({ taskToken: t, error: error.slice(0, 256), cause }),
        )),
    };
    deps.stepStillWaiting = () => stepStillWaiting(answers, token);
    return await answeringTask(
      parsed.action,
      token,
      answers,
      async () => {
        if (task && TASK_ACTIONS.has(parsed.action)) {
          const bytes = await sizeOf(task.aboveBytes);
          if (bytes > task.aboveBytes) return handOff(event, bytes, task);
        }
        return runMobilityEvent(event, env, deps);
      },
      log,
      inTask
        ? () => {
            log('the workflow no longer waits for this step: the runner task ends', {
              action: parsed.action,
            });
            process.exit(1);
          }
        : undefined,
    );
  } finally {
    await runtimePool?.end().catch(() => undefined);
  }
}
