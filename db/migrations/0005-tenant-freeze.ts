import { ADMIN_SCHEMA } from '../roles';
import { VERIFY_TENANT_DECLARE, VERIFY_TENANT_SQL } from '../context';
import type { Migration } from './index';

/**
 * Pool: a tenant can be frozen while its data moves (db/mobility/): its registration is `frozen`, and the
 * policies then admit its verified credential in READ ONLY transactions only, so its rows can still be exported
 * by its own runtime principal while every write (and every read-write transaction, which is how the API runs
 * every request) is refused with insufficient_privilege (M1). Bridge and silo tenants are frozen with their
 * roles' privileges instead (db/models/bridge.ts, silo.ts); they need no schema change.
 */
export const tenantFreeze: Migration = {
  version: 5,
  name: 'pool: a frozen tenant is read-only',
  pool: `
ALTER TABLE ${ADMIN_SCHEMA}.pool_tenants DROP CONSTRAINT pool_tenants_status_check;
ALTER TABLE ${ADMIN_SCHEMA}.pool_tenants ADD CONSTRAINT pool_tenants_status_check
  CHECK (status IN ('active', 'frozen', 'offboarded'));
CREATE OR REPLACE FUNCTION current_tenant() RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE ${VERIFY_TENANT_DECLARE} s text;
BEGIN ${VERIFY_TENANT_SQL}
  IF t IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT p.status INTO s FROM ${ADMIN_SCHEMA}.pool_tenants p WHERE p.tenant_id = t;
  IF s = 'active' THEN
    RETURN t;
  END IF;
  IF s = 'frozen' THEN
    IF current_setting('transaction_read_only') = 'on' THEN
      RETURN t;
    END IF;
    RAISE EXCEPTION 'tenant "%" is frozen while its data moves: only read-only transactions are admitted', t
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RAISE EXCEPTION 'tenant "%" is not active', t USING ERRCODE = 'insufficient_privilege';
END
$fn$;
`,
  tenant: '',
};
