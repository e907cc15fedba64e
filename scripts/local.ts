/**
 * npm run local [-- --reset] [-- --catalog <path>]
 *
 * Starts the whole platform on this machine: an embedded PostgreSQL (data under .local/), every tenant of the
 * catalog provisioned in its model, the local token issuer and the API on http://localhost:3000 (PORT).
 * A second start reuses the data; --reset wipes it. Ctrl-C, or SIGTERM/SIGHUP, stops everything cleanly; one
 * instance per checkout (a second one, or a reset of a running one, is refused with its pid and ports).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CatalogError, loadCatalog } from '../lib/catalog';
import { parseCli } from './cli';
import { TenantLimiter, UNMETERED } from '../service/src/tenant-limits';
import { acquireInstance, runningInstance, InstanceRunning } from '../service/src/local/instance';
import { buildApp } from '../service/src/app';
import { createAuthenticator } from '../service/src/auth';
import { CachedRegistry } from '../service/src/registry';
import { LOCAL_CLIENT_ID, LOCAL_UNKNOWN_KEY_HINT, LOCAL_USER_POOL_ID } from '../service/src/local/issuer';
import { LOCAL_DIR, LocalPlatform } from '../service/src/local/platform';
import { embeddedDataDirs } from '../service/src/local/embedded-server';

const USAGE = `usage: npm run local [-- --reset] [-- --catalog <path>]

Starts the platform on this machine: PostgreSQL, every catalog tenant, the token issuer and the API.
  --reset           start from empty data (refused while an instance runs)
  --catalog <path>  the tenant catalog (default: tenants.json)
  --help            this text
Environment: PORT (API, default 3000), LOCAL_PG_PORT (PostgreSQL, default 54329), LOG_LEVEL,
LOCAL_TENANT_LIMITS=off (no per-tenant limits: for benchmarks of the read path only).`;

async function main(): Promise<void> {
  const { values } = parseCli('npm run local', USAGE, {
    reset: { type: 'boolean' },
    catalog: { type: 'string' },
  });
  const catalogPath = values.catalog ?? path.join(__dirname, '..', 'tenants.json');
  const port = Number(process.env.PORT ?? '3000');
  const pgPort = Number(process.env.LOCAL_PG_PORT ?? '54329');
  const running = runningInstance(LOCAL_DIR);
  if (running) throw new InstanceRunning(running, `${LOCAL_DIR}.lock`);
  const pgDir = path.join(LOCAL_DIR, 'pg');
  // As root in a directory the postgres user cannot enter, the server's data lives elsewhere (pg-server.mjs).
  const { inUse: dataDir, cache } = embeddedDataDirs(pgDir);
  if (values.reset) {
    // The cache's directory too, whether or not it is in use now (the checkout's permissions may have changed).
    fs.rmSync(LOCAL_DIR, { recursive: true, force: true });
    const cached = fs.existsSync(cache);
    fs.rmSync(cache, { recursive: true, force: true });
    console.log(`reset: removed ${LOCAL_DIR}${cached ? ` and ${cache}` : ''}`);
  }
  const release = acquireInstance(LOCAL_DIR, { port, pgPort });
  process.on('exit', release);
  const catalog = loadCatalog(catalogPath, '--catalog <path>');
  console.log(`starting PostgreSQL (data in ${dataDir}) ...`);
  const platform = await LocalPlatform.start({ dir: LOCAL_DIR, pgPort });
  const registry = new CachedRegistry(platform.registry);
  const app = buildApp({
    authenticate: createAuthenticator({
      userPoolId: LOCAL_USER_POOL_ID,
      clientId: LOCAL_CLIENT_ID,
      jwks: platform.issuer.jwks,
      unknownKeyHint: LOCAL_UNKNOWN_KEY_HINT,
    }),
    registry,
    forgetTenant: (tenantId) => registry.forget(tenantId),
    databaseFor: (entry) => platform.databaseFor(entry),
    ready: () => platform.ready(),
    logger: process.env.LOG_LEVEL !== 'silent',
    // LOCAL_TENANT_LIMITS=off: no per-tenant limits (npm run bench:api measures the read path with 64 connections
    // on one tenant). Local only: the API in AWS always applies them.
    ...(process.env.LOCAL_TENANT_LIMITS === 'off' ? { limiter: new TenantLimiter(() => UNMETERED) } : {}),
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping ...`);
    await app.close().catch(() => undefined);
    await platform.stop();
    console.log('stopped');
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(signal));
  // If whatever started this goes without passing the signal on (npm's shell, a supervisor killed outright), this
  // process is adopted by another: stop then too, rather than run on as an orphan holding both ports.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void stop('the command that started it exited');
  }, 1000).unref();

  try {
    for (const tenant of catalog.tenants) {
      const known = await platform.registry.get(tenant.id);
      const kept = keptAsRegistered(tenant, known, path.basename(catalogPath));
      if (kept) {
        console.log(`  ${kept}`);
        continue;
      }
      await platform.provisionTenant(tenant);
      console.log(`  provisioned ${tenant.model.padEnd(6)} ${tenant.id}`);
    }
    await app.listen({ port, host: '127.0.0.1' });
  } catch (e) {
    // Never leave the PostgreSQL server running behind a failed start.
    await platform.stop();
    if ((e as { code?: string }).code === 'EADDRINUSE') {
      throw new Error(
        `port ${port} is in use: stop what uses it, or start with PORT=<another port> npm run local`,
      );
    }
    throw e;
  }
  // What the registry holds, as in AWS: the catalog's tenants and any onboarded here (npm run onboard).
  const registered = Object.values(platform.registry.readAll());
  const served = registered.filter((t) => t.status === 'active');
  const offboarded = registered.filter((t) => t.status === 'offboarded');
  const first = served[0]?.tenantId ?? catalog.tenants[0]?.id ?? 'acme';
  console.log(`
API listening on http://localhost:${port} (Ctrl-C stops)
  tenants: ${served.map((t) => `${t.tenantId} (${t.model})`).join(', ') || 'none'}${offboarded.length ? `\n  offboarded: ${offboarded.map((t) => `${t.tenantId} (${t.dataRetained === false ? 'data deleted' : 'data kept'})`).join(', ')}` : ''}
  try:
    TOKEN=$(npm run -s token -- ${first})
    curl -s -H "Authorization: Bearer $TOKEN" localhost:${port}/me
    curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
      -d '{"customer":"Initech","items":[{"description":"Consulting","quantity":2,"unitPriceCents":5000}]}' localhost:${port}/invoices
    curl -s -H "Authorization: Bearer $TOKEN" localhost:${port}/invoices
`);
}

/**
 * Local state follows the registry, as in AWS, wherever it differs from the catalog: a start provisions a catalog
 * tenant (again: idempotent, it brings its schema up to date) only when the registry does not know it, or knows it
 * in the catalog's model as active (with no kept copy, which that would drop), or as failed or left provisioning (a
 * retry).
 * Otherwise it says why it leaves the tenant as registered: an offboarded tenant stays offboarded (npm run
 * onboard -- --restore brings it back); one a move took to another model is served there (its data is there; a
 * start in the catalog's model would serve it empty); one moving, or keeping a copy, is left to npm run tenant.
 */
function keptAsRegistered(
  tenant: { id: string; model: string },
  known: Awaited<ReturnType<LocalPlatform['registry']['get']>>,
  catalogName: string,
): string | undefined {
  if (!known) return undefined;
  const id = tenant.id;
  if (known.status === 'offboarded') {
    return `offboarded ${tenant.model.padEnd(6)} ${id} (kept offboarded; not provisioned)`;
  }
  if (known.model === tenant.model && (known.status === 'failed' || known.status === 'provisioning')) {
    return undefined;
  }
  if (known.model === tenant.model && known.status === 'active' && !known.keptCopy) return undefined;
  const differs = known.model !== tenant.model ? `; ${catalogName} says ${tenant.model}` : '';
  if (known.status === 'moving') {
    return `moving     ${id} (the registry's: ${known.model}, moving${differs}; finish or undo it with npm run tenant -- abort-move --tenant ${id})`;
  }
  const copy = known.keptCopy
    ? `, keeps its ${known.keptCopy} copy (npm run tenant -- purge --tenant ${id})`
    : '';
  return `kept       ${id} (the registry's: ${known.model}, ${known.status}${copy}${differs}: a move or a restore changed it, or the catalog was edited; after a release, npm run migrate brings its schema up to date)`;
}

main().catch((e) => {
  // The message is the useful part: no stack for what the user can fix.
  console.error(e instanceof CatalogError || e instanceof Error ? `npm run local: ${e.message}` : e);
  process.exit(1);
});
