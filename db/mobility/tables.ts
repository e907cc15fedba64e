/**
 * What a tenant's data is, for export, restore and moves: its tables (parents first) with their keys, and one
 * canonical way to read their rows (every column as PostgreSQL's text, in key order, with fixed date and time
 * settings), so the same rows give the same checksums whichever model or database they are read from.
 */
import type { QueryResult, QueryResultRow } from 'pg';
import { ident, join, sql, Sql } from '../sql';
import { TableDigests } from './archive';

export interface TenantTable {
  readonly name: string;
  /** Its primary key without the pool's tenant_id: the order rows are read and checksummed in. */
  readonly key: readonly string[];
}

/**
 * Every table of the tenant rendering of db/migrations, parents first (restore inserts in this order). A
 * migration that adds a table adds it here; test/db/mobility.test.ts fails when a tenant schema has a table this
 * list does not name.
 */
export const TENANT_TABLES: readonly TenantTable[] = [
  { name: 'invoices', key: ['id'] },
  { name: 'invoice_items', key: ['invoice_id', 'line_no'] },
];

/** The column the pool rendering adds to every table; it is the tenant itself, never part of an archive. */
export const POOL_TENANT_COLUMN = 'tenant_id';

export type Query = <R extends QueryResultRow = QueryResultRow>(statement: Sql) => Promise<QueryResult<R>>;

/** Rows fetched per round trip while streaming a table. */
export const FETCH_ROWS = 5000;

/** Fixed output formats for the transaction, so text values are the same wherever they are read. */
export async function canonicalSession(query: Query): Promise<void> {
  await query(sql`SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
                         set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true)`);
}

/** A table's columns in the transaction's current schema (the first of its search_path), without tenant_id. */
export async function tableColumns(query: Query, table: string): Promise<string[]> {
  const r = await query<{ name: string }>(
    sql`SELECT a.attname AS name FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = to_regclass(format('%I.%I', current_schema(), ${table}::text))
           AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
  );
  return r.rows.map((row) => row.name).filter((c) => c !== POOL_TENANT_COLUMN);
}

/**
 * Streams a table of the current schema (as the caller's role: under RLS and the tenant's credential for a
 * runtime principal) in key order, `FETCH_ROWS` at a time, each row as its columns' text in `columns` order.
 */
export async function readRows(
  query: Query,
  table: TenantTable,
  columns: readonly string[],
  onRows: (rows: (string | null)[][]) => Promise<void>,
): Promise<void> {
  const select = join(
    columns.map((c, i) => sql`${ident(c)}::text AS ${ident(`c${i}`)}`),
    ', ',
  );
  const order = join(
    table.key.map((k) => sql`${ident(k)}`),
    ', ',
  );
  await query(
    sql`DECLARE tf_mobility_rows NO SCROLL CURSOR FOR SELECT ${select} FROM ${ident(table.name)} ORDER BY ${order}`,
  );
  try {
    for (;;) {
      const r = await query<Record<string, string | null>>(
        sql`FETCH ${raw(FETCH_ROWS)} FROM tf_mobility_rows`,
      );
      if (r.rows.length === 0) break;
      await onRows(r.rows.map((row) => columns.map((_, i) => row[`c${i}`])));
    }
  } finally {
    await query(sql`CLOSE tf_mobility_rows`).catch(() => undefined);
  }
}

/** Row counts and checksums of every tenant table of the current schema, read with `columns[table]`. */
export async function digestTables(
  query: Query,
  columns: Readonly<Record<string, readonly string[]>>,
  beforeTable?: () => Promise<void>,
): Promise<{ rows: Record<string, number>; checksums: Record<string, string> }> {
  const digests = new TableDigests(TENANT_TABLES.map((t) => t.name));
  for (const table of TENANT_TABLES) {
    await beforeTable?.();
    await readRows(query, table, columns[table.name], async (rows) => {
      for (const r of rows) digests.add(table.name, r);
    });
  }
  return { rows: digests.rows, checksums: digests.checksums() };
}

function raw(n: number): Sql {
  return new Sql([String(Math.trunc(n))], []);
}
