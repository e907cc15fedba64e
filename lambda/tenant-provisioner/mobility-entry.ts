/**
 * The cell's mobility runner: a function of its own (the provisioner's code and network, a role of its own with the
 * cell's archive bucket) that accepts only mobility events (mobility.ts). Operators who run
 * `npm run tenant -- export|restore --aws` hold invoke on this function only.
 *
 * Environment (the CDK construct sets it): the provisioner's, plus ARCHIVE_BUCKET, ARCHIVE_KEY_SECRET_ARN,
 * RUNTIME_DB_USER, RUNTIME_DB_AUTH=iam (tests: RUNTIME_DB_PASSWORD), MAX_ARCHIVE_BYTES, S3_DUALSTACK (S3 and Step
 * Functions over their dual-stack endpoints); a shared
 * cell's runner, and a silo's, also ONBOARDING_STATE_MACHINE_ARN (the onboarding workflow, whose executions it may read).
 */
import { GetItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { Signer } from '@aws-sdk/rds-signer';
import { Pool } from 'pg';
import { REGISTRY_KEY, registryItemFromAttributes, tenantOfStackName } from '../../contracts';
import { ArchiveKey } from '../../db/mobility';
import { dataModel } from '../../db/models';
import { TenantDatabase } from '../../db/tenant-context';
import { connect, connectionConfig, contextKey } from './connection';
import { log } from './index';
import { isMobilityEvent, MobilityEvent, MobilityReport, runMobilityEvent } from './mobility';
import { ProvisioningInputError, readEnv } from './request';
import { RUNTIME_STARTUP_OPTIONS } from '../../db/roles';

let s3: S3Client | undefined;
let dynamo: DynamoDBClient | undefined;
let secrets: SecretsManagerClient | undefined;
let sfn: SFNClient | undefined;
let presigner: S3Client | undefined;
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
function stepFunctions(): SFNClient {
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

export async function handler(event: MobilityEvent): Promise<MobilityReport> {
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
  s3 ??= new S3Client({
    // A cell without NAT gateways reaches S3 over IPv6 (its dual-stack endpoint).
    useDualstackEndpoint: process.env.S3_DUALSTACK === 'true',
    // Tests only: an S3 emulator on a loopback address serves path-style requests.
    forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true',
    // An idle socket only, never a whole request: an archive of gigabytes uploads in one PutObject for minutes
    // before its response begins. (The HeadObject inside a restore's transaction has its own deadline.)
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 60_000 },
  });
  dynamo ??= new DynamoDBClient({ requestHandler: API_TIMEOUTS });
  secrets ??= new SecretsManagerClient({});
  const runtimeUser = setting('RUNTIME_DB_USER');
  let runtimePool: Pool | undefined;
  try {
    return await runMobilityEvent(event, env, {
      connect: () => connect(env, log),
      runtimeDatabase: async () => {
        // The runtime role signs in as the API does: a short-lived IAM token, no password exists for it.
        const signer = new Signer({
          hostname: env.host,
          port: env.port,
          username: runtimeUser,
          region: process.env.AWS_REGION,
        });
        const password =
          process.env.RUNTIME_DB_AUTH === 'iam'
            ? () => signer.getAuthToken()
            : setting('RUNTIME_DB_PASSWORD');
        runtimePool = new Pool({
          ...connectionConfig(env, runtimeUser, ''),
          password,
          max: 2,
          application_name: 'tenant-mobility',
          // As the API's connections (service/src/db-pool.ts): the role's defaults cannot start it as a tenant.
          options: RUNTIME_STARTUP_OPTIONS,
        });
        return new TenantDatabase({
          pool: runtimePool,
          model: env.model,
          contextKey: await contextKey(env),
          siloTenantId: dataModel(env.model).databasePerTenant ? tenantOfStackName(env.ownStack) : undefined,
        });
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
      s3,
      // Handover links name S3's dual-stack endpoint, reachable over IPv4 and IPv6 alike (an emulator's endpoint in
      // tests, which cannot be combined with it).
      presigner: (presigner ??= new S3Client({
        useDualstackEndpoint: !process.env.AWS_ENDPOINT_URL_S3,
        forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true',
      })),
      bucket: setting('ARCHIVE_BUCKET'),
      workDir: '/tmp/tenant-archives',
      maxArchiveBytes: Number(process.env.MAX_ARCHIVE_BYTES ?? 9 * 1024 ** 3),
      log,
    });
  } finally {
    await runtimePool?.end().catch(() => undefined);
  }
}
