/**
 * Noisy neighbours: per-tenant limits in the API, so one tenant's flood cannot take a shared cell's request
 * capacity or its database connections from the others.
 *
 * - Requests per second with a burst (a token bucket): over it, 429 with Retry-After (when the next token comes).
 * - Rows per second with a burst (a second bucket, charged with the rows a request may read: a page of 100
 *   invoices costs 100, one invoice 1): over it, 429 with Retry-After. A request rate alone treats a page of 100
 *   rows like one row, and such pages are what costs a cell's database and API the CPU its neighbours need.
 * - Requests in flight: over it, 429 with Retry-After 1.
 * - A share of the database pool: a tenant holds at most `dbConnections` of the task's connections at once; more
 *   units of work wait in the tenant's own queue (first come, first served) for at most `dbQueueMs`, then 503 with
 *   Retry-After. Other tenants' units never wait behind that queue.
 * - Each unit of work's statement timeout is the tier's (enforced by PostgreSQL: db/tenant-context.ts).
 *
 * Limits come from the tenant's tier (the catalog's `settings.tier`, kept in the registry); state is per task
 * and bounded (a tenant idle for a minute is forgotten).
 */
import type { TenantTier } from '../../contracts';
import type { TenantScope } from '../../db/tenant-context';

export interface TenantLimits {
  readonly requestsPerSecond: number;
  readonly burst: number;
  /** Rows a tenant's requests may ask for per second (list pages count their page size). */
  readonly rowsPerSecond: number;
  readonly rowsBurst: number;
  readonly concurrentRequests: number;
  /** Connections of this task's pool one tenant may hold at once. */
  readonly dbConnections: number;
  /** How long a unit of work waits in its tenant's queue for one of them. */
  readonly dbQueueMs: number;
  readonly statementTimeoutMs: number;
}

/**
 * Per task. The share counts units of work running at once (from the wait for a pooled connection to the end), and
 * PostgreSQL gives each running statement the same CPU: a cell's database has 2 vCPUs at its default sizes, so a
 * standard tenant runs one unit at a time per task and a premium tenant two (it was 4 and 8: npm run bench:noisy,
 * README). A cell of N tasks lets a tenant run N. The cost: one slow unit makes the tenant's other requests on that
 * task wait (503 after 2 s). Never more than half of the pool or partition it draws from (`dbConnectionsCap`: a
 * bridge cell's partitions have 4, so 2 there). Tenants flooding together can still fill a pool between them; each
 * then waits in its own queue, and the rest get the connections freed.
 */
export const TIER_LIMITS: Readonly<Record<TenantTier, TenantLimits>> = {
  standard: {
    requestsPerSecond: 100,
    burst: 200,
    rowsPerSecond: 2000,
    rowsBurst: 5000,
    concurrentRequests: 16,
    dbConnections: 1,
    dbQueueMs: 2000,
    statementTimeoutMs: 5000,
  },
  premium: {
    requestsPerSecond: 400,
    burst: 800,
    rowsPerSecond: 8000,
    rowsBurst: 20000,
    concurrentRequests: 48,
    dbConnections: 2,
    dbQueueMs: 2000,
    statementTimeoutMs: 5000,
  },
};

/** No limits (the local platform's LOCAL_TENANT_LIMITS=off, for benchmarks; tests that drive faults, not floods). */
export const UNMETERED: TenantLimits = {
  requestsPerSecond: 1e9,
  burst: 1e9,
  rowsPerSecond: 1e9,
  rowsBurst: 1e9,
  concurrentRequests: 1e9,
  dbConnections: 1e9,
  dbQueueMs: 60_000,
  statementTimeoutMs: 5000,
};

/** A limit was hit: the API answers `status` with Retry-After and says which limit. */
export class TenantLimitError extends Error {
  constructor(
    readonly status: 429 | 503,
    readonly limit: 'requests per second' | 'rows per second' | 'concurrent requests' | 'database share',
    readonly retryAfterSeconds: number,
    message: string,
  ) {
    super(message);
    this.name = 'TenantLimitError';
  }
}

interface State {
  tokens: number;
  rowTokens: number;
  refilled: number;
  inFlight: number;
  dbInUse: number;
  readonly waiting: { grant: () => void; timer: NodeJS.Timeout }[];
  seen: number;
}

export interface LimiterCounters {
  requests: number;
  throttled: number;
  queued: number;
  latencyMsMax: number;
  latencyMsSum: number;
  completed: number;
}

export class TenantLimiter {
  private readonly states = new Map<string, State>();
  /** Per tenant since the last `drainCounters()`: for metrics. */
  private counters = new Map<string, LimiterCounters>();

  /**
   * @param dbConnectionsCap - the most connections one tenant may hold whatever its tier: half of the pool (or
   *   partition) its units of work draw from, so one tenant never fills what its neighbours share with it.
   */
  constructor(
    private readonly limitsOf: (tier: TenantTier) => TenantLimits = (tier) => TIER_LIMITS[tier],
    private readonly now: () => number = Date.now,
    private readonly dbConnectionsCap = Number.POSITIVE_INFINITY,
  ) {}

  limits(tier: TenantTier): TenantLimits {
    const l = this.limitsOf(tier);
    return l.dbConnections > this.dbConnectionsCap ? { ...l, dbConnections: this.dbConnectionsCap } : l;
  }

  private state(tenantId: string, limits: TenantLimits): State {
    let s = this.states.get(tenantId);
    if (!s) {
      this.forgetIdle();
      s = {
        tokens: limits.burst,
        rowTokens: limits.rowsBurst,
        refilled: this.now(),
        inFlight: 0,
        dbInUse: 0,
        waiting: [],
        seen: this.now(),
      };
      this.states.set(tenantId, s);
    }
    s.seen = this.now();
    return s;
  }

  private count(tenantId: string): LimiterCounters {
    let c = this.counters.get(tenantId);
    if (!c) {
      c = { requests: 0, throttled: 0, queued: 0, latencyMsMax: 0, latencyMsSum: 0, completed: 0 };
      this.counters.set(tenantId, c);
    }
    return c;
  }

  /**
   * Admits one request of the tenant that may read `rows` rows, or throws TenantLimitError (429). Call the result
   * when it ends.
   */
  admit(tenantId: string, tier: TenantTier, rows = 1): () => void {
    const limits = this.limits(tier);
    const s = this.state(tenantId, limits);
    const counters = this.count(tenantId);
    counters.requests++;
    const t = this.now();
    const elapsed = (t - s.refilled) / 1000;
    s.tokens = Math.min(limits.burst, s.tokens + elapsed * limits.requestsPerSecond);
    s.rowTokens = Math.min(limits.rowsBurst, s.rowTokens + elapsed * limits.rowsPerSecond);
    s.refilled = t;
    // A request may never ask for more than a whole burst: it is charged at most that much.
    // A count that is not a number is charged a whole burst, never nothing.
    const cost = Number.isFinite(rows) ? Math.min(Math.max(1, rows), limits.rowsBurst) : limits.rowsBurst;
    if (s.tokens < 1) {
      counters.throttled++;
      const wait = Math.max(1, Math.ceil((1 - s.tokens) / limits.requestsPerSecond));
      throw new TenantLimitError(
        429,
        'requests per second',
        wait,
        `tenant "${tenantId}" is over its ${tier} tier's ${limits.requestsPerSecond} requests per second (burst ${limits.burst}): retry after ${wait} s`,
      );
    }
    if (s.rowTokens < cost) {
      counters.throttled++;
      const wait = Math.max(1, Math.ceil((cost - s.rowTokens) / limits.rowsPerSecond));
      throw new TenantLimitError(
        429,
        'rows per second',
        wait,
        `tenant "${tenantId}" is over its ${tier} tier's ${limits.rowsPerSecond} rows per second (burst ${limits.rowsBurst}; this request asks for up to ${cost}): retry after ${wait} s, or ask for smaller pages`,
      );
    }
    if (s.inFlight >= limits.concurrentRequests) {
      counters.throttled++;
      throw new TenantLimitError(
        429,
        'concurrent requests',
        1,
        `tenant "${tenantId}" already has ${s.inFlight} requests in flight, its ${tier} tier's limit: retry after 1 s`,
      );
    }
    s.tokens -= 1;
    s.rowTokens -= cost;
    s.inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      s.inFlight--;
      s.seen = this.now();
    };
  }

  /**
   * Rows a request read or wrote beyond what `admit` charged (an invoice's items, known once it is read or
   * written): taken from the tenant's rows budget after the fact, which may go below zero, so its next requests
   * wait until the budget has refilled.
   */
  spend(tenantId: string, tier: TenantTier, rows: number): void {
    if (!(rows > 0)) return;
    const s = this.state(tenantId, this.limits(tier));
    s.rowTokens -= Number.isFinite(rows) ? rows : this.limits(tier).rowsBurst;
  }

  /** One of the tenant's database connections: at once, or after waiting in its queue, or TenantLimitError (503). */
  async dbSlot(tenantId: string, tier: TenantTier): Promise<() => void> {
    const limits = this.limits(tier);
    const s = this.state(tenantId, limits);
    const release = () => {
      const next = s.waiting.shift();
      if (next) {
        clearTimeout(next.timer);
        next.grant(); // the slot passes straight to the next unit of the same tenant
      } else {
        s.dbInUse--;
        s.seen = this.now();
      }
    };
    if (s.dbInUse < limits.dbConnections) {
      s.dbInUse++;
      return once(release);
    }
    this.count(tenantId).queued++;
    return new Promise((resolve, reject) => {
      const entry = {
        grant: () => resolve(once(release)),
        timer: setTimeout(() => {
          const i = s.waiting.indexOf(entry);
          if (i >= 0) s.waiting.splice(i, 1);
          this.count(tenantId).throttled++;
          reject(
            new TenantLimitError(
              503,
              'database share',
              1,
              `tenant "${tenantId}" is using its ${tier} tier's share of the database (${limits.dbConnections} ${limits.dbConnections === 1 ? 'connection' : 'connections'}) and its next unit of work waited ${limits.dbQueueMs} ms: retry after 1 s`,
            ),
          );
        }, limits.dbQueueMs),
      };
      s.waiting.push(entry);
    });
  }

  /** The tenant's scope with every unit of work metered by its database share. */
  meter(scope: TenantScope, tier: TenantTier): TenantScope {
    // Each unit of work holds one of the tenant's connections for as long as it runs, released on every path.
    const metered = async <T>(unit: () => Promise<T>): Promise<T> => {
      const release = await this.dbSlot(scope.tenantId, tier);
      try {
        return await unit();
      } finally {
        release();
      }
    };
    return {
      tenantId: scope.tenantId,
      model: scope.model,
      run: (statement) => metered(() => scope.run(statement)),
      transaction: (work) => metered(() => scope.transaction(work)),
      snapshot: (work) => metered(() => scope.snapshot(work)),
    };
  }

  /** A request of the tenant took `ms` (for its usage metrics). */
  recordLatency(tenantId: string, ms: number): void {
    const c = this.count(tenantId);
    c.completed++;
    c.latencyMsSum += ms;
    c.latencyMsMax = Math.max(c.latencyMsMax, ms);
  }

  /** The counters since the last call, per tenant (and forgets them). */
  drainCounters(): Map<string, LimiterCounters> {
    const c = this.counters;
    this.counters = new Map();
    return c;
  }

  /** Tenants with state now (tests, and the bound on memory). */
  get tracked(): number {
    return this.states.size;
  }

  private forgetIdle(): void {
    const cutoff = this.now() - 60_000;
    for (const [id, s] of this.states) {
      if (s.seen < cutoff && s.inFlight === 0 && s.dbInUse === 0 && s.waiting.length === 0)
        this.states.delete(id);
    }
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}
