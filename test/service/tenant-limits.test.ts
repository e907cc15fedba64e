import {
  TenantLimiter,
  TenantLimitError,
  TIER_LIMITS,
  type TenantLimits,
} from '../../service/src/tenant-limits';
import type { TenantScope } from '../../db/tenant-context';
import { sql } from '../../db/sql';

// The limiter on its own, with a clock the test moves.
const small: TenantLimits = {
  requestsPerSecond: 2,
  burst: 4,
  rowsPerSecond: 100,
  rowsBurst: 250,
  concurrentRequests: 3,
  dbConnections: 2,
  dbQueueMs: 50,
  statementTimeoutMs: 1000,
};

function limiter() {
  let now = 1_000_000;
  const l = new TenantLimiter(
    () => small,
    () => now,
  );
  return { l, tick: (ms: number) => (now += ms) };
}

const limitOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof TenantLimitError)
      return { status: e.status, limit: e.limit, retryAfter: e.retryAfterSeconds };
    throw e;
  }
  return undefined;
};

test('the request rate: a burst, then the rate; 429 says when to retry; each tenant has its own bucket', () => {
  const { l, tick } = limiter();
  for (let i = 0; i < 4; i++) l.admit('loud', 'standard')(); // the burst
  expect(limitOf(() => l.admit('loud', 'standard'))).toEqual({
    status: 429,
    limit: 'requests per second',
    retryAfter: 1,
  });
  expect(limitOf(() => l.admit('quiet', 'standard'))).toBeUndefined(); // another tenant is not affected
  tick(500); // one more token at 2 per second
  expect(limitOf(() => l.admit('loud', 'standard')?.())).toBeUndefined();
  expect(limitOf(() => l.admit('loud', 'standard'))).toMatchObject({ status: 429 });
});

test('rows per second: pages cost their size, single reads one; 429 names the limit and when to retry', () => {
  const { l, tick } = limiter();
  l.admit('pager', 'standard', 100)();
  l.admit('pager', 'standard', 100)();
  // 50 rows left of the burst: a third page of 100 is refused, though the request rate allows it.
  expect(limitOf(() => l.admit('pager', 'standard', 100))).toEqual({
    status: 429,
    limit: 'rows per second',
    retryAfter: 1,
  });
  expect(limitOf(() => l.admit('pager', 'standard', 1)?.())).toBeUndefined(); // one row still fits
  expect(limitOf(() => l.admit('reader', 'standard', 100)?.())).toBeUndefined(); // another tenant's own bucket
  tick(600); // 60 more rows at 100 per second: 109 left
  expect(limitOf(() => l.admit('pager', 'standard', 100)?.())).toBeUndefined();
  // A request asking for more than a whole burst is charged the burst, so it can ever pass.
  tick(3000);
  expect(limitOf(() => l.admit('pager', 'standard', 10_000)?.())).toBeUndefined();
  expect(limitOf(() => l.admit('pager', 'standard', 1))).toMatchObject({ limit: 'rows per second' });
});

test('spend: what a request read beyond its admission comes out of the rows budget after the fact', () => {
  const { l, tick } = limiter();
  l.admit('reader', 'standard', 1)();
  l.spend('reader', 'standard', 300); // an invoice with 300 items: the budget (250) goes below zero
  expect(limitOf(() => l.admit('reader', 'standard', 1))).toEqual({
    status: 429,
    limit: 'rows per second',
    retryAfter: 1,
  });
  tick(300); // 30 more rows at 100 per second: still below zero (-21)
  expect(limitOf(() => l.admit('reader', 'standard', 1))).toMatchObject({ limit: 'rows per second' });
  tick(1000);
  expect(limitOf(() => l.admit('reader', 'standard', 1)?.())).toBeUndefined();
  // A count that is not a number never disables the limit: it is charged a whole burst.
  tick(5000);
  expect(limitOf(() => l.admit('odd', 'standard', Number.NaN)?.())).toBeUndefined();
  expect(limitOf(() => l.admit('odd', 'standard', 1))).toMatchObject({ limit: 'rows per second' });
});

test('the standard and premium tiers: a page of 100 fits their row budgets many times over a single read', () => {
  for (const limits of Object.values(TIER_LIMITS)) {
    expect(limits.rowsPerSecond).toBeGreaterThanOrEqual(20 * limits.requestsPerSecond);
    expect(limits.rowsBurst).toBeGreaterThanOrEqual(limits.rowsPerSecond);
  }
});

test('requests in flight: the fourth concurrent request of a tenant is refused until one ends', () => {
  const { l, tick } = limiter();
  const releases = [0, 1, 2].map(() => l.admit('busy', 'standard'));
  expect(limitOf(() => l.admit('busy', 'standard'))).toEqual({
    status: 429,
    limit: 'concurrent requests',
    retryAfter: 1,
  });
  releases[0]();
  releases[0](); // releasing twice frees one place only
  expect(limitOf(() => l.admit('busy', 'standard'))).toBeUndefined();
  tick(10_000); // tokens enough: only the concurrency limit is in the way
  expect(limitOf(() => l.admit('busy', 'standard'))).toMatchObject({ limit: 'concurrent requests' });
});

test('the database share: a tenant waits in its own queue, first come first served, then 503; others never wait', async () => {
  const { l } = limiter();
  const a = await l.dbSlot('loud', 'standard');
  const b = await l.dbSlot('loud', 'standard');
  const order: string[] = [];
  const third = l.dbSlot('loud', 'standard').then((r) => (order.push('third'), r));
  const fourth = l.dbSlot('loud', 'standard').then((r) => (order.push('fourth'), r));
  // Another tenant gets its connections at once while loud queues.
  const other = await l.dbSlot('quiet', 'standard');
  a();
  (await third)();
  b();
  (await fourth)();
  expect(order).toEqual(['third', 'fourth']);
  other();
  // A queue that does not move: 503 after dbQueueMs.
  const held = [await l.dbSlot('loud', 'standard'), await l.dbSlot('loud', 'standard')];
  await expect(l.dbSlot('loud', 'standard')).rejects.toMatchObject({ status: 503, limit: 'database share' });
  held.forEach((r) => r());
  await expect(l.dbSlot('loud', 'standard')).resolves.toBeInstanceOf(Function);
});

test('meter(): every unit of work of the scope holds one of its tenant connections, released on failure too', async () => {
  const { l } = limiter();
  let running = 0;
  let peak = 0;
  const scope: TenantScope = {
    tenantId: 'loud',
    model: 'pool',
    run: async () => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      throw new Error('the statement failed');
    },
    transaction: async () => undefined as never,
    snapshot: async () => undefined as never,
  };
  const metered = l.meter(scope, 'standard');
  const results = await Promise.allSettled(Array.from({ length: 6 }, () => metered.run(sql`SELECT 1`)));
  expect(peak).toBe(2);
  expect(results.every((r) => r.status === 'rejected')).toBe(true);
  // Nothing held after the failures.
  await expect(
    Promise.all([l.dbSlot('loud', 'standard'), l.dbSlot('loud', 'standard')]),
  ).resolves.toHaveLength(2);
});

test('state is bounded: a tenant idle for a minute is forgotten', () => {
  const { l, tick } = limiter();
  for (let i = 0; i < 100; i++) l.admit(`t-${i}`, 'standard')();
  expect(l.tracked).toBe(100);
  tick(61_000);
  l.admit('new', 'standard')();
  expect(l.tracked).toBe(1);
});

test('each tier leaves room for others in a task of 20 connections', () => {
  for (const limits of Object.values(TIER_LIMITS)) expect(limits.dbConnections).toBeLessThanOrEqual(20 / 2);
});

test("no tier's database share exceeds the cap the task sets (half of the pool or partition it draws from)", () => {
  const l = new TenantLimiter(undefined, undefined, 1);
  expect(l.limits('standard').dbConnections).toBe(1);
  expect(l.limits('premium').dbConnections).toBe(1);
  expect(TIER_LIMITS.premium.dbConnections).toBeGreaterThan(1);
  expect(new TenantLimiter().limits('premium').dbConnections).toBe(TIER_LIMITS.premium.dbConnections);
});
