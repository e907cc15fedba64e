import { TenantContextError } from '../../db/tenant-context';
import { buildApp } from '../../service/src/app';
import { waitForDatabase } from '../../service/src/startup';

describe('API start-up while the database is not reachable yet', () => {
  test('keeps retrying with backoff instead of exiting, and is ready once the database answers', async () => {
    let calls = 0;
    const logs: string[] = [];
    const { state, done } = waitForDatabase({
      check: async () => {
        if (++calls < 3) throw new Error('connect ECONNREFUSED');
      },
      log: (level, msg) => logs.push(`${level}: ${msg}`),
      fatal: () => {
        throw new Error('must not be fatal');
      },
      firstDelayMs: 5,
      maxDelayMs: 20,
    });
    expect(state.ready()).toBe(false);
    await done;
    expect(state.ready()).toBe(true);
    expect(calls).toBe(3);
    expect(logs.filter((l) => l.startsWith('warn'))).toHaveLength(2);
  });

  test('a runtime role that is unsafe to serve as is fatal, never retried', async () => {
    const fatal = jest.fn();
    const { state, done } = waitForDatabase({
      check: async () => {
        throw new TenantContextError(
          'refusing to serve tenants as database role "postgres": it is a superuser',
        );
      },
      log: () => undefined,
      fatal,
      firstDelayMs: 5,
    });
    await done;
    expect(fatal).toHaveBeenCalledTimes(1);
    expect(state.ready()).toBe(false);
  });

  test('until it is ready, tenant requests get 503 with Retry-After; liveness answers', async () => {
    let ready = false;
    const app = buildApp({
      authenticate: async () => ({ tenantId: 'acme', subject: 's' }),
      registry: { get: async () => undefined },
      databaseFor: () => undefined,
      ready: async () => undefined,
      startup: { ready: () => ready, reason: () => 'the API is starting: its database is not reachable yet' },
      logger: false,
    });
    const before = await app.inject({
      method: 'GET',
      url: '/invoices',
      headers: { authorization: 'Bearer a.b.c' },
    });
    expect(before.statusCode).toBe(503);
    expect(before.headers['retry-after']).toBe('5');
    expect(before.json()).toEqual({
      error: 'unavailable',
      message: 'the API is starting: its database is not reachable yet',
    });
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    ready = true;
    // Now the request goes through to the registry, which does not know the tenant.
    expect(
      (await app.inject({ method: 'GET', url: '/invoices', headers: { authorization: 'Bearer a.b.c' } }))
        .statusCode,
    ).toBe(403);
    await app.close();
  });
});
