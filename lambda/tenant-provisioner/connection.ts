/** The provisioner's database connection: the master secret from Secrets Manager, verified TLS, bounded retries. */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Client, ClientConfig } from 'pg';
import { ContextKey } from '../../db/context';
import type { Env } from './request';

let secrets: SecretsManagerClient | undefined;

/**
 * The connection settings. TLS with certificate and host-name verification is the default; the RDS CA bundle is
 * trusted through NODE_EXTRA_CA_CERTS. `DB_SSL_MODE=disable` exists for the local platform and tests only.
 * Migrations wait at most `lock_timeout` for a lock, so they never queue behind a long transaction and stall the
 * tenants' own traffic; the migration runner retries them.
 */
export function connectionConfig(env: Env, user: string, password: string): ClientConfig {
  return {
    host: env.host,
    port: env.port,
    database: env.database,
    user,
    password,
    ssl: env.sslMode === 'disable' ? false : { rejectUnauthorized: true, servername: env.host },
    connectionTimeoutMillis: 10000,
    statement_timeout: env.statementTimeoutMs,
    lock_timeout: 5000,
    keepAlive: true,
    application_name: 'tenant-provisioner',
  };
}

async function credentials(env: Env): Promise<{ username: string; password: string }> {
  secrets ??= new SecretsManagerClient({});
  const secret = await secrets.send(new GetSecretValueCommand({ SecretId: env.secretArn }));
  let creds: { username?: string; password?: string };
  try {
    creds = JSON.parse(secret.SecretString ?? '');
  } catch {
    throw new Error(`the database secret ${env.secretArn} is not JSON with username and password`);
  }
  if (!creds.username || !creds.password) {
    throw new Error(`the database secret ${env.secretArn} has no username or password`);
  }
  return { username: creds.username, password: creds.password };
}

/**
 * Connects, retrying with backoff (1 s, doubling, at most 15 s apart) for up to `env.connectSeconds`: a brief
 * database blip (a failover, a restart) does not fail a deploy. Fails with the last error after that.
 */
export async function connect(
  env: Env,
  log: (message: string, fields: Record<string, unknown>) => void,
): Promise<Client> {
  const creds = await credentials(env);
  const deadline = Date.now() + env.connectSeconds * 1000;
  let delay = 1000;
  for (let attempt = 1; ; attempt++) {
    const client = new Client(connectionConfig(env, creds.username, creds.password));
    client.on('error', (e) => log('database connection error', { error: e.message }));
    try {
      await client.connect();
      return client;
    } catch (e) {
      await client.end().catch(() => undefined);
      if (Date.now() + delay > deadline) {
        throw new Error(
          `cannot reach the database at ${env.host}:${env.port} after ${attempt} attempt${attempt === 1 ? '' : 's'} over ${env.connectSeconds} s: ${(e as Error).message}`,
        );
      }
      log('database not reachable yet; retrying', { attempt, inMs: delay, error: (e as Error).message });
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }
}

/** The cell's tenant context key, from its secret. */
export async function contextKey(env: Env): Promise<ContextKey> {
  secrets ??= new SecretsManagerClient({});
  const secret = await secrets.send(new GetSecretValueCommand({ SecretId: env.contextKeySecretArn }));
  return ContextKey.fromHex(secret.SecretString?.trim(), `the context key secret ${env.contextKeySecretArn}`);
}
