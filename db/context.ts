/**
 * The tenant context credential (threat model I1, I2). The API binds each unit of work to a tenant with three
 * transaction-local settings: the tenant, an expiry, and an HMAC-SHA256 over `tenant|backend pid|expiry` with a key
 * per database. The key lives in the database in a table only the owner can read (tenancy.context_key, as the
 * HMAC's inner and outer padded keys) and in the API's configuration (a secret); the verification runs inside
 * PostgreSQL in a SECURITY DEFINER function with a pinned search_path (VERIFY_TENANT_SQL), on every statement that
 * reads tenant rows. So SQL injected into tenant A's transaction cannot act as tenant B: it can set B's id, but
 * not B's MAC, and a MAC it saw is bound to A, to one backend and to a minute.
 */
import { createHash, createHmac } from 'crypto';
import { TENANT_EXPIRY_SETTING, TENANT_MAC_SETTING, TENANT_SETTING } from '../contracts';

/** How long a credential is valid: long enough for any one unit of work (statements time out at 5 s). */
export const CREDENTIAL_SECONDS = 120;
/**
 * How long the credential of a read-only snapshot transaction is valid (TenantScope.snapshot: an export of a large
 * tenant reads for minutes). It is still bound to the tenant and the backend, and ends with its transaction.
 */
export const SNAPSHOT_CREDENTIAL_SECONDS = 6 * 3600;

export class ContextKey {
  private constructor(private readonly key: Buffer) {}

  /** `hex`: at least 32 random bytes, hex-encoded; `source` names where it came from, for the error. */
  static fromHex(hex: string | undefined, source: string): ContextKey {
    if (!hex || !/^([0-9a-f]{2}){32,64}$/i.test(hex)) {
      throw new Error(
        `${source}: the tenant context key must be 64 to 128 hex characters (32 to 64 random bytes); generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('hex'))"`,
      );
    }
    return new ContextKey(Buffer.from(hex, 'hex'));
  }

  /** HMAC's inner and outer padded keys (RFC 2104), which is what the database stores. */
  pads(): { ipad: Buffer; opad: Buffer } {
    const block = Buffer.alloc(64);
    (this.key.length > 64 ? createHash('sha256').update(this.key).digest() : this.key).copy(block);
    return {
      ipad: Buffer.from(block.map((b) => b ^ 0x36)),
      opad: Buffer.from(block.map((b) => b ^ 0x5c)),
    };
  }

  mac(tenantId: string, backendPid: number, expiry: number): string {
    return createHmac('sha256', this.key).update(`${tenantId}|${backendPid}|${expiry}`, 'utf8').digest('hex');
  }

  /** The settings that bind a unit of work on backend `backendPid` to `tenantId`. */
  credential(
    tenantId: string,
    backendPid: number,
    now = Date.now(),
    seconds = CREDENTIAL_SECONDS,
  ): [string, string][] {
    const expiry = Math.floor(now / 1000) + seconds;
    return [
      [TENANT_SETTING, tenantId],
      [TENANT_EXPIRY_SETTING, String(expiry)],
      [TENANT_MAC_SETTING, this.mac(tenantId, backendPid, expiry)],
    ];
  }
}

/** A tenant context that cannot be (an unknown tenant for a silo database, an unsafe runtime role, ...). */
export class TenantContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TenantContextError';
  }
}

/** Schema of the functions the runtime roles call: enter() and verified_tenant(). */
export const CONTEXT_API_SCHEMA = 'tenancy_api';

/**
 * The body that verifies the credential, as PL/pgSQL statements ending with the verified tenant in `t`, or NULL
 * when the unit of work names no tenant (no rows, never an error: P10). A tenant without a valid MAC, or past
 * its expiry, raises insufficient_privilege. Runs as the owner (SECURITY DEFINER): the key table is the owner's.
 */
export const VERIFY_TENANT_SQL = `
  t := nullif(current_setting('${TENANT_SETTING}', true), '');
  IF t IS NOT NULL THEN
    m := current_setting('${TENANT_MAC_SETTING}', true);
    e := current_setting('${TENANT_EXPIRY_SETTING}', true);
    SELECT k.ipad, k.opad INTO i, o FROM tenancy.context_key k WHERE k.id = 1;
    IF m IS NULL OR e IS NULL OR e !~ '^[0-9]{1,12}$' OR i IS NULL
       OR e::bigint < extract(epoch FROM statement_timestamp())
       OR encode(sha256(o || sha256(i || convert_to(t || '|' || pg_backend_pid() || '|' || e, 'UTF8'))), 'hex')
          IS DISTINCT FROM m THEN
      RAISE EXCEPTION 'the tenant context for "%" carries no valid credential', t
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;`;

/** The declarations VERIFY_TENANT_SQL needs. */
export const VERIFY_TENANT_DECLARE = 't text; m text; e text; i bytea; o bytea;';
