import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { AddressInfo } from 'net';
import type { FastifyInstance } from 'fastify';
import { TenantLimiter, UNMETERED } from '../../service/src/tenant-limits';
import { buildApp } from '../../service/src/app';
import { createAuthenticator } from '../../service/src/auth';
import { CachedRegistry, RegistryEntry, TenantRegistry } from '../../service/src/registry';
import { LOCAL_CLIENT_ID, LOCAL_USER_POOL_ID } from '../../service/src/local/issuer';
import { LocalPlatform } from '../../service/src/local/platform';
import { BlackholeProxy, ControlledServer, recordFault } from '../helpers/faults';

// Faults injected for real while traffic runs: the API (its production pool settings and registry cache) on the
// local platform, against a PostgreSQL server of this file's own, reached through a TCP proxy. For each fault:
// no request hangs, every answer during it is a correct one or a 503, never a wrong one, and the API serves again
// within 5 s of the fault ending.

/** Connect timeout (3 s) + read timeout (7 s) + the registry's (1.5 s), and a margin for a loaded machine. */
const LONGEST_ANSWER_MS = 15000;
const RECOVERY_MS = 5000;
const TENANTS = ['acme', 'umbrella'];

class FaultyRegistry implements TenantRegistry {
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  constructor(private readonly inner: TenantRegistry) {}
  get(tenantId: string): Promise<RegistryEntry | undefined> {
    if (this.mode === 'fail') return Promise.reject(new Error('registry unavailable (injected)'));
    if (this.mode === 'hang') return new Promise(() => undefined);
    return this.inner.get(tenantId);
  }
}

let dir: string;
let server: ControlledServer;
let proxy: BlackholeProxy;
let platform: LocalPlatform;
let registry: FaultyRegistry;
let app: FastifyInstance;
let base: string;
let counter = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-'));
  fs.chmodSync(dir, 0o755);
  server = await ControlledServer.start(path.join(dir, 'pg'));
  proxy = await BlackholeProxy.start(() => server.port);
  const viaProxy = new URL(server.url);
  viaProxy.port = String(proxy.port);
  platform = await LocalPlatform.start({ dir: path.join(dir, 'platform'), serverUrl: viaProxy.toString() });
  for (const [id, model] of [
    ['acme', 'pool'],
    ['umbrella', 'bridge'],
    ['cold', 'pool'],
  ] as const) {
    await platform.provisionTenant({
      id,
      name: id,
      model,
      deletionPolicy: 'retain',
      hostname: id,
      tier: 'standard',
    });
  }
  registry = new FaultyRegistry(platform.registry);
  const cache = new CachedRegistry(registry, { activeTtlMs: 500, inactiveTtlMs: 500 });
  app = buildApp({
    authenticate: createAuthenticator({
      userPoolId: LOCAL_USER_POOL_ID,
      clientId: LOCAL_CLIENT_ID,
      jwks: platform.issuer.jwks,
    }),
    registry: cache,
    forgetTenant: (id) => cache.forget(id),
    databaseFor: (entry) => platform.databaseFor(entry),
    ready: () => platform.ready(),
    logger: false,
    // This suite drives faults, not floods: its traffic (6 workers in a tight loop) is above a standard tier's
    // rate, so per-tenant limits are out of its way here (test/service/tenant-limits.test.ts tests them).
    limiter: new TenantLimiter(() => UNMETERED),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}, 120000);

afterAll(async () => {
  registry.mode = 'ok';
  await app?.close();
  await platform?.stop();
  await proxy?.close();
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  tenant: string;
  status: number;
  ms: number;
  wrong?: string;
}

/** One request as a tenant, checked: every invoice it sees must be its own; status 0 means it never answered. */
async function request(tenant: string, write: boolean): Promise<Outcome> {
  const t0 = Date.now();
  const customer = `${tenant}:${++counter}`;
  try {
    const res = await fetch(`${base}/invoices`, {
      method: write ? 'POST' : 'GET',
      headers: {
        authorization: `Bearer ${platform.issuer.idToken({ tenantId: tenant })}`,
        ...(write ? { 'content-type': 'application/json' } : {}),
      },
      body: write
        ? JSON.stringify({ customer, items: [{ description: 'x', quantity: 1, unitPriceCents: 1 }] })
        : undefined,
      signal: AbortSignal.timeout(30000),
    });
    const body = (await res.json()) as { customer?: string; invoices?: { customer: string }[] };
    let wrong: string | undefined;
    if (res.status === 201 && body.customer !== customer)
      wrong = `created ${body.customer}, sent ${customer}`;
    if (res.status === 200) {
      const foreign = body.invoices?.find((i) => !i.customer.startsWith(`${tenant}:`));
      if (foreign) wrong = `${tenant} saw ${foreign.customer}`;
    }
    return { tenant, status: res.status, ms: Date.now() - t0, wrong };
  } catch {
    return { tenant, status: 0, ms: Date.now() - t0 };
  }
}

/** Six clients sending requests until stopped. */
function traffic(tenants = TENANTS): { stop(): Promise<Outcome[]> } {
  let running = true;
  const outcomes: Outcome[] = [];
  const workers = Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; running; i++) {
      outcomes.push(await request(tenants[(w + i) % tenants.length], i % 3 === 0));
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return outcomes;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long after `since` until every tenant is served again. */
async function recovery(tenants = TENANTS): Promise<number> {
  const since = Date.now();
  for (;;) {
    const answers = await Promise.all(tenants.map((t) => request(t, false)));
    if (answers.every((a) => a.status === 200)) return Date.now() - since;
    if (Date.now() - since > 60000) return Number.POSITIVE_INFINITY;
    await sleep(100);
  }
}

async function inject(
  name: string,
  fault: { start(): Promise<void> | void; end(): Promise<void> | void; lasting: number },
  tenants = TENANTS,
): Promise<{ during: Outcome[]; recoveredInMs: number }> {
  expect(await recovery(tenants)).toBeLessThan(RECOVERY_MS);
  const run = traffic(tenants);
  await sleep(500);
  await fault.start();
  await sleep(fault.lasting);
  await fault.end();
  const recoveredInMs = await recovery(tenants);
  await sleep(500);
  const during = await run.stop();
  const wrong = during.filter((o) => o.wrong);
  recordFault({ fault: name, recovered: recoveredInMs <= RECOVERY_MS, wrongAnswers: wrong.length });
  // Never a wrong answer, never a hang, never anything but a correct answer or 503.
  expect(wrong).toEqual([]);
  expect(during.filter((o) => o.status === 0)).toEqual([]);
  expect(Math.max(...during.map((o) => o.ms))).toBeLessThan(LONGEST_ANSWER_MS);
  expect([...new Set(during.map((o) => o.status))].filter((s) => ![200, 201, 503].includes(s))).toEqual([]);
  expect(recoveredInMs).toBeLessThan(RECOVERY_MS);
  return { during, recoveredInMs };
}

describe('faults injected while traffic runs', () => {
  test('the database stops and starts again (a restart, or a failover to a new primary)', async () => {
    const { during } = await inject('database restart', {
      start: () => server.stop(),
      end: () => server.startAgain(),
      lasting: 2000,
    });
    expect(during.some((o) => o.status === 503)).toBe(true);
  });

  test('every database process paused for 20 s (a hung primary): 503 within the timeouts, then served', async () => {
    const { during } = await inject('database hung 20 s', {
      start: () => server.pause(),
      end: () => server.resume(),
      lasting: 20000,
    });
    expect(during.filter((o) => o.status === 503).length).toBeGreaterThan(0);
    // Readiness answers at once and without error text while the database hangs (checked after: it recovered).
    const ready = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(2000) });
    expect(ready.status).toBe(200);
  });

  test('connections blackholed for 10 s (half-open sockets to a primary that went away)', async () => {
    const { during } = await inject('connections blackholed 10 s', {
      start: () => proxy.blackhole(true),
      end: () => proxy.blackhole(false),
      lasting: 10000,
    });
    expect(during.some((o) => o.status === 503)).toBe(true);
  });

  test('the registry failing: known tenants are served from their last entry, an unknown one gets 503', async () => {
    const cold = request('cold', false);
    expect((await cold).status).toBe(200); // cold is now known; a tenant never looked up:
    const { during } = await inject('registry failing', {
      start: async () => {
        registry.mode = 'fail';
        const never = await request('nobody-seen', false);
        expect(never.status).toBe(503);
      },
      end: () => {
        registry.mode = 'ok';
      },
      lasting: 3000,
    });
    expect(during.filter((o) => o.status !== 200 && o.status !== 201)).toEqual([]);
  });

  test('the registry hanging: every lookup gives up after its timeout, and known tenants are still served', async () => {
    const { during } = await inject('registry hanging', {
      start: () => {
        registry.mode = 'hang';
      },
      end: () => {
        registry.mode = 'ok';
      },
      lasting: 4000,
    });
    expect(Math.max(...during.map((o) => o.ms))).toBeLessThan(3000);
    expect(during.filter((o) => o.status !== 200 && o.status !== 201)).toEqual([]);
  });
});
