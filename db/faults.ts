/**
 * What a database error says about the connection and the database, so callers can decide without guessing:
 *
 * - a connection fault (the socket was cut, timed out, or the server went away): the connection's protocol
 *   state is unknown (a reply may still be on its way), so it must be destroyed, never reused, not even for a
 *   ROLLBACK: a reused connection could hand one query's reply to the next query, another tenant's;
 * - unavailable: the database cannot serve right now (a connection fault, a server shutting down or starting,
 *   too many connections, a failover): the request may be retried later (503 with Retry-After), and nothing
 *   about the tenant's data is implied.
 */

/** SQLSTATEs that mean the server cannot serve now, not that the request was wrong. */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '25006', // read_only_sql_transaction: a writer connected to a former primary during a failover
  '55P03', // lock_not_available: another transaction held a lock past lock_timeout
]);

/** Node socket error codes of a broken or unreachable connection. */
const SOCKET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Messages node-postgres uses for faults it detects itself (they carry no code). */
const DRIVER_FAULTS = [
  /^Query read timeout$/,
  /^Connection terminated/,
  /^timeout exceeded when trying to connect$/,
  /^Connection terminated due to connection timeout$/,
  /^Client has encountered a connection error and is not queryable$/,
  /^Client was closed and is not queryable$/,
];

type MaybeDbError = { code?: unknown; message?: unknown; severity?: unknown };

/** A server error (it carries a five-character SQLSTATE from PostgreSQL): the connection itself still works. */
export function isServerError(e: unknown): boolean {
  const err = e as MaybeDbError;
  return typeof err?.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) && typeof err.severity === 'string';
}

/** The connection can no longer be trusted: destroy it. */
export function isConnectionFault(e: unknown): boolean {
  const err = e as MaybeDbError;
  if (typeof err?.code === 'string') {
    if (SOCKET_CODES.has(err.code)) return true;
    if (err.code.startsWith('08')) return true; // connection_exception
    if (['57P01', '57P02', '57P03'].includes(err.code)) return true;
  }
  return typeof err?.message === 'string' && DRIVER_FAULTS.some((re) => re.test(err.message as string));
}

/** The database cannot serve right now: answer 503 with Retry-After, and never a wrong answer. */
export function isUnavailable(e: unknown): boolean {
  const err = e as MaybeDbError;
  return (
    isConnectionFault(e) ||
    (typeof err?.code === 'string' && (UNAVAILABLE_SQLSTATES.has(err.code) || err.code.startsWith('08')))
  );
}
