/**
 * The tenant-aware HTTP API. One codebase for every model: per request it verifies the JWT, takes the tenant
 * from the verified claim only, looks the tenant up in the registry, and runs every query through the tenant's
 * TenantDatabase (db/), which binds the transaction to that tenant. Nothing here builds tenant SQL.
 */
import { randomUUID } from 'crypto';
import Fastify, { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HEALTH_PATH, READY_PATH } from '../../contracts';
import { createInvoice, deleteInvoice, getInvoice, listInvoices, NewInvoice } from '../../db/invoices';
import { TenantDatabase, TenantScope } from '../../db/tenant-context';
import { AuthError, Authenticate, Principal } from './auth';
import { SERVED_SCHEMA_VERSIONS } from '../../db/migrations/compatibility';
import type { TenantTier } from '../../contracts';
import { TenantLimiter, TenantLimitError } from './tenant-limits';
import { BODY_LIMIT, errorHandler, sendLimit, sendMoving } from './errors';

export { BODY_LIMIT };
import { reportTenantUsage } from './tenant-usage';
import { DatabaseHealth, DatabaseHealthOptions } from './db-health';
import { RegistryEntry, TenantRegistry } from './registry';
import { decodeCursor, encodeCursor, MAX_PAGE_SIZE, pageSize, rowsAskedFor } from './paging';
import type { StartupState } from './startup';

export interface AppDeps {
  readonly authenticate: Authenticate;
  readonly registry: TenantRegistry;
  /** The database that serves this tenant's model in this deployment, or undefined when it is served elsewhere. */
  readonly databaseFor: (entry: RegistryEntry) => TenantDatabase | undefined;
  /** A cheap query against the database: the readiness probe when no request has said anything lately. */
  readonly ready: () => Promise<void>;
  /** @default - probe every 5 s at most, stuck after 120 s (see DatabaseHealth) */
  readonly health?: Omit<DatabaseHealthOptions, 'probe'>;
  /** Told when the database refused a tenant the registry cache still had as active. */
  readonly forgetTenant?: (tenantId: string) => void;
  /**
   * Whether start-up is done (the database reached, the runtime role confirmed safe). Until it is, tenant
   * requests get 503 with Retry-After.
   * @default - ready from the start
   */
  readonly startup?: StartupState;
  /** @default true - JSON logs on stdout */
  readonly logger?: boolean;
  /** Where the JSON log lines go (tests); standard output by default. */
  readonly logStream?: { write(line: string): void };
  /** Per-tenant limits (noisy neighbours). @default - a TenantLimiter with TIER_LIMITS */
  readonly limiter?: TenantLimiter;
  /**
   * How long a 429 waits before it is sent, on average: each waits between half and one and a half times this
   * (a flood then costs little CPU, and refusals asked for together do not all fall due together). @default 250
   */
  readonly refusalDelayMs?: number;
  /** Where that spread comes from (tests): a number in [0, 1). @default Math.random */
  readonly random?: () => number;
  /** How often each active tenant's usage is logged (the cell's per-tenant metrics read it). @default 60000 */
  readonly usageIntervalMs?: number;
}

/** What a route knows of the caller: who signed in, their registry entry, and the database bound to them. */
interface RequestTenant {
  principal: Principal;
  entry: RegistryEntry;
  tier: TenantTier;
  /** The tenant's database, bound once to the verified tenant: routes never pair an id with a handle. */
  db: TenantScope;
}

declare module 'fastify' {
  interface FastifyRequest {
    tenant?: RequestTenant;
  }
}

const PUBLIC_ROUTES = new Set([HEALTH_PATH, READY_PATH]);

export const MAX_ITEMS = 100;
export const MAX_QUANTITY = 1_000_000;
export const MAX_UNIT_PRICE_CENTS = 90_000_000;

const invoiceBody = {
  type: 'object',
  additionalProperties: false,
  required: ['customer', 'items'],
  properties: {
    customer: { type: 'string', minLength: 1, maxLength: 200 },
    reference: { type: 'string', minLength: 1, maxLength: 100 },
    dueOn: { type: 'string', format: 'date' },
    items: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_ITEMS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['description', 'quantity', 'unitPriceCents'],
        properties: {
          description: { type: 'string', minLength: 1, maxLength: 500 },
          // Bounded so that the largest invoice's total (100 x 1,000,000 x 90,000,000 = 9e15 cents) is exact in a
          // JSON number (Number.MAX_SAFE_INTEGER is about 9.007e15) and in PostgreSQL's bigint.
          quantity: { type: 'integer', minimum: 1, maximum: MAX_QUANTITY },
          unitPriceCents: { type: 'integer', minimum: 0, maximum: MAX_UNIT_PRICE_CENTS },
        },
      },
    },
  },
} as const;

const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'string', maxLength: 3 },
    cursor: { type: 'string', maxLength: 200 },
  },
} as const;

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    logger:
      deps.logger === false
        ? false
        : { level: process.env.LOG_LEVEL ?? 'info', ...(deps.logStream ? { stream: deps.logStream } : {}) },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
    },
    bodyLimit: BODY_LIMIT,
    // Types are strict: "5" is not a number (no coercion); the one numeric query parameter is parsed by its route.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  const health = new DatabaseHealth({ probe: deps.ready, ...deps.health });
  const limiter = deps.limiter ?? new TenantLimiter();
  const refusalDelayMs = deps.refusalDelayMs ?? 250;
  const random = deps.random ?? Math.random;
  app.addHook('onResponse', async (request, reply) => {
    if (request.tenant) limiter.recordLatency(request.tenant.principal.tenantId, reply.elapsedTime);
  });
  reportTenantUsage(app, limiter, deps.usageIntervalMs ?? 60_000);
  // Passive readiness: every tenant request that reached its database says the database answers.
  app.addHook('onResponse', async (request, reply) => {
    if (request.tenant && reply.statusCode < 500) health.succeeded();
  });

  app.addHook('onRequest', async (request, reply) => {
    if (PUBLIC_ROUTES.has(request.routeOptions.url ?? '')) return;
    if (deps.startup && !deps.startup.ready()) {
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ error: 'unavailable', message: deps.startup.reason() });
    }
    let principal: Principal;
    try {
      principal = await deps.authenticate(request.headers.authorization);
    } catch (e) {
      if (e instanceof AuthError) {
        request.log.info({ reason: e.message }, 'unauthenticated');
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer')
          .send({ error: 'unauthorized', message: e.message });
      }
      throw e;
    }
    // From here every line of this request (the framework's "request completed" included) names the tenant.
    request.log = reply.log = request.log.child({ tenantId: principal.tenantId });
    const entry = await deps.registry.get(principal.tenantId);
    if (entry) request.log = reply.log = request.log.child({ model: entry.model });
    if (entry?.status === 'moving') {
      request.log.info({ movingTo: entry.movingTo }, 'refused: tenant is being moved');
      return sendMoving(reply, principal.tenantId, entry.movingTo ?? 'another', entry.model);
    }
    const database = entry && entry.status === 'active' ? deps.databaseFor(entry) : undefined;
    // A tenant that moved away from this cell (the copy its move kept is here): served by the cell it moved to, to
    // which its DNS name points within minutes. Any other tenant this deployment does not serve gets 403, below.
    if (
      entry?.status === 'active' &&
      database &&
      !database.serves(entry) &&
      entry.keptCopy !== undefined &&
      entry.keptCopy === database.model
    ) {
      request.log.warn({ servedBy: entry.model }, 'refused: tenant moved to another cell');
      return reply
        .code(503)
        .header('retry-after', '60')
        .send({
          error: 'unavailable',
          message: `tenant "${principal.tenantId}" moved to the ${entry.model} cell: use that cell's address (a tenant's DNS name points there within minutes)`,
        });
    }
    if (!entry || !database?.serves(entry)) {
      const why = !entry
        ? 'is not registered'
        : entry.status !== 'active'
          ? `is ${entry.status}`
          : 'is not served by this deployment';
      request.log.warn({ status: entry?.status }, `refused: tenant ${why}`);
      return reply.code(403).send({ error: 'forbidden', message: `tenant "${principal.tenantId}" ${why}` });
    }
    // A tenant whose schema the release's migrations have not reached yet: say so, rather than fail mid-query.
    if (entry.schemaVersion !== undefined && entry.schemaVersion < SERVED_SCHEMA_VERSIONS.oldest) {
      request.log.warn({ schemaVersion: entry.schemaVersion }, 'schema older than this release serves');
      return reply
        .code(503)
        .header('retry-after', '30')
        .send({
          error: 'unavailable',
          message: `tenant "${principal.tenantId}" has data at schema version ${entry.schemaVersion}; this release of the API serves version ${SERVED_SCHEMA_VERSIONS.oldest} and later. Its migration has not run yet (npm run migrate): try again after it`,
        });
    }
    // Noisy neighbours: the tenant's own limits (tier), before any work (service/src/tenant-limits.ts).
    const tier = entry.tier ?? 'standard';
    const limits = limiter.limits(tier);
    const db = limiter.meter(
      database.forTenant(principal.tenantId, { statementTimeoutMs: limits.statementTimeoutMs }),
      tier,
    );
    let release: () => void;
    try {
      release = limiter.admit(principal.tenantId, tier, rowsAskedFor(request));
    } catch (e) {
      if (e instanceof TenantLimitError) {
        // Over its rate or concurrency: the answer waits a moment (holding nothing but the socket), so a flooding
        // client's connections each refuse a few requests a second instead of thousands, which would otherwise
        // cost the task the CPU its neighbours need. The wait is spread: with one fixed wait, refusals asked for
        // together fall due together, and their connections ask again together, so a flood's requests would keep
        // reaching the event loop in batches that a neighbour's request queues behind. (Not measured apart from
        // the database share: npm run bench:noisy cannot tell the two changes' effects apart.)
        await new Promise((r) => setTimeout(r, refusalDelayMs * (0.5 + random())));
        return sendLimit(reply, e);
      }
      throw e;
    }
    // The place ends when the response is done or the connection goes, whichever comes first: 'close' fires in
    // every case (a client that hangs up after sending a whole body gets neither onResponse nor onRequestAbort).
    reply.raw.once('close', release);
    request.tenant = { principal, entry, tier, db };
  });

  app.setErrorHandler(errorHandler({ health, forgetTenant: deps.forgetTenant, registry: deps.registry }));

  // Unknown routes answer in the API's shape too (the framework's own would be { statusCode, error, message }).
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: 'not_found',
      message: `no route ${request.method} ${request.url.split('?')[0]}: see the README's API section`,
    }),
  );

  // Liveness: the process answers, and it is not stuck (its database unreachable for minutes while tried).
  app.get(HEALTH_PATH, async (_request, reply) => {
    if (deps.startup && !deps.startup.ready()) return { status: 'starting' };
    await health.ready();
    return health.stuck() ? reply.code(503).send({ status: 'stuck' }) : { status: 'ok' };
  });
  // Readiness: started, and the database answers. Passive (at most one probe per 5 s however often it is
  // asked) and without error text: the reason is in the log.
  app.get(READY_PATH, async (_request, reply) => {
    const ready = (!deps.startup || deps.startup.ready()) && (await health.ready());
    return ready ? { status: 'ready' } : reply.code(503).send({ status: 'unavailable' });
  });

  const scope = (request: FastifyRequest): RequestTenant => request.tenant!;

  app.get('/me', async (request) => {
    const t = scope(request);
    return {
      tenantId: t.principal.tenantId,
      model: t.entry.model,
      name: t.entry.name ?? null,
      tier: t.tier,
      limits: limiter.limits(t.tier),
    };
  });

  app.post('/invoices', { schema: { body: invoiceBody } }, async (request, reply) => {
    const t = scope(request);
    const invoice = await createInvoice(t.db, request.body as NewInvoice);
    // The invoice was charged one row when it was admitted; its items are rows too.
    limiter.spend(t.principal.tenantId, t.tier, invoice.items?.length ?? 0);
    return reply.code(201).header('location', `/invoices/${invoice.id}`).send(invoice);
  });

  app.get(
    '/invoices',
    { schema: { querystring: listQuery }, config: { rows: pageSize } },
    async (request, reply) => {
      const t = scope(request);
      const q = request.query as { limit?: string; cursor?: string };
      const limit = pageSize(request);
      if (!(limit >= 1 && limit <= MAX_PAGE_SIZE)) {
        return badRequest(
          reply,
          `querystring/limit must be a whole number from 1 to ${MAX_PAGE_SIZE} (got "${q.limit}")`,
        );
      }
      const after = q.cursor ? decodeCursor(q.cursor) : undefined;
      if (q.cursor && !after)
        return badRequest(reply, 'querystring/cursor is not a cursor this API returned');
      const page = await listInvoices(t.db, { limit, after });
      return { invoices: page.invoices, nextCursor: page.next ? encodeCursor(page.next) : null };
    },
  );

  app.get('/invoices/:id', async (request, reply) => {
    const t = scope(request);
    const invoice = await getInvoice(t.db, (request.params as { id: string }).id);
    if (invoice) limiter.spend(t.principal.tenantId, t.tier, invoice.items?.length ?? 0);
    // Another tenant's invoice and a missing one answer exactly alike.
    return invoice ?? notFound(reply);
  });

  app.delete('/invoices/:id', async (request, reply) => {
    const t = scope(request);
    const deleted = await deleteInvoice(t.db, (request.params as { id: string }).id);
    return deleted ? reply.code(204).send() : notFound(reply);
  });

  return app;
}

function notFound(reply: FastifyReply) {
  return reply.code(404).send({ error: 'not_found', message: 'no such invoice' });
}

function badRequest(reply: FastifyReply, message: string) {
  return reply.code(400).send({ error: 'bad_request', message });
}
