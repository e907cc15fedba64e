/**
 * Once per database: the owner role, the model's runtime login role (the only role besides the owner that may
 * connect), the bookkeeping schema, and PUBLIC's default privileges taken away (B3). Then the model's own part
 * (db/models). Safe to run again. Runs as the database's administrative user (the RDS master user: CREATEROLE
 * and CREATEDB, not a superuser), never as the API.
 */
import type { ClientBase } from 'pg';
import type { IsolationModel } from './naming';
import { LATEST_VERSION } from './migrations';
import { dataModel, ModelOptions } from './models';
import { TENANT_EXPIRY_SETTING, TENANT_MAC_SETTING, TENANT_SETTING } from '../contracts';
import {
  CONTEXT_API_SCHEMA,
  ContextKey,
  CREDENTIAL_SECONDS,
  VERIFY_TENANT_DECLARE,
  VERIFY_TENANT_SQL,
} from './context';
import {
  ADMIN_SCHEMA,
  OWNER_ROLE,
  RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT,
  RUNTIME_LOCK_TIMEOUT,
  RUNTIME_STATEMENT_TIMEOUT,
} from './roles';
import { DEFAULT_RUNTIME_SLOTS, MAX_RUNTIME_SLOTS, SLOT_CONNECTION_LIMIT, slotRole } from './slots';
import { ident, sql } from './sql';
import {
  currentDatabase,
  ensureRole,
  exec,
  inTransaction,
  lockBootstrap,
  quote,
  roleExists,
  serverVersion,
} from './tx';

export interface BootstrapOptions extends ModelOptions {
  /**
   * Passwords for the runtime login roles (the local platform). In AWS they sign in with IAM tokens instead,
   * and have no password.
   * @default - passwords unchanged; `rds_iam` granted where it exists
   */
  readonly runtimePasswords?: Partial<Record<IsolationModel, string>>;
  /**
   * The schema version the model's shared part is brought to (pool: the shared tables).
   * @default LATEST_VERSION
   */
  readonly version?: number;
  /**
   * The key the database verifies tenant context credentials with (db/context.ts); the API that connects must
   * hold the same. Bootstrapping again with another key rotates it (units of work in flight fail once).
   */
  readonly contextKey: ContextKey;
  /**
   * The shared cells' (pool, bridge) slot roles: one login role per connection (db/slots.ts), this many. More
   * than an earlier bootstrap made are added; fewer leave the extra ones (a task may still use them).
   * @default DEFAULT_RUNTIME_SLOTS
   */
  readonly runtimeSlots?: number;
}

export async function bootstrapDatabase(
  client: ClientBase,
  model: IsolationModel,
  options: BootstrapOptions,
): Promise<void> {
  const impl = dataModel(model);
  const pg16 = (await serverVersion(client)) >= 160000;
  await inTransaction(client, async () => {
    await exec(client, lockBootstrap());
    await ensureRole(client, OWNER_ROLE, 'NOLOGIN NOINHERIT');
    // The provisioning user acts as the owner only through SET ROLE, never by inheritance.
    await exec(
      client,
      pg16
        ? sql`GRANT ${ident(OWNER_ROLE)} TO CURRENT_USER WITH INHERIT FALSE, SET TRUE`
        : sql`GRANT ${ident(OWNER_ROLE)} TO CURRENT_USER`,
    );
    const role = impl.runtimeRole(options);
    // NOINHERIT: app_bridge holds no tenant's privileges until it SETs that tenant's role (B2). A shared cell's
    // runtime role is a group no connection signs in as: its slot roles do (db/slots.ts, I8).
    const shared = model !== 'silo';
    await ensureRole(
      client,
      role,
      `${shared ? 'NOLOGIN' : 'LOGIN'} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT`,
    );
    await assertRuntimeRoleAttributes(client, role);
    const password = options.runtimePasswords?.[model];
    if (password !== undefined) {
      await client.query(`ALTER ROLE ${quote(role)} PASSWORD ${sql`${password}`.toLiteralSql()}`);
    }
    if (await roleExists(client, 'rds_iam')) await exec(client, sql`GRANT rds_iam TO ${ident(role)}`);
    // Every session of the runtime role starts with these limits, at no per-query cost: one tenant's runaway
    // query cannot hold a pooled connection, and a transaction left open by a bug is ended.
    // (Utility statements take no parameters: the values are rendered as literals by the driver.)
    await client.query(
      sql`ALTER ROLE ${ident(role)} SET statement_timeout = ${RUNTIME_STATEMENT_TIMEOUT}`.toLiteralSql(),
    );
    await client.query(
      sql`ALTER ROLE ${ident(role)} SET idle_in_transaction_session_timeout = ${RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT}`.toLiteralSql(),
    );
    // I6: a lock the runtime role waits for (another tenant's LOCK TABLE) gives up instead of stalling it.
    await client.query(
      sql`ALTER ROLE ${ident(role)} SET lock_timeout = ${RUNTIME_LOCK_TIMEOUT}`.toLiteralSql(),
    );

    if (shared) {
      const upgraded = await roleExists(client, slotRole(role, 1));
      await ensureSlotRoles(client, role, options.runtimeSlots ?? DEFAULT_RUNTIME_SLOTS, { pg16, password });
      // A cell made before the slot roles: its runtime role stops signing in at the first bootstrap after the one
      // that made them (whose deploy replaced the API tasks that signed in as it), if nothing signs in as it then.
      // Until then each slot role, having its privileges, could read and end those sessions' statements (README:
      // upgrading a cell made before slot roles).
      if (upgraded) {
        await client.query(
          `DO $nologin$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity WHERE usename = current_setting('tenantforge.slot_parent'))
                AND (SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = current_setting('tenantforge.slot_parent')) THEN
               EXECUTE format('ALTER ROLE %I NOLOGIN', current_setting('tenantforge.slot_parent'));
             END IF;
           END $nologin$`,
        );
      }
    }

    const db = ident(await currentDatabase(client));
    await exec(client, sql`GRANT CONNECT ON DATABASE ${db} TO ${ident(role)}`);
    // The owner creates the schemas it owns (tenancy, pool, app, t_<tenant>).
    await exec(client, sql`GRANT CREATE ON DATABASE ${db} TO ${ident(OWNER_ROLE)}`);
    await impl.bootstrap(client, options);
    // B3: PUBLIC may not connect, create temporary tables, or use the public schema.
    await exec(client, sql`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    await exec(client, sql`REVOKE ALL ON SCHEMA public FROM PUBLIC`);

    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    await exec(client, sql`CREATE SCHEMA IF NOT EXISTS ${ident(ADMIN_SCHEMA)}`);
    await exec(client, sql`REVOKE ALL ON SCHEMA ${ident(ADMIN_SCHEMA)} FROM PUBLIC`);
    // B3/B6: functions the owner creates are not executable by PUBLIC unless granted.
    await exec(
      client,
      sql`ALTER DEFAULT PRIVILEGES FOR ROLE ${ident(OWNER_ROLE)} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`,
    );
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${ADMIN_SCHEMA}.targets (
        target text PRIMARY KEY,
        model text NOT NULL CHECK (model IN ('pool', 'bridge', 'silo')),
        schema_name text NOT NULL,
        version integer NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'offboarded')),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS ${ADMIN_SCHEMA}.pool_tenants (
        tenant_id text PRIMARY KEY,
        name text NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'offboarded')),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      -- Provisioning's per-target locks are row locks here: no runtime role can take or hold them (I6).
      CREATE TABLE IF NOT EXISTS ${ADMIN_SCHEMA}.locks (target text PRIMARY KEY);
      GRANT USAGE ON SCHEMA ${ADMIN_SCHEMA} TO SESSION_USER;
      GRANT SELECT, INSERT, UPDATE ON ${ADMIN_SCHEMA}.locks TO SESSION_USER;
    `);
    await installContext(client, options.contextKey);
  });
  await impl.afterBootstrap(client, { ...options, version: options.version ?? LATEST_VERSION });
}

/**
 * The slot roles of a shared cell's runtime role (db/slots.ts), made or checked in one statement: LOGIN,
 * neither superuser nor BYPASSRLS, a connection limit of 2, the runtime role's privileges by membership (and its
 * tenant roles by SET ROLE only: the runtime role is NOINHERIT), its defaults, and its password (local) or
 * `rds_iam`. A slot role someone made otherwise is refused by name, not repaired.
 */
async function ensureSlotRoles(
  client: ClientBase,
  role: string,
  slots: number,
  o: { pg16: boolean; password?: string },
): Promise<void> {
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_RUNTIME_SLOTS) {
    throw new Error(
      `bootstrap: runtimeSlots is ${JSON.stringify(slots)}: use a whole number from 1 to ${MAX_RUNTIME_SLOTS}`,
    );
  }
  // The password travels as a setting of this transaction, never in the statement's text.
  await client.query(
    `SELECT pg_catalog.set_config('tenantforge.slot_password', $1, true),
            pg_catalog.set_config('tenantforge.slot_parent', $2, true),
            pg_catalog.set_config('tenantforge.slot_defaults', $3, true)`,
    [
      o.password ?? '',
      role,
      [RUNTIME_STATEMENT_TIMEOUT, RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT, RUNTIME_LOCK_TIMEOUT].join(','),
    ],
  );
  const membership = o.pg16 ? 'WITH INHERIT TRUE, SET TRUE' : '';
  await client.query(`
    DO $slots$
    DECLARE
      parent text := current_setting('tenantforge.slot_parent');
      pw text := current_setting('tenantforge.slot_password');
      d text[] := string_to_array(current_setting('tenantforge.slot_defaults'), ',');
      iam boolean := EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'rds_iam');
      r text;
      s text;
      indb boolean;
    BEGIN
      FOR n IN 1..${slots} LOOP
        r := parent || '_s' || n;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
          EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT ${SLOT_CONNECTION_LIMIT}', r);
        END IF;
        EXECUTE format('GRANT %I TO %I ${membership}', parent, r);
        -- Whatever a session of the role set as its defaults (I5) goes, one by one: a few (db/runtime-role.ts
        -- INERT_ROLE_SETTINGS) only a superuser could remove, and RESET ALL would fail on them. Then the bootstrap's own.
        FOR s, indb IN
          SELECT pg_catalog.split_part(c, '=', 1), x.setdatabase <> 0
            FROM pg_catalog.pg_db_role_setting x, pg_catalog.unnest(x.setconfig) c
           WHERE x.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = r)
             AND x.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
        LOOP
          BEGIN
            IF indb THEN
              EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET %I', r, current_database(), s);
            ELSE
              EXECUTE format('ALTER ROLE %I RESET %I', r, s);
            END IF;
          EXCEPTION WHEN OTHERS THEN
            NULL;
          END;
        END LOOP;
        EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', r, d[1]);
        EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', r, d[2]);
        EXECUTE format('ALTER ROLE %I SET lock_timeout = %L', r, d[3]);
        IF pw <> '' THEN EXECUTE format('ALTER ROLE %I PASSWORD %L', r, pw); END IF;
        IF iam THEN EXECUTE format('GRANT rds_iam TO %I', r); END IF;
      END LOOP;
    END
    $slots$`);
  await client.query(`SELECT pg_catalog.set_config('tenantforge.slot_password', '', true)`);
  const bad = await client.query<{ rolname: string }>(
    `SELECT r.rolname FROM pg_catalog.pg_roles r
      WHERE r.rolname = ANY (SELECT $1 || '_s' || n FROM pg_catalog.generate_series(1, $2::int) n)
        AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb OR NOT r.rolcanlogin
             OR NOT r.rolinherit OR r.rolconnlimit <> $3::int)
      ORDER BY r.rolname`,
    [role, slots, SLOT_CONNECTION_LIMIT],
  );
  if (bad.rows.length > 0) {
    throw new Error(
      `bootstrap: slot roles ${bad.rows.map((b) => b.rolname).join(', ')} exist with other attributes than the bootstrap gives them ` +
        `(LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT ${SLOT_CONNECTION_LIMIT}): drop them as the database's administrator, then provision again`,
    );
  }
}

/** Refuses a runtime role that could skip Row-Level Security or own tenant data (P1, P2). */
async function assertRuntimeRoleAttributes(client: ClientBase, role: string): Promise<void> {
  const r = await client.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
    'SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1',
    [role],
  );
  const { rolsuper, rolbypassrls } = r.rows[0];
  if (rolsuper || rolbypassrls) {
    throw new Error(
      `runtime role "${role}" is ${rolsuper ? 'SUPERUSER' : 'BYPASSRLS'}, which skips Row-Level Security: ` +
        `run ALTER ROLE ${role} NOSUPERUSER NOBYPASSRLS as a superuser, then provision again`,
    );
  }
}

/**
 * The tenant context credential's half in the database (db/context.ts): the key, readable by the owner only; the
 * verification every tenant statement runs; and enter(), with which every unit of work starts from a clean
 * session (I4): whatever a previous request set for the session (settings, role, prepared statements, cursors,
 * listeners, advisory locks) is gone, the limits are set again whatever ALTER ROLE said (I5), and then the unit's
 * own settings, credential included.
 */
async function installContext(client: ClientBase, key: ContextKey): Promise<void> {
  const { ipad, opad } = key.pads();
  const api = CONTEXT_API_SCHEMA;
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${ADMIN_SCHEMA}.context_key (
      id integer PRIMARY KEY CHECK (id = 1),
      ipad bytea NOT NULL,
      opad bytea NOT NULL
    );
    CREATE SCHEMA IF NOT EXISTS ${api};
    REVOKE ALL ON SCHEMA ${api} FROM PUBLIC;
    -- Any role may call verified_tenant(): a bridge tenant's role (after SET ROLE) evaluates its tables' policies.
    GRANT USAGE ON SCHEMA ${api} TO PUBLIC;
    CREATE OR REPLACE FUNCTION ${api}.verified_tenant() RETURNS text
      LANGUAGE plpgsql STABLE SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp
    AS $fn$
    DECLARE ${VERIFY_TENANT_DECLARE}
    BEGIN ${VERIFY_TENANT_SQL}
      RETURN t;
    END
    $fn$;
    REVOKE ALL ON FUNCTION ${api}.verified_tenant() FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION ${api}.verified_tenant() TO PUBLIC;
    CREATE OR REPLACE FUNCTION ${api}.enter(names text[], vals text[]) RETURNS void
      LANGUAGE plpgsql
    AS $fn$
    DECLARE s text;
    BEGIN
      RESET ALL;
      EXECUTE 'CLOSE ALL';
      EXECUTE 'UNLISTEN *';
      -- Statements prepared with SQL (never the API's: those are protocol-level, which SQL cannot create).
      FOR s IN SELECT p.name FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql LOOP
        EXECUTE 'DEALLOCATE ' || pg_catalog.quote_ident(s);
      END LOOP;
      PERFORM pg_catalog.pg_advisory_unlock_all(),
              pg_catalog.set_config('role', 'none', true),
              pg_catalog.set_config('client_encoding', 'UTF8', true),
              pg_catalog.set_config('statement_timeout', '${RUNTIME_STATEMENT_TIMEOUT}', true),
              pg_catalog.set_config('lock_timeout', '${RUNTIME_LOCK_TIMEOUT}', true),
              pg_catalog.set_config('idle_in_transaction_session_timeout', '${RUNTIME_IDLE_IN_TRANSACTION_TIMEOUT}', true);
      PERFORM pg_catalog.set_config(x.n, x.v, true) FROM ROWS FROM (pg_catalog.unnest(names), pg_catalog.unnest(vals)) AS x(n, v);
    END
    $fn$;
    -- Any role may call enter(): it only resets and sets the caller's own session, and a bridge connection whose
    -- session an injected SET ROLE left as a tenant role must still be able to start its next unit with it (enter()
    -- sets role back to none for the unit).
    REVOKE ALL ON FUNCTION ${api}.enter(text[], text[]) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION ${api}.enter(text[], text[]) TO PUBLIC;
    -- For the owner (provisioning, tools): a credential for this backend, computed in the database.
    CREATE OR REPLACE FUNCTION ${ADMIN_SCHEMA}.owner_enter(tenant text) RETURNS void
      LANGUAGE plpgsql
    AS $fn$
    DECLARE e text := (extract(epoch FROM statement_timestamp())::bigint + ${CREDENTIAL_SECONDS})::text;
            i bytea; o bytea;
    BEGIN
      SELECT k.ipad, k.opad INTO i, o FROM ${ADMIN_SCHEMA}.context_key k WHERE k.id = 1;
      PERFORM set_config('${TENANT_SETTING}', tenant, true),
              set_config('${TENANT_EXPIRY_SETTING}', e, true),
              set_config('${TENANT_MAC_SETTING}',
                encode(sha256(o || sha256(i || convert_to(tenant || '|' || pg_backend_pid() || '|' || e, 'UTF8'))), 'hex'),
                true);
    END
    $fn$;
  `);
  await client.query(
    `INSERT INTO ${ADMIN_SCHEMA}.context_key (id, ipad, opad) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET ipad = excluded.ipad, opad = excluded.opad`,
    [ipad, opad],
  );
}
