/**
 * One unit of work as ONE protocol exchange: every statement's Parse/Bind/Describe/Execute, then a single Sync, in
 * one write; the server answers with one ReadyForQuery. The statements run in the implicit transaction the Sync
 * ends (committed if all succeed, rolled back if any fails), so no BEGIN or COMMIT travels or executes.
 *
 * Why not the driver's own pipelining (one Sync per query): each Sync is a transaction boundary and a
 * ReadyForQuery, and each query a separate write; measured on 2 cores (npm run bench:db), the same read in tenant
 * context went from 0.28x to about 0.6x of the read without context by sending it this way and keeping the
 * statement's plan (below).
 *
 * A statement may carry a `name`: it is then parsed once per connection (a protocol-level prepared statement, so
 * its plan is cached; RLS planning is most of a pool read's cost). It is parsed in its place (a bridge statement's
 * names resolve through the search_path enter() sets), and recorded as parsed only when its own ParseComplete
 * comes back, so the driver's record of what the connection has parsed stays exact when a statement fails. Injected SQL cannot create a protocol-level
 * statement (SQL PREPARE makes `from_sql` ones, which enter() deallocates); it can DEALLOCATE ours, which makes
 * the next exchange fail with 26000 before anything runs: the caller then replaces the connection and retries.
 */
import type { QueryResult, QueryResultRow } from 'pg';

export interface UnitStatement {
  readonly text: string;
  readonly values?: readonly unknown[];
  /** A protocol-level prepared statement name: parsed once per connection. */
  readonly name?: string;
  /**
   * Unnamed, but not parsed again while the connection's unnamed statement still holds this text: nothing has
   * sent a Parse of the unnamed statement or a simple query on the connection since a unit of work that
   * succeeded left it there. SQL can neither replace nor remove the unnamed statement (PREPARE needs a name;
   * DEALLOCATE ALL and DISCARD leave it), so, unlike a named one, a previous unit's SQL cannot swap it.
   */
  readonly keepUnnamed?: boolean;
}

/**
 * The text each connection's unnamed statement holds, as far as this module knows: set by a unit of work that
 * parsed (or reused) it and succeeded; forgotten on any other Parse of the unnamed statement, any simple query
 * (which drops it), and any error.
 */
const unnamedText = new WeakMap<object, string>();
/** Counts what may have changed each connection's unnamed statement (exchanges can be pipelined). */
const changes = new WeakMap<object, number>();
function changed(connection: object): number {
  const n = (changes.get(connection) ?? 0) + 1;
  changes.set(connection, n);
  unnamedText.delete(connection);
  return n;
}
const watched = new WeakSet<object>();

/**
 * Forgets the unnamed statement whenever anything but a unit of work could have changed it: the driver (pg, pinned
 * in package.json) sends Parse, simple Query and Close only through these three methods. Were the belief ever
 * wrong, the Bind would fail with 26000 before anything ran, and the unit is retried after a reset (runIn).
 */
function watch(connection: Connection): void {
  if (watched.has(connection)) return;
  watched.add(connection);
  const parse = connection.parse.bind(connection);
  const query = connection.query.bind(connection);
  const close = connection.close.bind(connection);
  connection.parse = (m) => {
    if (!m.name) changed(connection);
    parse(m);
  };
  connection.query = (text) => {
    changed(connection);
    query(text);
  };
  connection.close = (m) => {
    if (m.type === 'S' && !m.name) changed(connection);
    close(m);
  };
}

// The driver's query class (result parsing, callbacks) and value serializer, which its own queries use.
/* eslint-disable @typescript-eslint/no-require-imports */
const Query = require('pg/lib/query') as new (config: object) => object;
const { prepareValue } = require('pg/lib/utils') as { prepareValue: (v: unknown) => unknown };
/* eslint-enable @typescript-eslint/no-require-imports */

interface Connection {
  parsedStatements: Record<string, string>;
  stream: { cork?(): void; uncork?(): void };
  parse(m: { text: string; name: string; types: unknown[] }): void;
  /** A simple Query message (which also drops the unnamed statement). */
  query(text: string): void;
  /** A Close message (of a statement, 'S', or a portal). */
  close(m: { type: string; name?: string }): void;
  bind(m: { portal: string; statement: string; values: readonly unknown[]; valueMapper: unknown }): void;
  describe(m: { type: 'P'; name: string }): void;
  execute(m: { portal: string; rows: number }): void;
  sync(): void;
}

/** A submittable the pg client runs as one query: results come back as an array, one per statement. */
class UnitOfWorkQuery extends (Query as new (config: object) => {
  handleReadyForQuery(connection: unknown): void;
  handleError(error: Error, connection: unknown): void;
}) {
  private onParseComplete?: () => void;
  /** The unnamed statement this unit leaves, if it is one to keep (set once the unit has succeeded). */
  private leaves?: { connection: object; text: string; change: number };
  private failed = false;

  constructor(
    private readonly statements: readonly UnitStatement[],
    callback: (err: Error | null, results?: QueryResult | QueryResult[]) => void,
  ) {
    super({ text: 'unit of work', callback });
  }

  submit(connection: Connection & NodeJS.EventEmitter): Error | null {
    // Every value serialised before anything is written: a value that cannot be (a circular object, say) would
    // otherwise fail half-way, after Parse messages went out with no Sync, and desynchronise the connection. The
    // driver then calls handleError with the returned error.
    let values: unknown[][];
    try {
      values = this.statements.map((st) => (st.values ?? []).map((v) => prepareValue(v)));
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
    // Which Parse (by position) creates which named statement: it exists once that many ParseCompletes came back.
    const created = new Map<number, UnitStatement>();
    watch(connection);
    let unnamed = unnamedText.get(connection);
    connection.stream.cork?.();
    try {
      let parses = 0;
      for (const [i, s] of this.statements.entries()) {
        const parse = s.name
          ? connection.parsedStatements[s.name] === undefined
          : !(s.keepUnnamed && unnamed === s.text);
        if (!s.name) unnamed = s.keepUnnamed ? s.text : undefined;
        if (parse) {
          connection.parse({ text: s.text, name: s.name ?? '', types: [] });
          if (s.name) created.set(++parses, s);
          else ++parses;
        }
        connection.bind({ portal: '', statement: s.name ?? '', values: values[i], valueMapper: undefined });
        connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '', rows: 0 });
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    // Known only once the exchange succeeds (handleReadyForQuery); until then, as after an error, nothing is.
    const change = changed(connection);
    this.leaves = unnamed !== undefined ? { connection, text: unnamed, change } : undefined;
    if (created.size > 0) {
      let seen = 0;
      this.onParseComplete = () => {
        const s = created.get(++seen);
        if (s) connection.parsedStatements[s.name!] = s.text;
      };
      connection.on('parseComplete', this.onParseComplete);
    }
    return null;
  }

  handleReadyForQuery(connection: NodeJS.EventEmitter): void {
    this.stopCounting(connection);
    // Unless a later exchange, already sent (pipelined), may have replaced it.
    if (this.leaves && !this.failed && changes.get(this.leaves.connection) === this.leaves.change) {
      unnamedText.set(this.leaves.connection, this.leaves.text);
    }
    super.handleReadyForQuery(connection);
  }

  // On an error the driver drops the query without its ReadyForQuery: stop counting here too, or a later
  // exchange's ParseComplete would mark a statement parsed that the server never created.
  handleError(error: Error, connection: NodeJS.EventEmitter): void {
    this.stopCounting(connection);
    this.failed = true;
    changed(connection);
    super.handleError(error, connection);
  }

  private stopCounting(connection: NodeJS.EventEmitter): void {
    if (this.onParseComplete) connection.removeListener('parseComplete', this.onParseComplete);
    this.onParseComplete = undefined;
  }
}

export interface UnitOfWorkResult {
  readonly results: QueryResult[];
  /** The transaction status the server reported after the exchange: 'I' (idle) unless SQL opened a block. */
  readonly transactionStatus: string | null;
}

/** Runs the statements as one exchange on `client` (a pg Client or PoolClient). */
export function runUnitOfWork<R extends QueryResultRow = QueryResultRow>(
  client: { query(q: unknown): unknown },
  statements: readonly UnitStatement[],
): Promise<UnitOfWorkResult & { readonly last: QueryResult<R> }> {
  return new Promise((resolve, reject) => {
    client.query(
      new UnitOfWorkQuery(statements, (err, results) => {
        if (err) return reject(err);
        const list = Array.isArray(results) ? results : [results!];
        resolve({
          results: list,
          last: list[list.length - 1] as QueryResult<R>,
          transactionStatus: (client as { _txStatus?: string | null })._txStatus ?? null,
        });
      }),
    );
  });
}

/** Forgets what the connection has parsed (after DISCARD ALL, or when it is dropped). */
export function forgetParsedStatements(client: unknown): void {
  const connection = (client as { connection?: Connection }).connection;
  if (connection) {
    connection.parsedStatements = {};
    changed(connection);
  }
}
