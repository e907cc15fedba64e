import { ADMIN_SCHEMA, RUNTIME_ROLES } from '../roles';
import { VERIFY_TENANT_DECLARE, VERIFY_TENANT_SQL } from '../context';
import type { Migration } from './index';

const TABLES = ['invoices', 'invoice_items'];

/**
 * Pool: a tenant can be frozen while its data moves (db/mobility/): its registration is `frozen`, and then its
 * verified credential still reads its rows but writes none (M1). The one FOR ALL policy becomes one policy per
 * command: SELECT admits an active or frozen tenant (`readable_tenant()`); INSERT, UPDATE and DELETE admit an
 * active tenant only (`current_tenant()`, which raises insufficient_privilege for a frozen one). Nothing a session
 * can set changes that (a frozen tenant's SQL that turns its transaction read-only mid-statement still writes
 * nothing). Bridge and silo tenants are frozen with their roles' privileges instead (db/models/bridge.ts, silo.ts).
 */
const body = (admit: string) => `
DECLARE ${VERIFY_TENANT_DECLARE} s text;
BEGIN ${VERIFY_TENANT_SQL}
  IF t IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT p.status INTO s FROM ${ADMIN_SCHEMA}.pool_tenants p WHERE p.tenant_id = t;
  IF s IN (${admit}) THEN
    RETURN t;
  END IF;
  IF s = 'frozen' THEN
    RAISE EXCEPTION 'tenant "%" is frozen while its data moves: it can read, not write', t
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RAISE EXCEPTION 'tenant "%" is not active', t USING ERRCODE = 'insufficient_privilege';
END`;

const fn = (name: string, admit: string) => `
CREATE OR REPLACE FUNCTION ${name}() RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $fn$${body(admit)}
$fn$;
REVOKE ALL ON FUNCTION ${name}() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${name}() TO ${RUNTIME_ROLES.pool};`;

const policies = (table: string) => `
DROP POLICY tenant_isolation ON ${table};
CREATE POLICY tenant_read ON ${table} FOR SELECT USING (tenant_id = (SELECT readable_tenant()));
CREATE POLICY tenant_insert ON ${table} FOR INSERT WITH CHECK (tenant_id = (SELECT current_tenant()));
CREATE POLICY tenant_update ON ${table} FOR UPDATE
  USING (tenant_id = (SELECT current_tenant())) WITH CHECK (tenant_id = (SELECT current_tenant()));
CREATE POLICY tenant_delete ON ${table} FOR DELETE USING (tenant_id = (SELECT current_tenant()));`;

export const tenantFreeze: Migration = {
  version: 5,
  name: 'pool: a frozen tenant reads and cannot write',
  pool: `
ALTER TABLE ${ADMIN_SCHEMA}.pool_tenants DROP CONSTRAINT pool_tenants_status_check;
ALTER TABLE ${ADMIN_SCHEMA}.pool_tenants ADD CONSTRAINT pool_tenants_status_check
  CHECK (status IN ('active', 'frozen', 'offboarded'));
${fn('current_tenant', "'active'")}
${fn('readable_tenant', "'active', 'frozen'")}
${TABLES.map(policies).join('\n')}
`,
  tenant: '',
};
