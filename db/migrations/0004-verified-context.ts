import { ADMIN_SCHEMA } from '../roles';
import { CONTEXT_API_SCHEMA, VERIFY_TENANT_DECLARE, VERIFY_TENANT_SQL } from '../context';
import type { Migration } from './index';

/**
 * Bridge: every tenant table admits only its own tenant's verified credential, so SET ROLE to another tenant's
 * role reaches nothing (I2).
 *
 * Pool: the policies admit a tenant only with a verified credential (I1): current_tenant() checks the unit of
 * work's HMAC (db/context.ts) before it checks the tenant is active (P15). Injected SQL that sets another tenant's
 * id without that tenant's MAC gets an error, not rows.
 *
 * And the planner's statistics no longer describe tenants' text (P13 under injection): the free-text columns
 * keep no most-common values or histograms, so EXPLAIN's estimates cannot be bisected into another tenant's
 * values. What a tenant can still infer is whole-table volume (row counts and sizes), as the threat model says.
 */
export const verifiedContext: Migration = {
  version: 4,
  name: 'pool: verified tenant credentials; no statistics on tenant text',
  pool: `
CREATE OR REPLACE FUNCTION current_tenant() RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE ${VERIFY_TENANT_DECLARE}
BEGIN ${VERIFY_TENANT_SQL}
  IF t IS NULL THEN
    RETURN NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ${ADMIN_SCHEMA}.pool_tenants p WHERE p.tenant_id = t AND p.status = 'active') THEN
    RAISE EXCEPTION 'tenant "%" is not active', t USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN t;
END
$fn$;
ALTER TABLE invoices ALTER COLUMN customer SET STATISTICS 0;
ALTER TABLE invoices ALTER COLUMN reference SET STATISTICS 0;
ALTER TABLE invoice_items ALTER COLUMN description SET STATISTICS 0;
`,
  tenant: '',
  bridge: ['invoices', 'invoice_items']
    .map(
      (table) => `
ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;
CREATE POLICY verified_tenant ON ${table} FOR ALL
  USING ((SELECT ${CONTEXT_API_SCHEMA}.verified_tenant()) = {{tenant}})
  WITH CHECK ((SELECT ${CONTEXT_API_SCHEMA}.verified_tenant()) = {{tenant}});`,
    )
    .join('\n'),
};
