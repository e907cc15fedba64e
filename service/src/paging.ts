/** Paging of list requests: the page size asked for, the rows it may read (for the limits), and cursors. */
import type { FastifyRequest } from 'fastify';

/** The largest page a list request may ask for; without `?limit=` it gets DEFAULT_PAGE_SIZE. */
export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 50;

/** The page size a list request asks for (the default when it names none; NaN when it is not a whole number). */
export function pageSize(request: FastifyRequest): number {
  const q = request.query as { limit?: string };
  return q.limit === undefined ? DEFAULT_PAGE_SIZE : /^[0-9]+$/.test(q.limit) ? Number(q.limit) : NaN;
}

/**
 * How many rows a request may read, for the tenant's rows-per-second limit: what its route says (a list, its page
 * size), else one. A page size the route will refuse counts as one: the request reads nothing.
 */
export function rowsAskedFor(request: FastifyRequest): number {
  const rowsOf = (request.routeOptions.config as { rows?: (r: FastifyRequest) => number }).rows;
  const rows = rowsOf ? rowsOf(request) : 1;
  return rows >= 1 && rows <= MAX_PAGE_SIZE ? rows : 1;
}

export function encodeCursor(c: { createdAt: string; id: string }): string {
  return Buffer.from(`${c.createdAt}|${c.id}`).toString('base64url');
}

export function decodeCursor(s: string): { createdAt: string; id: string } | undefined {
  const [createdAt, id] = Buffer.from(s, 'base64url').toString('utf8').split('|');
  if (
    !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(createdAt ?? '') ||
    !/^[0-9a-f-]{36}$/.test(id ?? '')
  ) {
    return undefined;
  }
  return { createdAt, id };
}
