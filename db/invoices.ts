/**
 * The sample domain's queries: invoices with line items. Every function takes a `TenantScope` (a database
 * already bound to one verified tenant), never a tenant id beside a handle. The same unqualified SQL serves every model, because
 * the tenant context sets `search_path` (pool: the shared `pool` schema under RLS; bridge: the tenant's own
 * schema; silo: `app`). No query here filters by tenant: the context does, so a forgotten WHERE cannot leak.
 */
import { join, Sql, sql } from './sql';
import type { TenantScope } from './tenant-context';

export interface NewInvoice {
  readonly customer: string;
  readonly reference?: string;
  readonly dueOn?: string;
  readonly items: readonly { description: string; quantity: number; unitPriceCents: number }[];
}

export interface InvoiceItem {
  lineNo: number;
  description: string;
  quantity: number;
  unitPriceCents: number;
}

export interface Invoice {
  id: string;
  customer: string;
  reference: string | null;
  dueOn: string | null;
  createdAt: string;
  totalCents: number;
  itemCount: number;
  items?: InvoiceItem[];
}

interface SummaryRow {
  id: string;
  customer: string;
  reference: string | null;
  due_on: string | null;
  created_at: string;
  item_count: number;
  total_cents: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isInvoiceId = (id: string) => UUID.test(id);

function toInvoice(r: SummaryRow): Invoice {
  return {
    id: r.id,
    customer: r.customer,
    reference: r.reference,
    dueOn: r.due_on,
    createdAt: r.created_at,
    totalCents: Number(r.total_cents),
    itemCount: r.item_count,
  };
}

/** Microsecond precision, so a page cursor built from it never skips or repeats a row. */
const CREATED_AT = sql`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at`;
/** One invoice's item count and total (correlated with the invoice of the outer query). */
const ITEM_TOTALS = sql`SELECT count(it.line_no)::integer AS item_count,
  coalesce(sum(it.quantity * it.unit_price_cents), 0)::bigint AS total_cents
  FROM invoice_items it WHERE it.invoice_id = invoices.id`;
const SUMMARY = sql`id, customer, reference, to_char(due_on, 'YYYY-MM-DD') AS due_on, ${CREATED_AT}, item_count, total_cents`;

/** Creates an invoice and its items in one statement (one round trip), returning the summary. */
export async function createInvoice(db: TenantScope, input: NewInvoice): Promise<Invoice> {
  const rows = input.items.map(
    (it, i) =>
      sql`(${i + 1}::integer, ${it.description}::text, ${it.quantity}::integer, ${it.unitPriceCents}::bigint)`,
  );
  const r = await db.run<SummaryRow & { items: InvoiceItem[] }>(
    sql`WITH inv AS (
          INSERT INTO invoices (customer, reference, due_on)
          VALUES (${input.customer}, ${input.reference ?? null}, ${input.dueOn ?? null}::date)
          RETURNING id, customer, reference, due_on, created_at
        ), items AS (
          INSERT INTO invoice_items (invoice_id, line_no, description, quantity, unit_price_cents)
          SELECT inv.id, v.line_no, v.description, v.quantity, v.unit_price_cents
            FROM inv, (VALUES ${join(rows, ', ')}) AS v (line_no, description, quantity, unit_price_cents)
          RETURNING line_no, description, quantity, unit_price_cents
        )
        SELECT inv.id, inv.customer, inv.reference, to_char(inv.due_on, 'YYYY-MM-DD') AS due_on,
               to_char(inv.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
               (SELECT count(*)::integer FROM items) AS item_count,
               (SELECT coalesce(sum(quantity * unit_price_cents), 0) FROM items)::bigint AS total_cents,
               (SELECT json_agg(json_build_object('lineNo', line_no, 'description', description,
                        'quantity', quantity, 'unitPriceCents', unit_price_cents) ORDER BY line_no) FROM items) AS items
          FROM inv`,
  );
  return { ...toInvoice(r.rows[0]), items: r.rows[0].items };
}

/** One invoice with its items, or undefined: another tenant's id is indistinguishable from a missing one. */
export async function getInvoice(db: TenantScope, id: string): Promise<Invoice | undefined> {
  if (!isInvoiceId(id)) return undefined;
  const r = await db.run<SummaryRow & { items: InvoiceItem[] | null }>(
    sql`SELECT ${SUMMARY},
               (SELECT json_agg(json_build_object('lineNo', line_no, 'description', description,
                        'quantity', quantity, 'unitPriceCents', unit_price_cents) ORDER BY line_no)
                  FROM invoice_items it WHERE it.invoice_id = s.id) AS items
          FROM invoice_summaries s WHERE s.id = ${id}`,
  );
  const row = r.rows[0];
  return row && { ...toInvoice(row), items: row.items ?? [] };
}

/** A page of invoice summaries, oldest first, keyed by (created_at, id). */
/**
 * One page of invoice summaries (and one more row, to know whether there is a next page). The page first (the
 * listing index, in order), then each invoice's items: not the summary view, whose GROUP BY would aggregate every
 * invoice of the tenant before the LIMIT, so that a page of one would cost the tenant's whole table. The order
 * names the table's columns: a bare `created_at` would be the formatted output column, which no index serves.
 */
export function listStatement(page: { limit: number; after?: { createdAt: string; id: string } }): Sql {
  const after = page.after
    ? sql`WHERE (created_at, id) > (${page.after.createdAt}::timestamptz, ${page.after.id}::uuid)`
    : sql``;
  return sql`SELECT ${SUMMARY} FROM invoices CROSS JOIN LATERAL (${ITEM_TOTALS}) totals
    ${after} ORDER BY invoices.created_at, invoices.id LIMIT ${page.limit + 1}`;
}

export async function listInvoices(
  db: TenantScope,
  page: { limit: number; after?: { createdAt: string; id: string } },
): Promise<{ invoices: Invoice[]; next?: { createdAt: string; id: string } }> {
  const r = await db.run<SummaryRow>(listStatement(page));
  const rows = r.rows.slice(0, page.limit).map(toInvoice);
  const more = r.rows.length > page.limit;
  const last = rows[rows.length - 1];
  return { invoices: rows, next: more && last ? { createdAt: last.createdAt, id: last.id } : undefined };
}

/** Deletes an invoice (its items go with it); false when it does not exist for this tenant. */
export async function deleteInvoice(db: TenantScope, id: string): Promise<boolean> {
  if (!isInvoiceId(id)) return false;
  const r = await db.run(sql`DELETE FROM invoices WHERE id = ${id}`);
  return (r.rowCount ?? 0) > 0;
}
