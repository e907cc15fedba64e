/**
 * The API's entry point on ECS. Configuration comes from the environment the CDK stacks set:
 *   MODEL, PORT, DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_AUTH=iam, REGISTRY_TABLE, USER_POOL_ID,
 *   USER_POOL_CLIENT_ID, SILO_TENANT_ID (silo only), DB_SLOTS (pool, bridge), AWS_REGION, and the secret
 *   CONTEXT_KEY.
 * It signs in to PostgreSQL as its runtime role with short-lived IAM tokens over verified TLS, refuses to start
 * as a role that could bypass isolation, and serves only the tenants of its own model (and, for a silo, only
 * its own tenant).
 */
import { Signer } from '@aws-sdk/rds-signer';
import { ISOLATION_MODELS, IsolationModel } from '../../db/naming';
import { dataModel } from '../../db/models';
import { ContextKey } from '../../db/context';
import { DEFAULT_RUNTIME_SLOTS } from '../../db/slots';
import { BRIDGE_POOL_PARTITIONS, TenantDatabase } from '../../db/tenant-context';
import { buildApp } from './app';
import { createPools, poolSettingsFromEnv } from './db-pool';
import { TenantLimiter } from './tenant-limits';
import { createAuthenticator } from './auth';
import { CachedRegistry, DynamoRegistry } from './registry';
import { waitForDatabase } from './startup';

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`configuration: environment variable ${name} is not set (the CDK stack sets it)`);
  return v;
}

async function main(): Promise<void> {
  const model = env('MODEL') as IsolationModel;
  if (!ISOLATION_MODELS.includes(model)) throw new Error(`configuration: MODEL is ${JSON.stringify(model)}`);
  const host = env('DB_HOST');
  const port = Number(process.env.DB_PORT ?? '5432');
  const user = env('DB_USER');
  // A token is signed for the role a connection signs in as: in a shared cell, one of the runtime role's slot
  // roles (db/slots.ts), which pg passes to the password function.
  const token = (params?: { user?: string }) =>
    new Signer({
      hostname: host,
      port,
      username: params?.user ?? user,
      region: process.env.AWS_REGION,
    }).getAuthToken();
  // Bridge: the connections are split into partitions and each tenant routed to one, so a backend caches a
  // share of the tenants' schemas (README: when something fails).
  const settings = poolSettingsFromEnv();
  const pools = createPools(
    {
      host,
      port,
      user,
      database: env('DB_NAME'),
      // A fresh 15-minute IAM token for each new connection; no password exists for the runtime role.
      password: process.env.DB_AUTH === 'iam' ? token : env('DB_PASSWORD'),
      // The RDS CA bundle is in the image (NODE_EXTRA_CA_CERTS); the host name is verified.
      ssl: { rejectUnauthorized: true, servername: host },
    },
    {
      ...settings,
      partitions: settings.partitions ?? (model === 'bridge' ? BRIDGE_POOL_PARTITIONS : 1),
      // One login role per connection in a shared cell (I8); a silo's API serves one tenant.
      slots: dataModel(model).databasePerTenant ? undefined : (settings.slots ?? DEFAULT_RUNTIME_SLOTS),
    },
  );
  const pool = pools[0];
  const db = new TenantDatabase({
    // The tenant context key, from the cell's secret (ECS injects it): the database verifies every unit of
    // work's credential with the same key (db/context.ts).
    contextKey: ContextKey.fromHex(
      process.env.CONTEXT_KEY,
      'the CONTEXT_KEY environment variable (the cell secret)',
    ),
    pool: pools,
    model,
    siloTenantId: dataModel(model).databasePerTenant ? env('SILO_TENANT_ID') : undefined,
    ...(process.env.DB_MAX_TENANTS_PER_CONNECTION
      ? { maxTenantsPerConnection: Number(process.env.DB_MAX_TENANTS_PER_CONNECTION) }
      : {}),
  });
  const log = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
    console.log(JSON.stringify({ level, msg, ...fields }));
  const startup = waitForDatabase({
    check: async () => {
      // A change of the runtime role's own defaults (SQL injected in some tenant's request can make one) is put
      // back and logged, rather than stopping every task started after it.
      const removed = await db.repairRuntimeRoleSettings();
      if (removed.length > 0) {
        log('error', 'security: the runtime role had settings nobody provisioned; removed them', { removed });
      }
      await db.assertSafeRuntimeRole();
    },
    log,
    fatal: () => process.exit(1),
  });

  const registry = new CachedRegistry(new DynamoRegistry(env('REGISTRY_TABLE')), {
    onStale: (tenantId, e) =>
      log('warn', 'registry unavailable: serving the last known active entry', {
        tenantId,
        err: (e as Error).message,
      }),
  });
  const app = buildApp({
    authenticate: createAuthenticator({
      userPoolId: env('USER_POOL_ID'),
      clientId: env('USER_POOL_CLIENT_ID'),
    }),
    registry,
    forgetTenant: (tenantId) => registry.forget(tenantId),
    // This deployment serves its own model only; a silo service, its own tenant only (db.serves decides).
    databaseFor: () => db,
    startup: startup.state,
    // No tenant holds more than half of the pool (bridge: of the partition) its units of work draw from.
    limiter: new TenantLimiter(
      undefined,
      undefined,
      Math.max(1, Math.floor((pools[0].options.max ?? 20) / 2)),
    ),
    ready: async () => {
      await pool.query('SELECT 1');
    },
    // A database that pauses when idle is never woken by health checks (DB_IDLE_PROBES=off, set by its cell).
    health: { probeWhenIdle: process.env.DB_IDLE_PROBES !== 'off' },
  });
  const close = async () => {
    await app.close();
    await Promise.all(pools.map((p) => p.end()));
    process.exit(0);
  };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  await app.listen({ port: Number(process.env.PORT ?? '8080'), host: '0.0.0.0' });
}

main().catch((e) => {
  console.error(
    JSON.stringify({ level: 'fatal', msg: 'the API could not start', err: (e as Error).message }),
  );
  process.exit(1);
});
