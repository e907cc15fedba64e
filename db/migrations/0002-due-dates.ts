import type { Migration } from './index';

/** Invoices get an optional due date; the summary view shows it. Adds a column to existing rows in place. */
export const dueDates: Migration = {
  version: 2,
  name: 'invoice due dates',
  pool: `
ALTER TABLE invoices ADD COLUMN due_on date;
CREATE OR REPLACE VIEW invoice_summaries WITH (security_invoker = true) AS
  SELECT i.tenant_id, i.id, i.customer, i.reference, i.created_at,
         count(it.line_no)::integer AS item_count,
         coalesce(sum(it.quantity * it.unit_price_cents), 0)::bigint AS total_cents,
         i.due_on
  FROM invoices i
  LEFT JOIN invoice_items it ON it.tenant_id = i.tenant_id AND it.invoice_id = i.id
  GROUP BY i.tenant_id, i.id;
`,
  tenant: `
ALTER TABLE invoices ADD COLUMN due_on date;
CREATE OR REPLACE VIEW invoice_summaries WITH (security_invoker = true) AS
  SELECT i.id, i.customer, i.reference, i.created_at,
         count(it.line_no)::integer AS item_count,
         coalesce(sum(it.quantity * it.unit_price_cents), 0)::bigint AS total_cents,
         i.due_on
  FROM invoices i
  LEFT JOIN invoice_items it ON it.invoice_id = i.id
  GROUP BY i.id;
`,
};
