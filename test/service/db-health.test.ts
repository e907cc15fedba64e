import { DatabaseHealth } from '../../service/src/db-health';
import { CachedRegistry, RegistryEntry, RegistryUnavailable } from '../../service/src/registry';

// Readiness and liveness from what requests see, and the registry cache's rules, on a clock the test moves.
describe('DatabaseHealth', () => {
  let now = 0;
  let probes = 0;
  let probeFails = false;
  const health = (probeWhenIdle?: boolean) =>
    new DatabaseHealth({
      probe: async () => {
        probes++;
        if (probeFails) throw new Error('down');
      },
      now: () => now,
      ...(probeWhenIdle === undefined ? {} : { probeWhenIdle }),
    });
  beforeEach(() => {
    now = 1_000_000;
    probes = 0;
    probeFails = false;
  });

  test('readiness probes the database at most once per 5 s however often it is asked, and never while requests report', async () => {
    const h = health();
    now += 6000;
    await Promise.all([h.ready(), h.ready(), h.ready()]);
    expect(probes).toBe(1);
    now += 1000;
    expect(await h.ready()).toBe(true);
    expect(probes).toBe(1);
    h.succeeded();
    now += 4000;
    expect(await h.ready()).toBe(true);
    expect(probes).toBe(1);
  });

  test('for a database that pauses when idle, no health check ever queries it: readiness comes from requests alone', async () => {
    const h = health(false);
    for (let i = 0; i < 100; i++) {
      now += 30000; // the container health check, every 30 s, for 50 minutes
      expect(await h.ready()).toBe(true);
    }
    expect(probes).toBe(0);
    h.failed();
    expect(await h.ready()).toBe(false);
    now += 130000;
    expect(h.stuck()).toBe(true); // requests still tell it when the database stays out of reach
    h.succeeded();
    expect(await h.ready()).toBe(true);
    expect(probes).toBe(0);
  });

  test('a failure makes it unready at once; a success ready again', async () => {
    const h = health();
    h.failed();
    expect(await h.ready()).toBe(false);
    h.succeeded();
    expect(await h.ready()).toBe(true);
  });

  test('stuck only after 2 minutes without reaching the database while it was tried', async () => {
    const h = health();
    h.succeeded();
    now += 10000;
    h.failed();
    now += 60000;
    expect(h.stuck()).toBe(false); // a failover's worth: nobody is replaced
    probeFails = true;
    now += 60000;
    await h.ready();
    expect(h.stuck()).toBe(true);
    probeFails = false;
    now += 6000;
    await h.ready();
    expect(h.stuck()).toBe(false);
  });
});

describe('CachedRegistry', () => {
  const active: RegistryEntry = { tenantId: 'acme', model: 'pool', status: 'active' };
  let now = 0;
  let reads = 0;
  let answer: () => Promise<RegistryEntry | undefined>;
  const registry = () =>
    new CachedRegistry(
      {
        get: () => {
          reads++;
          return answer();
        },
      },
      { now: () => now, timeoutMs: 50 },
    );
  beforeEach(() => {
    now = 0;
    reads = 0;
    answer = async () => active;
  });

  test('an active tenant is read again after 10 s, a missing or inactive one after 1 s', async () => {
    const r = registry();
    await r.get('acme');
    now += 9000;
    await r.get('acme');
    expect(reads).toBe(1);
    now += 1500;
    await r.get('acme');
    expect(reads).toBe(2);
    answer = async () => undefined;
    await r.get('newco');
    now += 900;
    await r.get('newco');
    expect(reads).toBe(3);
    answer = async () => ({ ...active, tenantId: 'newco' });
    now += 200;
    expect(await r.get('newco')).toMatchObject({ status: 'active' }); // served within 1 s of becoming active
  });

  test('concurrent lookups share one read', async () => {
    const r = registry();
    await Promise.all([r.get('acme'), r.get('acme'), r.get('acme')]);
    expect(reads).toBe(1);
  });

  test('when the registry fails or hangs, a tenant last seen active is served from its entry; anything else is unavailable', async () => {
    const r = registry();
    await r.get('acme');
    answer = () => new Promise(() => undefined); // hangs
    now += 11000;
    const t0 = Date.now();
    expect(await r.get('acme')).toEqual(active);
    expect(Date.now() - t0).toBeLessThan(1000);
    answer = async () => {
      throw new Error('DynamoDB unavailable');
    };
    await expect(r.get('never-seen')).rejects.toThrow(RegistryUnavailable);
    now += 301000; // past 5 minutes of serving it stale
    await expect(r.get('acme')).rejects.toThrow(RegistryUnavailable);
  });
});
