/**
 * A real DynamoDB API for tests: moto's server (python3 `moto_server`, installed on these machines), on a free
 * loopback port, so conditional writes, their errors and pagination behave as DynamoDB's do rather than as a
 * stub says. The SDK reaches it through AWS_ENDPOINT_URL_DYNAMODB; set before the code under test is imported.
 */
import { ChildProcess, spawn } from 'child_process';
import {
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  AdminGetUserCommand,
  CognitoIdentityProviderClient,
  CreateUserPoolCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { REGISTRY_KEY, RegistryItem, registryItemFromAttributes, TENANT_ID_ATTRIBUTE } from '../../contracts';
import { freePort } from '../../service/src/local/free-port';

export interface Moto {
  readonly endpoint: string;
  readonly client: DynamoDBClient;
  /** Drops and re-creates the registry table (empty). */
  resetRegistry(): Promise<void>;
  get(tenantId: string): Promise<RegistryItem | undefined>;
  put(item: Record<string, unknown>): Promise<void>;
  /** A new Cognito user pool shaped as the platform's (email sign-in, the immutable tenant attribute). */
  createUserPool(): Promise<string>;
  /** A user's attributes (by email) and whether it is enabled, or undefined. */
  user(
    userPoolId: string,
    email: string,
  ): Promise<{ enabled: boolean; attributes: Record<string, string> } | undefined>;
  stop(): Promise<void>;
}

export const REGISTRY_TABLE = 'TenantRegistry';

/** Starts moto_server and points the AWS SDK's DynamoDB client at it (credentials are moto's test ones). */
export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const endpoint = `http://127.0.0.1:${port}`;
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    REGISTRY_TABLE,
  });
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const r = await fetch(`${endpoint}/moto-api/`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`moto_server did not start on port ${port}: ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1' });
  const cognito = new CognitoIdentityProviderClient({ endpoint, region: 'us-east-1' });
  const moto: Moto = {
    endpoint,
    client,
    async resetRegistry() {
      await client.send(new DeleteTableCommand({ TableName: REGISTRY_TABLE })).catch(() => undefined);
      await client.send(
        new CreateTableCommand({
          TableName: REGISTRY_TABLE,
          KeySchema: [{ AttributeName: REGISTRY_KEY, KeyType: 'HASH' }],
          AttributeDefinitions: [{ AttributeName: REGISTRY_KEY, AttributeType: 'S' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
    },
    async get(tenantId) {
      const r = await client.send(
        new GetItemCommand({ TableName: REGISTRY_TABLE, Key: { [REGISTRY_KEY]: { S: tenantId } } }),
      );
      return registryItemFromAttributes(r.Item);
    },
    async put(item) {
      const Item: Record<string, { S: string } | { BOOL: boolean } | { N: string }> = {};
      for (const [k, v] of Object.entries(item)) {
        // A field set to undefined is no field (as the registry's writers leave it), never the string "undefined".
        if (v === undefined) continue;
        Item[k] =
          typeof v === 'boolean' ? { BOOL: v } : typeof v === 'number' ? { N: String(v) } : { S: String(v) };
      }
      await client.send(new PutItemCommand({ TableName: REGISTRY_TABLE, Item }));
    },
    async createUserPool() {
      const r = await cognito.send(
        new CreateUserPoolCommand({
          PoolName: `users-${Date.now()}`,
          UsernameAttributes: ['email'],
          Schema: [{ Name: TENANT_ID_ATTRIBUTE, AttributeDataType: 'String', Mutable: false }],
        }),
      );
      return r.UserPool!.Id!;
    },
    async user(UserPoolId, Username) {
      try {
        const u = await cognito.send(new AdminGetUserCommand({ UserPoolId, Username }));
        return {
          enabled: u.Enabled !== false,
          attributes: Object.fromEntries((u.UserAttributes ?? []).map((a) => [a.Name!, a.Value!])),
        };
      } catch (e) {
        if ((e as Error).name === 'UserNotFoundException') return undefined;
        throw e;
      }
    },
    async stop() {
      client.destroy();
      cognito.destroy();
      if (child.exitCode === null) {
        await new Promise<void>((resolve) => {
          child.on('exit', () => resolve());
          child.kill('SIGTERM');
        });
      }
    },
  };
  await moto.resetRegistry();
  return moto;
}
