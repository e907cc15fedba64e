/**
 * How the API answers errors: always `{ "error", "message" }` (and `"limit"` for a tenant limit), the database's
 * and the registry's faults as 503 with Retry-After, never a guess; raw errors go to the log only.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isUnavailable } from '../../db/faults';
import type { DatabaseHealth } from './db-health';
import { RegistryUnavailable, type TenantRegistry } from './registry';
import { TenantLimitError } from './tenant-limits';

/** The largest request body the API accepts; the WAF leaves body size to it (lib/constructs/api-service.ts). */
export const BODY_LIMIT = 256 * 1024;

/** 429 (over a rate or concurrency limit) or 503 (its database share stayed busy), with Retry-After. */
export function sendLimit(reply: FastifyReply, e: TenantLimitError) {
  return reply
    .code(e.status)
    .header('retry-after', String(e.retryAfterSeconds))
    .send({
      error: e.status === 429 ? 'too_many_requests' : 'unavailable',
      message: e.message,
      limit: e.limit,
    });
}

/** A tenant whose data is being moved to another model: 503 with Retry-After, for that tenant only. */
export function sendMoving(reply: FastifyReply, tenantId: string, to: string, from?: string) {
  return reply
    .code(503)
    .header('retry-after', String(MOVE_RETRY_AFTER_SECONDS))
    .send({
      error: 'unavailable',
      message:
        to === from
          ? `tenant "${tenantId}" is being restored from an archive: its data is read-only meanwhile; try again in a few seconds`
          : `tenant "${tenantId}" is being moved to the ${to} model: its data is read-only in transit; try again in a few seconds`,
    });
}

/** What a moving tenant's 503 asks clients to wait. */
export const MOVE_RETRY_AFTER_SECONDS = 2;

/** The `error` of each client error the framework raises (the API's own errors name theirs). */
const CLIENT_ERRORS: Record<number, string> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

type ApiError = Error & { code?: string; validation?: unknown; statusCode?: number };

/**
 * What a tenant's place that no longer exists answers with: its table, schema, role or database gone (undefined
 * table, invalid schema name, undefined object, invalid catalog name).
 */
const PLACE_GONE = new Set(['42P01', '3F000', '42704', '3D000']);

export function errorHandler(deps: {
  readonly health: DatabaseHealth;
  /** Told when the database refused a tenant the registry cache still had as active. */
  readonly forgetTenant?: (tenantId: string) => void;
  /** Read again when the database refused a tenant: a tenant being moved (or just moved) gets 503, not 403. */
  readonly registry?: TenantRegistry;
}): (error: ApiError, request: FastifyRequest, reply: FastifyReply) => unknown {
  const { health } = deps;
  return async (error, request, reply) => {
    if (error instanceof TenantLimitError) {
      request.log.warn({ limit: error.limit }, 'tenant limit');
      return sendLimit(reply, error);
    }
    if (error.validation) {
      return reply.code(400).send({ error: 'bad_request', message: validationMessage(error) });
    }
    if (error.statusCode === 413) {
      return reply.code(413).send({
        error: 'payload_too_large',
        message: `the request body is larger than this API accepts (${BODY_LIMIT / 1024} KB)`,
      });
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply
        .code(error.statusCode)
        .send({ error: CLIENT_ERRORS[error.statusCode] ?? 'bad_request', message: error.message });
    }
    if (error.code === '23505') {
      return reply
        .code(409)
        .send({ error: 'conflict', message: 'an invoice with this reference already exists' });
    }
    if (error.code === '57014') {
      request.log.warn({ err: error }, 'statement timeout');
      return reply.code(503).send({ error: 'timeout', message: 'the request took too long; try again' });
    }
    // The database or the registry cannot answer now (failover, restart, hang, outage): 503 with Retry-After,
    // never a guess. The raw error goes to the log only.
    if (isUnavailable(error) || error instanceof RegistryUnavailable) {
      if (!(error instanceof RegistryUnavailable)) health.failed();
      request.log.warn({ err: error }, 'unavailable');
      return sendUnavailable(reply, error instanceof RegistryUnavailable ? 'registry' : 'database');
    }
    // The database refused the tenant (offboarded meanwhile: its pool registration or bridge role is gone), or
    // no longer holds its place (a silo whose data was destroyed, or that the tenant moved out of), though the
    // registry cache still had it active.
    const refused = error.code === '42501';
    if ((refused || PLACE_GONE.has(error.code ?? '')) && request.tenant) {
      const { tenantId } = request.tenant.principal;
      deps.forgetTenant?.(tenantId);
      // Frozen for a move (M1), or moved since the cache read it: the tenant is not gone, its data is in transit.
      const read = await (deps.registry?.get(tenantId) ?? Promise.resolve(undefined)).then(
        (entry) => ({ entry }),
        (failure: unknown) => ({ failure }),
      );
      if ('failure' in read) {
        // The registry cannot say now whether the tenant left or moved: never a guess (403) on that.
        request.log.warn(
          { err: error, registry: String(read.failure) },
          'refused by the database; registry unread',
        );
        return sendUnavailable(reply, 'registry');
      }
      const now = read.entry;
      const cached = request.tenant.entry;
      if (now?.status === 'moving' || (now?.status === 'active' && now.model !== cached.model)) {
        request.log.warn({ err: error }, 'refused by the database');
        return sendMoving(
          reply,
          tenantId,
          now.movingTo ?? now.model,
          now.status === 'moving' ? now.model : undefined,
        );
      }
      // A missing table of a tenant the registry still serves where the cache said is a fault, not a leaver.
      if (!refused && now?.status === 'active') return sendInternal(request, reply, error);
      request.log.warn({ err: error }, 'refused by the database');
      return reply.code(403).send({
        error: 'forbidden',
        message: `tenant "${request.tenant.principal.tenantId}" is not active`,
      });
    }
    return sendInternal(request, reply, error);
  };
}

/** 503 with Retry-After: the database or the tenant registry cannot answer now. */
function sendUnavailable(reply: FastifyReply, what: 'registry' | 'database'): FastifyReply {
  return reply
    .code(503)
    .header('retry-after', '2')
    .send({
      error: 'unavailable',
      message:
        what === 'registry'
          ? 'the tenant registry cannot be read right now; try again shortly'
          : 'the database cannot be reached right now; try again shortly',
    });
}

/** 500: a fault. The raw error goes to the log only; the caller gets the request id to quote. */
function sendInternal(request: FastifyRequest, reply: FastifyReply, error: Error): FastifyReply {
  request.log.error({ err: error }, 'request failed');
  return reply.code(500).send({ error: 'internal', message: `internal error (request ${request.id})` });
}

/** A validation error's message, naming the field a body may not have (ajv's own message does not). */
function validationMessage(error: ApiError): string {
  const extra = (error.validation as { keyword?: string; params?: { additionalProperty?: string } }[]).find(
    (v) => v.keyword === 'additionalProperties' && v.params?.additionalProperty,
  );
  return extra
    ? error.message.replace(
        'must NOT have additional properties',
        `must NOT have additional properties: "${extra.params!.additionalProperty}" is not a field it takes`,
      )
    : error.message;
}
