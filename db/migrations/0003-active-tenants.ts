import { TENANT_SETTING } from '../../contracts';
import { ADMIN_SCHEMA, RUNTIME_ROLES } from '../roles';
import type { Migration } from './index';

/**
 * Pool: an offboarded tenant is refused by the database itself, at once, whatever an API's registry cache still
 * says. The policies read the tenant through `current_tenant()`: no context is no tenant (no rows, P10); a tenant
 * that is not registered as active in tenancy.pool_tenants is refused with insufficient_privilege (the API answers
 * 403). Written as `(SELECT current_tenant())`, it runs once per statement (an InitPlan), not once per row.
 *
 * It is the one SECURITY DEFINER function: it must read tenancy.pool_tenants, which the runtime role may not
 * (every tenant's id and name). It reads nothing else, takes no argument, and runs with a fixed search_path.
 */
export const activeTenants: Migration = {
  version: 3,
  name: 'pool: only active tenants, enforced by the database',
  pool: `
CREATE FUNCTION current_tenant() RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  t text := nullif(current_setting('${TENANT_SETTING}', true), '');
BEGIN
  IF t IS NULL THEN
    RETURN NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ${ADMIN_SCHEMA}.pool_tenants p WHERE p.tenant_id = t AND p.status = 'active') THEN
    RAISE EXCEPTION 'tenant "%" is not active', t USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN t;
END
$fn$;
REVOKE ALL ON FUNCTION current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION current_tenant() TO ${RUNTIME_ROLES.pool};
ALTER POLICY tenant_isolation ON invoices
  USING (tenant_id = (SELECT current_tenant())) WITH CHECK (tenant_id = (SELECT current_tenant()));
ALTER POLICY tenant_isolation ON invoice_items
  USING (tenant_id = (SELECT current_tenant())) WITH CHECK (tenant_id = (SELECT current_tenant()));
`,
  tenant: '',
};
