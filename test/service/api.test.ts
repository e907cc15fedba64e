import * as fs from 'fs';
import * as net from 'net';
import https from 'https';
import * as os from 'os';
import * as path from 'path';
import { randomBytes, randomUUID } from 'crypto';
import type { AddressInfo } from 'net';
import type { FastifyInstance } from 'fastify';
import { parseCatalog, Tenant } from '../../lib/catalog';
import { sql } from '../../db/sql';
import { AppDeps, buildApp, MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE_CENTS } from '../../service/src/app';
import { createAuthenticator } from '../../service/src/auth';
import { TenantLimiter, TIER_LIMITS } from '../../service/src/tenant-limits';
import { SERVED_SCHEMA_VERSIONS } from '../../db/migrations/compatibility';
import { CachedRegistry, TenantRegistry } from '../../service/src/registry';
import {
  LocalIssuer,
  LOCAL_CLIENT_ID,
  LOCAL_UNKNOWN_KEY_HINT,
  LOCAL_USER_POOL_ID,
} from '../../service/src/local/issuer';
import { LocalPlatform } from '../../service/src/local/platform';
import { TenantMobility } from '../../service/src/local/mobility';
import { MASTER_PASSWORD, MASTER_ROLE, RUNTIME_PASSWORD, serverUrl, tryLeak } from '../db/harness';

// End to end over HTTP: the real API, the real local platform on the run's PostgreSQL server, real tokens
// signed by the local issuer and verified by aws-jwt-verify's CognitoJwtVerifier.
const POOL = ['stark', 'wayne', 'oscorp', 'lexcorp'];
const BRIDGE = ['aperture', 'blackmesa', 'massive', 'dynamic'];
const SILO = ['contoso', 'fabrikam'];

let platform: LocalPlatform;
let app: FastifyInstance;
let base: string;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'api-test-'));
  const catalog = parseCatalog(
    {
      tenants: [
        ...POOL.map((id) => ({ id, name: id, model: 'pool' })),
        ...BRIDGE.map((id) => ({ id, name: id, model: 'bridge' })),
        ...SILO.map((id, i) => ({
          id,
          name: id,
          model: 'silo',
          settings: { vpcCidr: `10.${20 + i}.0.0/20` },
        })),
        { id: 'quitter', name: 'Leaves soon', model: 'bridge' },
      ],
    },
    'api test catalog',
  );
  platform = await LocalPlatform.start({
    dir,
    serverUrl: serverUrl().toString(),
    databasePrefix: `api_${randomBytes(3).toString('hex')}_`,
    runtimePassword: RUNTIME_PASSWORD,
    master: { role: MASTER_ROLE, password: MASTER_PASSWORD },
    poolSize: 3,
  });
  for (const t of catalog.tenants) await platform.provisionTenant(t as Tenant);
  app = buildApp({
    authenticate: createAuthenticator({
      userPoolId: LOCAL_USER_POOL_ID,
      clientId: LOCAL_CLIENT_ID,
      jwks: platform.issuer.jwks,
      unknownKeyHint: LOCAL_UNKNOWN_KEY_HINT,
    }),
    registry: new CachedRegistry(platform.registry, { activeTtlMs: 0, inactiveTtlMs: 0 }),
    databaseFor: (entry) => platform.databaseFor(entry),
    ready: () => platform.ready(),
    logger: false,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await platform?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** An API on the same platform with other settings (limits, logs), used through inject(). */
const anotherApp = (deps: Partial<AppDeps>) =>
  buildApp({
    authenticate: createAuthenticator({
      userPoolId: LOCAL_USER_POOL_ID,
      clientId: LOCAL_CLIENT_ID,
      jwks: platform.issuer.jwks,
    }),
    registry: new CachedRegistry(platform.registry),
    databaseFor: (entry) => platform.databaseFor(entry),
    ready: () => platform.ready(),
    ...deps,
  });

const token = (tenantId: string, overrides?: Record<string, unknown>) =>
  platform.issuer.idToken({ tenantId, overrides });

// Response bodies are JSON of several shapes; the tests read them loosely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function call(
  tenantOrToken: string | { raw: string | undefined },
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const auth = typeof tenantOrToken === 'string' ? `Bearer ${token(tenantOrToken)}` : tenantOrToken.raw;
  const res = await fetch(`${base}${url}`, {
    method,
    headers: {
      ...(auth !== undefined ? { authorization: auth } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const invoice = (customer: string, extra: object = {}) => ({
  customer,
  items: [
    { description: 'Consulting', quantity: 2, unitPriceCents: 5000 },
    { description: 'Travel', quantity: 1, unitPriceCents: 1234 },
  ],
  ...extra,
});

describe('API basics', () => {
  test('health and readiness need no token', async () => {
    expect(await call({ raw: undefined }, 'GET', '/health')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await call({ raw: undefined }, 'GET', '/ready')).toEqual({
      status: 200,
      body: { status: 'ready' },
    });
  });

  test.each([
    ['stark', 'pool'],
    ['aperture', 'bridge'],
    ['contoso', 'silo'],
  ])('GET /me tells tenant %s its model (%s)', async (tenantId, model) => {
    expect(await call(tenantId, 'GET', '/me')).toEqual({
      status: 200,
      body: { tenantId, model, name: tenantId, tier: 'standard', limits: TIER_LIMITS.standard },
    });
  });

  test('POST /invoices creates an invoice with its items and total', async () => {
    const r = await call(
      'wayne',
      'POST',
      '/invoices',
      invoice('Gotham City', { reference: 'PO-17', dueOn: '2027-01-31' }),
    );
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      customer: 'Gotham City',
      reference: 'PO-17',
      dueOn: '2027-01-31',
      totalCents: 11234,
      itemCount: 2,
      items: [
        { lineNo: 1, description: 'Consulting', quantity: 2, unitPriceCents: 5000 },
        { lineNo: 2, description: 'Travel', quantity: 1, unitPriceCents: 1234 },
      ],
    });
    const got = await call('wayne', 'GET', `/invoices/${r.body.id}`);
    expect(got).toEqual({ status: 200, body: r.body });
    expect((await call('wayne', 'POST', '/invoices', invoice('Again', { reference: 'PO-17' }))).status).toBe(
      409,
    );
    expect((await call('wayne', 'DELETE', `/invoices/${r.body.id}`)).status).toBe(204);
    expect((await call('wayne', 'GET', `/invoices/${r.body.id}`)).status).toBe(404);
  });

  test('GET /invoices pages through every invoice once, in order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await call('massive', 'POST', '/invoices', invoice(`c${i}`))).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { status: number; body: Json } = await call(
        'massive',
        'GET',
        `/invoices?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(r.status).toBe(200);
      expect(r.body.invoices.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.invoices.map((x: { id: string }) => x.id));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids);
    expect((await call('massive', 'GET', '/invoices?cursor=bm9wZQ')).status).toBe(400);
  });

  test.each([
    [{ items: [] }, 'body must have required property'],
    [
      { customer: '', items: [{ description: 'x', quantity: 1, unitPriceCents: 1 }] },
      'body/customer must NOT have fewer than 1 characters',
    ],
    [{ customer: 'x', items: [] }, 'body/items must NOT have fewer than 1 items'],
    [
      { customer: 'x', items: [{ description: 'x', quantity: 0, unitPriceCents: 1 }] },
      'body/items/0/quantity must be >= 1',
    ],
    [
      { customer: 'x', items: [{ description: 'x', quantity: 1, unitPriceCents: 1 }], tenantId: 'wayne' },
      'body must NOT have additional properties: "tenantId" is not a field it takes',
    ],
    [
      { customer: 'x', items: [{ description: 'x', quantity: 1, unitPriceCents: 1, discount: 5 }] },
      'body/items/0 must NOT have additional properties: "discount" is not a field it takes',
    ],
    [
      { customer: 'x', dueOn: 'tomorrow', items: [{ description: 'x', quantity: 1, unitPriceCents: 1 }] },
      'body/dueOn must match format "date"',
    ],
  ])('rejects invalid body %j with 400 naming the field', async (body, message) => {
    const r = await call('stark', 'POST', '/invoices', body);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error: 'bad_request', message: expect.stringContaining(message) });
  });
});

describe('request bodies: the API decides', () => {
  test('the largest valid invoice is accepted (the WAF only counts body rules); past 256 KB the API answers 413', async () => {
    const item = (i: number) => ({
      description: `${i} <b>bold</b> ${'x'.repeat(480)}`,
      quantity: MAX_QUANTITY,
      unitPriceCents: MAX_UNIT_PRICE_CENTS,
    });
    const largest = {
      customer: 'c'.repeat(200),
      reference: 'r'.repeat(100),
      dueOn: '2027-01-31',
      items: Array.from({ length: MAX_ITEMS }, (_, i) => item(i)),
    };
    expect(JSON.stringify(largest).length).toBeGreaterThan(8 * 1024); // over the WAF's body size rule
    const created = await call('stark', 'POST', '/invoices', largest);
    expect(created.status).toBe(201);
    expect(created.body.items).toHaveLength(MAX_ITEMS);
    // The total is exact: no overflow in the database, no rounding in JSON.
    expect(created.body.totalCents).toBe(MAX_ITEMS * MAX_QUANTITY * MAX_UNIT_PRICE_CENTS);
    expect(Number.isSafeInteger(created.body.totalCents)).toBe(true);
    const tooLarge = await call('stark', 'POST', '/invoices', { ...largest, filler: 'x'.repeat(300 * 1024) });
    expect(tooLarge).toEqual({
      status: 413,
      body: {
        error: 'payload_too_large',
        message: 'the request body is larger than this API accepts (256 KB)',
      },
    });
  });
});

describe('strict types and one error shape', () => {
  test.each([
    ['a price as a string', { unitPriceCents: '5' }, 'unitPriceCents'],
    ['a quantity as a string', { quantity: '2' }, 'quantity'],
    ['a quantity as a boolean', { quantity: true }, 'quantity'],
    ['a description as a number', { description: 5 }, 'description'],
  ])('refuses %s with 400 naming the field', async (_what, change, field) => {
    const body = {
      customer: 'Types',
      items: [{ description: 'x', quantity: 1, unitPriceCents: 1, ...change }],
    };
    const r = await call('stark', 'POST', '/invoices', body);
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('bad_request');
    expect(r.body.message).toContain(field);
  });

  test('a customer given as an array is refused, not joined into a string', async () => {
    const r = await call('stark', 'POST', '/invoices', { ...invoice('x'), customer: ['a', 'b'] });
    expect(r.status).toBe(400);
    expect(r.body.message).toContain('customer');
  });

  test('limit is a whole number from 1 to 100', async () => {
    expect((await call('stark', 'GET', '/invoices?limit=2')).status).toBe(200);
    for (const bad of ['0', '101', 'abc', '1.5', '-1']) {
      const r = await call('stark', 'GET', `/invoices?limit=${bad}`);
      expect(r).toEqual({
        status: 400,
        body: {
          error: 'bad_request',
          message: `querystring/limit must be a whole number from 1 to 100 (got "${bad}")`,
        },
      });
    }
  });

  test('unknown routes and unsupported bodies answer { error, message } like every other error', async () => {
    expect(await call('stark', 'GET', '/nope?x=1')).toEqual({
      status: 404,
      body: { error: 'not_found', message: "no route GET /nope: see the README's API section" },
    });
    expect((await call('stark', 'PUT', '/invoices')).body.error).toBe('not_found');
    const res = await fetch(`${base}/invoices`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token('stark')}`, 'content-type': 'application/xml' },
      body: '<invoice/>',
    });
    expect(res.status).toBe(415);
    expect(Object.keys((await res.json()) as object).sort()).toEqual(['error', 'message']);
  });
});

describe("a cell's API asked for a tenant that moved away from it, or that it never served", () => {
  test('503 with Retry-After naming the cell it moved to; 403 for any other tenant of another cell; nothing read', async () => {
    // The pool cell's API (in AWS each cell's serves its own model only), asked for bridge tenants.
    const poolCell = buildApp({
      authenticate: createAuthenticator({
        userPoolId: LOCAL_USER_POOL_ID,
        clientId: LOCAL_CLIENT_ID,
        jwks: platform.issuer.jwks,
      }),
      registry: platform.registry,
      databaseFor: (entry) => platform.databaseFor({ ...entry, model: 'pool' }),
      ready: () => platform.ready(),
      logger: false,
    });
    const get = (tenant: string) =>
      poolCell.inject({
        method: 'GET',
        url: '/invoices',
        headers: { authorization: `Bearer ${token(tenant)}` },
      });
    try {
      // A bridge tenant that never lived in pool: not served here, for good.
      const never = await get('aperture');
      expect(never.statusCode).toBe(403);
      expect(never.json()).toEqual({
        error: 'forbidden',
        message: 'tenant "aperture" is not served by this deployment',
      });
      // One that moved from pool to bridge (its kept copy is in pool): served there, its name follows.
      const entry = platform.registry.readAll().blackmesa;
      platform.registry.put({ ...entry, keptCopy: 'pool' });
      try {
        const moved = await get('blackmesa');
        expect(moved.statusCode).toBe(503);
        expect(moved.headers['retry-after']).toBe('60');
        expect(moved.json()).toEqual({
          error: 'unavailable',
          message:
            'tenant "blackmesa" moved to the bridge cell: use that cell\'s address (a tenant\'s DNS name points there within minutes)',
        });
      } finally {
        platform.registry.put(entry);
      }
      // Its own tenants it serves.
      expect((await get('stark')).statusCode).toBe(200);
    } finally {
      await poolCell.close();
    }
  });
});

describe('offboarding while an API still caches the tenant as active', () => {
  /** An API whose registry cache keeps an active tenant for a minute, counting what it is told to forget. */
  const cachingApi = (inner: TenantRegistry = platform.registry) => {
    const forgotten: string[] = [];
    const registry = new CachedRegistry(inner, { activeTtlMs: 60000 });
    const caching = buildApp({
      authenticate: createAuthenticator({
        userPoolId: LOCAL_USER_POOL_ID,
        clientId: LOCAL_CLIENT_ID,
        jwks: platform.issuer.jwks,
      }),
      registry,
      forgetTenant: (id) => {
        forgotten.push(id);
        registry.forget(id);
      },
      databaseFor: (entry) => platform.databaseFor(entry),
      ready: () => platform.ready(),
      logger: false,
    });
    const get = async (tenantId: string) => {
      const r = await caching.inject({
        method: 'GET',
        url: '/invoices',
        headers: { authorization: `Bearer ${token(tenantId)}` },
      });
      return { status: r.statusCode, body: r.json() };
    };
    return { caching, forgotten, get };
  };
  /** A silo tenant of its own VPC range, provisioned as a catalog entry is. */
  const provisionSilo = (id: string, vpcCidr: string, deletionPolicy: 'retain' | 'destroy') =>
    platform.provisionTenant(
      parseCatalog(
        { tenants: [{ id, name: id, model: 'silo', settings: { vpcCidr, deletionPolicy } }] },
        'api test',
      ).tenants[0],
    );

  test('a silo whose data was destroyed: 403 at once (its tables are gone), never a 500, and the registry is read again', async () => {
    await provisionSilo('silo-leaver', '10.40.0.0/20', 'destroy');
    const { caching, forgotten, get } = cachingApi();
    expect((await get('silo-leaver')).status).toBe(200);
    await platform.offboardTenant('silo-leaver', 'destroy');
    expect(await get('silo-leaver')).toEqual({
      status: 403,
      body: { error: 'forbidden', message: 'tenant "silo-leaver" is not active' },
    });
    expect(forgotten).toEqual(['silo-leaver']);
    expect((await get('silo-leaver')).body).toEqual({
      error: 'forbidden',
      message: 'tenant "silo-leaver" is offboarded',
    });
    await caching.close();
  });

  test('when the registry cannot be read then, 503 with Retry-After: never a guess that the tenant left', async () => {
    await provisionSilo('silo-unread', '10.42.0.0/20', 'destroy');
    let failing = false;
    const { caching, get } = cachingApi({
      get: async (id) => {
        if (failing) throw new Error('ProvisionedThroughputExceededException');
        return platform.registry.get(id);
      },
    });
    expect((await get('silo-unread')).status).toBe(200);
    await platform.offboardTenant('silo-unread', 'destroy');
    failing = true;
    const r = await caching.inject({
      method: 'GET',
      url: '/invoices',
      headers: { authorization: `Bearer ${token('silo-unread')}` },
    });
    expect({ status: r.statusCode, retryAfter: r.headers['retry-after'], body: r.json() }).toEqual({
      status: 503,
      retryAfter: '2',
      body: {
        error: 'unavailable',
        message: 'the tenant registry cannot be read right now; try again shortly',
      },
    });
    await caching.close();
  });

  test('a silo the tenant moved out of: 503 with Retry-After naming where it went, never a 500', async () => {
    await provisionSilo('silo-mover', '10.41.0.0/20', 'retain');
    const { caching, forgotten, get } = cachingApi();
    expect((await get('silo-mover')).status).toBe(200);
    await new TenantMobility(platform, path.join(dir, 'moves')).move('silo-mover', 'pool');
    const r = await caching.inject({
      method: 'GET',
      url: '/invoices',
      headers: { authorization: `Bearer ${token('silo-mover')}` },
    });
    expect(r.statusCode).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    expect(r.json().message).toContain('pool');
    expect(forgotten).toEqual(['silo-mover']);
    expect((await get('silo-mover')).status).toBe(200);
    await caching.close();
  });

  test('the database refuses the pool tenant at once (403), and the next lookup reads the registry again', async () => {
    await platform.provisionTenant({
      id: 'leaver',
      name: 'Leaver',
      model: 'pool',
      deletionPolicy: 'retain',
      hostname: 'leaver',
      tier: 'standard',
    });
    const { caching, forgotten, get: getFor } = cachingApi();
    const get = () => getFor('leaver');
    expect((await get()).status).toBe(200);
    await platform.offboardTenant('leaver', 'retain');
    // The cache still says active for a minute; the database does not wait.
    expect(await get()).toEqual({
      status: 403,
      body: { error: 'forbidden', message: 'tenant "leaver" is not active' },
    });
    expect(forgotten).toEqual(['leaver']);
    expect(await get()).toEqual({
      status: 403,
      body: { error: 'forbidden', message: 'tenant "leaver" is offboarded' },
    });
    await caching.close();
  });
});

describe('tenant isolation over HTTP', () => {
  test.each([
    ['pool-pool', 'stark', 'wayne'],
    ['bridge-bridge', 'aperture', 'blackmesa'],
    ['pool-bridge', 'oscorp', 'dynamic'],
    ['bridge-pool', 'dynamic', 'oscorp'],
    ['silo-pool', 'contoso', 'lexcorp'],
    ['silo-bridge', 'fabrikam', 'aperture'],
    ['silo-silo', 'contoso', 'fabrikam'],
  ])("%s: tenant B cannot list, read or delete tenant A's invoices", async (pair, a, b) => {
    const created = await call(a, 'POST', '/invoices', invoice(`${a} secret customer`));
    expect(created.status).toBe(201);
    const id = created.body.id;
    const outcome = await tryLeak(
      'API',
      `${pair}: ${b} lists, reads and deletes ${a}'s invoice`,
      async () => {
        const list = await call(b, 'GET', '/invoices?limit=100');
        const read = await call(b, 'GET', `/invoices/${id}`);
        const missing = await call(b, 'GET', `/invoices/${randomUUID()}`);
        const del = await call(b, 'DELETE', `/invoices/${id}`);
        const listed = list.body.invoices.some((x: { id: string }) => x.id === id);
        return {
          leaked:
            listed ||
            read.status !== 404 ||
            del.status !== 404 ||
            JSON.stringify(read.body) !== JSON.stringify(missing.body),
          detail: `listed ${listed}, read ${read.status}, delete ${del.status}`,
        };
      },
    );
    expect(outcome).toEqual({ leaked: false, detail: 'listed false, read 404, delete 404' });
    expect((await call(a, 'GET', `/invoices/${id}`)).status).toBe(200);
  });
});

describe('authentication: 401', () => {
  const other = LocalIssuer.ephemeral();
  const now = Math.floor(Date.now() / 1000);
  test.each([
    ['no Authorization header', () => undefined],
    ['a malformed header', () => 'Bearer not-a-jwt'],
    ['a Basic credential', () => 'Basic c3RhcmsK'],
    ['an expired token', () => `Bearer ${token('stark', { iat: now - 7200, exp: now - 3600 })}`],
    [
      'a wrong issuer',
      () =>
        `Bearer ${token('stark', { iss: 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other' })}`,
    ],
    ['a wrong audience', () => `Bearer ${token('stark', { aud: 'some-other-client' })}`],
    ['an access token', () => `Bearer ${token('stark', { token_use: 'access' })}`],
    ['a key the issuer never published', () => `Bearer ${other.idToken({ tenantId: 'stark' })}`],
    [
      'alg none',
      () => {
        const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const [, payload] = token('stark').split('.');
        return `Bearer ${enc({ alg: 'none', typ: 'JWT' })}.${payload}.`;
      },
    ],
    [
      'a payload rewritten to another tenant',
      () => {
        const [h, p, s] = token('stark').split('.');
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
        claims['custom:tenant_id'] = 'wayne';
        return `Bearer ${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
      },
    ],
    ['a token without a tenant claim', () => `Bearer ${token('stark', { 'custom:tenant_id': undefined })}`],
  ])('refuses %s', async (_what, header) => {
    const r = await call({ raw: header() }, 'GET', '/invoices');
    expect(r.status).toBe(401);
    expect(r.body.error).toBe('unauthorized');
  });

  test('a token from another local issuer gets a 401 that says how to get a new one, and nothing is fetched', async () => {
    const request = jest.spyOn(https, 'request');
    const get = jest.spyOn(https, 'get');
    const fetched = jest.spyOn(globalThis, 'fetch');
    try {
      const r = await call({ raw: `Bearer ${other.idToken({ tenantId: 'stark' })}` }, 'GET', '/invoices');
      expect(r.status).toBe(401);
      expect(r.body.message).toContain('which this issuer does not have');
      expect(r.body.message).toContain('npm run -s token -- <tenant id>');
      expect(r.body.message).not.toMatch(/cognito|JWKS/i);
      expect(request).not.toHaveBeenCalled();
      expect(get).not.toHaveBeenCalled();
      // The test's own call to the API is the only fetch.
      expect(fetched.mock.calls.map(([url]) => String(url)).filter((u) => !u.startsWith(base))).toEqual([]);
    } finally {
      request.mockRestore();
      get.mockRestore();
      fetched.mockRestore();
    }
  });

  test('the tenant comes only from the token, never from a header, the path, the query or the body', async () => {
    const mine = await call('lexcorp', 'POST', '/invoices', invoice('mine'));
    const headers = { authorization: `Bearer ${token('lexcorp')}`, 'x-tenant-id': 'stark' };
    const listed = (await (await fetch(`${base}/invoices`, { headers })).json()) as {
      invoices: { id: string }[];
    };
    expect(listed.invoices.map((x) => x.id)).toContain(mine.body.id);
    const me = (await (await fetch(`${base}/me`, { headers })).json()) as { tenantId: string };
    expect(me.tenantId).toBe('lexcorp');
    // Unknown query parameters and body fields are refused outright rather than ignored.
    expect((await call('lexcorp', 'GET', '/invoices?tenantId=stark')).status).toBe(400);
    expect((await call('lexcorp', 'POST', '/invoices', invoice('x', { tenantId: 'stark' }))).status).toBe(
      400,
    );
  });
});

describe('authorization: 403', () => {
  test('a tenant this deployment does not know', async () => {
    expect(await call('nobody', 'GET', '/invoices')).toEqual({
      status: 403,
      body: { error: 'forbidden', message: 'tenant "nobody" is not registered' },
    });
  });

  test('an offboarded tenant is refused, and its data is kept', async () => {
    const created = await call('quitter', 'POST', '/invoices', invoice('last order'));
    await platform.offboardTenant('quitter', 'retain');
    expect(await call('quitter', 'GET', '/invoices')).toEqual({
      status: 403,
      body: { error: 'forbidden', message: 'tenant "quitter" is offboarded' },
    });
    const back_ = {
      id: 'quitter',
      name: 'Back',
      model: 'bridge',
      deletionPolicy: 'retain',
      hostname: 'quitter',
      tier: 'standard',
    } as const;
    // A retired id is never provisioned again as if it were new: only an explicit restore brings it back.
    await expect(platform.provisionTenant(back_)).rejects.toThrow(
      'provisioned again only by an explicit restore',
    );
    await platform.provisionTenant(back_, { restore: true });
    const back = await call('quitter', 'GET', `/invoices/${created.body.id}`);
    expect(back.status).toBe(200);
  });

  test('a tenant whose provisioning failed is refused', async () => {
    platform.registry.put({ tenantId: 'halfway', model: 'pool', status: 'failed', failureReason: 'test' });
    expect((await call('halfway', 'GET', '/invoices')).status).toBe(403);
  });
});

describe('concurrency', () => {
  test("10 tenants x 50 interleaved requests over shared pools, with failures mid-transaction: every response holds only its own tenant's rows", async () => {
    const tenants = [...POOL, ...BRIDGE, ...SILO];
    const own = new Map<string, Set<string>>(tenants.map((t) => [t, new Set<string>()]));
    for (const t of tenants) {
      const r = await call(t, 'GET', '/invoices?limit=100');
      r.body.invoices.forEach((x: { id: string }) => own.get(t)!.add(x.id));
    }
    const violations: string[] = [];
    let failedOnPurpose = 0;
    const step = async (t: string, i: number) => {
      const kind = i % 5;
      if (kind === 0 || kind === 1) {
        const r = await call(t, 'POST', '/invoices', invoice(`${t}-${i}`, { reference: `ref-${i % 10}` }));
        if (r.status === 201) own.get(t)!.add(r.body.id);
        else if (r.status === 409)
          failedOnPurpose++; // a duplicate reference fails inside the transaction
        else violations.push(`${t} POST ${r.status}`);
      } else if (kind === 2) {
        // A handler that throws halfway through its transaction, on the same pooled connections.
        const entry = (await platform.registry.get(t))!;
        await platform
          .databaseFor(entry)!
          .forTenant(t)
          .transaction(async (tx) => {
            await tx.query(sql`INSERT INTO invoices (customer) VALUES ('never committed')`);
            throw new Error('crash mid-transaction');
          })
          .catch(() => failedOnPurpose++);
      } else {
        const r = await call(t, 'GET', '/invoices?limit=100');
        if (r.status !== 200) violations.push(`${t} GET ${r.status}`);
        for (const x of r.body.invoices ?? []) {
          if (!own.get(t)!.has(x.id)) violations.push(`${t} saw ${x.id} (${x.customer})`);
          if (x.customer === 'never committed') violations.push(`${t} saw an uncommitted row`);
        }
      }
    };
    const outcome = await tryLeak(
      'API',
      '500 interleaved requests across 10 tenants and 3 models',
      async () => {
        await Promise.all(
          tenants.map(async (t) => {
            for (let i = 0; i < 50; i++) await step(t, i);
          }),
        );
        return {
          leaked: violations.length > 0,
          detail: violations.slice(0, 5).join('; ') || 'no foreign rows',
        };
      },
    );
    expect(outcome).toEqual({ leaked: false, detail: 'no foreign rows' });
    expect(failedOnPurpose).toBeGreaterThan(100);
    // Every tenant's final list is exactly what it created.
    for (const t of tenants) {
      const r = await call(t, 'GET', '/invoices?limit=100');
      expect(new Set(r.body.invoices.map((x: { id: string }) => x.id))).toEqual(own.get(t));
    }
  });
});

describe('schema versions', () => {
  test('a tenant whose schema is older than this release serves gets 503 with the reason, then is served once migrated', async () => {
    const entry = (await platform.registry.get('oscorp'))!;
    platform.registry.put({ ...entry, schemaVersion: SERVED_SCHEMA_VERSIONS.oldest - 1 });
    try {
      const r = await call('oscorp', 'GET', '/invoices');
      expect(r.status).toBe(503);
      expect(r.body).toEqual({
        error: 'unavailable',
        message: `tenant "oscorp" has data at schema version ${SERVED_SCHEMA_VERSIONS.oldest - 1}; this release of the API serves version ${SERVED_SCHEMA_VERSIONS.oldest} and later. Its migration has not run yet (npm run migrate): try again after it`,
      });
    } finally {
      platform.registry.put(entry);
    }
    expect((await call('oscorp', 'GET', '/invoices')).status).toBe(200);
  });
});

describe('noisy neighbours: per-tenant limits', () => {
  test('GET /me shows the caller its tier and limits', async () => {
    const me = await call('stark', 'GET', '/me');
    expect(me.body).toMatchObject({ tenantId: 'stark', tier: 'standard', limits: TIER_LIMITS.standard });
  });

  test("an invoice's items count against the rows budget once written or read", async () => {
    const limits = { ...TIER_LIMITS.standard, rowsPerSecond: 100, rowsBurst: 80 };
    const limited = anotherApp({
      logger: false,
      limiter: new TenantLimiter(
        () => limits,
        () => 1_000_000,
      ),
    });
    try {
      const headers = { authorization: `Bearer ${token('stark')}` };
      const items = Array.from({ length: 30 }, () => ({
        description: 'Part',
        quantity: 1,
        unitPriceCents: 100,
      }));
      const created = await limited.inject({
        method: 'POST',
        url: '/invoices',
        headers,
        payload: { customer: 'Big', items },
      });
      expect(created.statusCode).toBe(201); // 1 + 30 rows: 49 left
      const url = `/invoices/${created.json().id as string}`;
      expect((await limited.inject({ method: 'GET', url, headers })).statusCode).toBe(200); // 1 + 30: 18 left
      expect((await limited.inject({ method: 'GET', url, headers })).statusCode).toBe(200); // 1 + 30: -13
      const over = await limited.inject({ method: 'GET', url, headers });
      expect(over.statusCode).toBe(429);
      expect(over.json()).toMatchObject({ limit: 'rows per second' });
    } finally {
      await limited.close();
    }
  });

  test('a list is charged its page size against the rows-per-second limit; single reads and neighbours go on', async () => {
    const limits = { ...TIER_LIMITS.standard, rowsPerSecond: 100, rowsBurst: 150 };
    // The limiter's clock stands still: nothing refills between the requests.
    const limited = anotherApp({
      logger: false,
      limiter: new TenantLimiter(
        () => limits,
        () => 1_000_000,
      ),
    });
    try {
      const get = (tenant: string, url: string) =>
        limited.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token(tenant)}` } });
      expect((await get('stark', '/invoices?limit=100')).statusCode).toBe(200);
      const over = await get('stark', '/invoices?limit=100');
      expect(over.statusCode).toBe(429);
      expect(over.headers['retry-after']).toBe('1');
      expect(over.json()).toEqual({
        error: 'too_many_requests',
        limit: 'rows per second',
        message:
          'tenant "stark" is over its standard tier\'s 100 rows per second (burst 150; this request asks for up to 100): retry after 1 s, or ask for smaller pages',
      });
      // A smaller page, and a single read, still fit what is left of its budget.
      expect((await get('stark', '/invoices?limit=20')).statusCode).toBe(200);
      expect((await get('stark', '/invoices/00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
      // The default page (50) is charged 50: the budget (150 - 100 - 20 - 1 = 29) no longer holds it.
      expect((await get('stark', '/invoices')).json()).toMatchObject({ limit: 'rows per second' });
      // A page size the route refuses reads nothing and is charged one row; it gets its 400.
      expect((await get('stark', '/invoices?limit=500')).statusCode).toBe(400);
      expect((await get('wayne', '/invoices?limit=100')).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });

  test('refusals asked for together are spread over time, not sent together', async () => {
    // A fixed wait sent a flood's refusals back in waves, and its connections asked again in waves, that a
    // neighbour's request queued behind (npm run bench:noisy). Each wait is 0.5 to 1.5 times the average.
    const spread = [0.9, 0, 0.5, 0.2];
    let next = 0;
    const limited = anotherApp({
      logger: false,
      limiter: new TenantLimiter(
        () => ({ ...TIER_LIMITS.standard, burst: 1 }),
        () => 1_000_000,
      ),
      refusalDelayMs: 200,
      random: () => spread[next++],
    });
    try {
      const get = () =>
        limited.inject({
          method: 'GET',
          url: '/invoices',
          headers: { authorization: `Bearer ${token('stark')}` },
        });
      expect((await get()).statusCode).toBe(200);
      const asked = Date.now();
      const answered: { i: number; ms: number; status: number }[] = [];
      await Promise.all(
        spread.map((_, i) =>
          get().then((r) => answered.push({ i, ms: Date.now() - asked, status: r.statusCode })),
        ),
      );
      expect(answered.map((a) => a.status)).toEqual([429, 429, 429, 429]);
      // Answered in the order of their waits (100, 140, 200, 280 ms), not in the order they were asked.
      expect(answered.map((a) => a.i)).toEqual([1, 3, 2, 0]);
      answered.forEach((a) => expect(a.ms).toBeGreaterThanOrEqual(200 * (0.5 + spread[a.i]) - 5));
    } finally {
      await limited.close();
    }
  });

  test("over its rate a tenant gets 429 with Retry-After and the limit's name; a neighbour is served meanwhile", async () => {
    const limits = {
      ...TIER_LIMITS.standard,
      requestsPerSecond: 1,
      burst: 2,
      dbConnections: 1,
      dbQueueMs: 100,
    };
    const limiter = new TenantLimiter(() => limits);
    const limited = anotherApp({ logger: false, limiter });
    try {
      const get = (tenant: string) =>
        limited.inject({
          method: 'GET',
          url: '/invoices',
          headers: { authorization: `Bearer ${token(tenant)}` },
        });
      expect((await get('stark')).statusCode).toBe(200);
      expect((await get('stark')).statusCode).toBe(200);
      const asked = Date.now();
      const over = await get('stark');
      expect(over.statusCode).toBe(429);
      // The refusal waits a moment before it is sent (a flood's connections then refuse a few requests a second):
      // at least half the 250 ms average.
      expect(Date.now() - asked).toBeGreaterThanOrEqual(120);
      expect(over.headers['retry-after']).toBe('1');
      expect(over.json()).toEqual({
        error: 'too_many_requests',
        limit: 'requests per second',
        message: `tenant "stark" is over its standard tier's 1 requests per second (burst 2): retry after 1 s`,
      });
      expect((await get('wayne')).statusCode).toBe(200);

      // Its database share held (by its own slow work): its next request waits, then 503; the neighbour is served.
      const held = await limiter.dbSlot('oscorp', 'standard');
      try {
        const busy = await get('oscorp');
        expect(busy.statusCode).toBe(503);
        expect(busy.headers['retry-after']).toBe('1');
        expect(busy.json()).toMatchObject({ error: 'unavailable', limit: 'database share' });
        expect((await get('lexcorp')).statusCode).toBe(200);
      } finally {
        held();
      }
    } finally {
      await limited.close();
    }
  });
});

describe('noisy neighbours: a request gives its place back however it ends', () => {
  test('a client that hangs up after sending a whole POST does not leave its tenant throttled', async () => {
    const limits = { ...TIER_LIMITS.standard, concurrentRequests: 1, dbConnections: 1, dbQueueMs: 300 };
    const limiter = new TenantLimiter(() => limits);
    const app2 = anotherApp({ logger: false, limiter });
    await app2.listen({ port: 0, host: '127.0.0.1' });
    const port = (app2.server.address() as AddressInfo).port;
    try {
      const held = await limiter.dbSlot('stark', 'standard'); // its next unit of work waits in its queue
      const body = JSON.stringify(invoice('hang-up'));
      await new Promise<void>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.write(
            `POST /invoices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token('stark')}\r\n` +
              `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          );
          setTimeout(() => (socket.destroy(), resolve()), 100); // gone before the answer
        });
      });
      await new Promise((r) => setTimeout(r, 500)); // the queued unit gives up (503) meanwhile
      held();
      const next = await app2.inject({
        method: 'GET',
        url: '/invoices?limit=1',
        headers: { authorization: `Bearer ${token('stark')}` },
      });
      expect(next.statusCode).toBe(200);
    } finally {
      await app2.close();
    }
  });
});

describe('logs', () => {
  test("every line of a tenant's request carries the request id, the tenant and its model", async () => {
    const lines: Record<string, unknown>[] = [];
    const logged = anotherApp({
      logStream: { write: (line: string) => void lines.push(JSON.parse(line)) },
      usageIntervalMs: 50,
    });
    try {
      const r = await logged.inject({
        method: 'GET',
        url: '/invoices',
        headers: { authorization: `Bearer ${token('aperture')}`, 'x-request-id': 'log-test-1' },
      });
      expect(r.statusCode).toBe(200);
      const mine = lines.filter((l) => l.reqId === 'log-test-1');
      const completed = mine.find((l) => l.msg === 'request completed');
      expect(completed).toMatchObject({ tenantId: 'aperture', model: 'bridge', reqId: 'log-test-1' });
      // The tenant's usage line, as the cell's metric filters read it.
      await new Promise((r) => setTimeout(r, 120));
      const usage = lines.find((l) => l.msg === 'tenant usage' && l.tenantId === 'aperture');
      expect(usage).toMatchObject({ tenantId: 'aperture', requests: 1, throttled: 0, queued: 0 });
      expect(typeof usage!.latencyMsMax).toBe('number');
    } finally {
      await logged.close();
    }
  });
});
