import { TENANT_SETTING } from '../../contracts';
import type { Migration } from './index';

/** The tenant filter: no context means no rows, never an error or all rows (P10). */
const CURRENT_TENANT = `nullif(current_setting('${TENANT_SETTING}', true), '')`;

const rls = (table: string) => `
ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;
-- FORCE: the owner role is bound by the policy too (P2).
ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;
-- One FOR ALL policy: USING filters what is read, updated and deleted; WITH CHECK refuses writing a row into
-- (or moving a row to) another tenant (P11).
CREATE POLICY tenant_isolation ON ${table} FOR ALL
  USING (tenant_id = ${CURRENT_TENANT})
  WITH CHECK (tenant_id = ${CURRENT_TENANT});
`;

export const invoices: Migration = {
  version: 1,
  name: 'invoices with line items',
  pool: `
CREATE TABLE invoices (
  tenant_id text NOT NULL DEFAULT ${CURRENT_TENANT}
    REFERENCES tenancy.pool_tenants (tenant_id),
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  customer text NOT NULL CHECK (length(customer) BETWEEN 1 AND 200),
  reference text CHECK (length(reference) BETWEEN 1 AND 100),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- uuid ids, no shared sequence whose gaps would reveal other tenants' volume (P12).
  PRIMARY KEY (tenant_id, id),
  -- tenant_id in every unique constraint: a duplicate can only collide with one's own rows (P6).
  UNIQUE (tenant_id, reference)
);
CREATE INDEX invoices_listing ON invoices (tenant_id, created_at, id);

CREATE TABLE invoice_items (
  tenant_id text NOT NULL DEFAULT ${CURRENT_TENANT},
  invoice_id uuid NOT NULL,
  line_no integer NOT NULL CHECK (line_no > 0),
  description text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
  quantity integer NOT NULL CHECK (quantity > 0),
  unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (tenant_id, invoice_id, line_no),
  -- Composite foreign key: an item can only point at an invoice of its own tenant (P7).
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id) ON DELETE CASCADE
);

-- security_invoker: the view runs with the caller's rights, so RLS applies through it (P3).
CREATE VIEW invoice_summaries WITH (security_invoker = true) AS
  SELECT i.tenant_id, i.id, i.customer, i.reference, i.created_at,
         count(it.line_no)::integer AS item_count,
         coalesce(sum(it.quantity * it.unit_price_cents), 0)::bigint AS total_cents
  FROM invoices i
  LEFT JOIN invoice_items it ON it.tenant_id = i.tenant_id AND it.invoice_id = i.id
  GROUP BY i.tenant_id, i.id;
${rls('invoices')}
${rls('invoice_items')}
`,
  tenant: `
CREATE TABLE invoices (
  id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  customer text NOT NULL CHECK (length(customer) BETWEEN 1 AND 200),
  reference text CHECK (length(reference) BETWEEN 1 AND 100) UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_listing ON invoices (created_at, id);

CREATE TABLE invoice_items (
  invoice_id uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  line_no integer NOT NULL CHECK (line_no > 0),
  description text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
  quantity integer NOT NULL CHECK (quantity > 0),
  unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (invoice_id, line_no)
);

CREATE VIEW invoice_summaries WITH (security_invoker = true) AS
  SELECT i.id, i.customer, i.reference, i.created_at,
         count(it.line_no)::integer AS item_count,
         coalesce(sum(it.quantity * it.unit_price_cents), 0)::bigint AS total_cents
  FROM invoices i
  LEFT JOIN invoice_items it ON it.invoice_id = i.id
  GROUP BY i.id;
`,
};
