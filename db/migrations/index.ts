/**
 * The application's versioned schema. Each migration has two renderings of the same domain:
 *
 * - `pool`: shared tables in schema `pool`. Every row carries `tenant_id`; every key, unique constraint and
 *   foreign key includes it; Row-Level Security is enabled and forced with one FOR ALL policy.
 * - `tenant`: the plain tables of one tenant, created in a bridge tenant's schema or in a silo database's
 *   `app` schema. No cross-schema references, so each schema stays movable on its own (e.g. Citus schema-based
 *   sharding).
 *
 * Migrations run as the owner role with `search_path` set to the target schema; they never grant anything
 * (the runner grants the target's runtime principal exactly SELECT, INSERT, UPDATE, DELETE afterwards).
 * Append new versions; never edit one that has shipped.
 */
import { invoices } from './0001-invoices';
import { dueDates } from './0002-due-dates';
import { activeTenants } from './0003-active-tenants';
import { verifiedContext } from './0004-verified-context';
import { tenantFreeze } from './0005-tenant-freeze';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** SQL for the pool schema. */
  readonly pool: string;
  /** SQL for one tenant's schema (bridge) or the silo database's schema. */
  readonly tenant: string;
  /**
   * SQL run after `tenant` for a bridge tenant's schema only, with `{{tenant}}` replaced by the tenant id as a
   * literal: the policies that admit only that tenant's verified credential. A migration that adds a table to
   * the tenant rendering adds its policy here (a test checks every bridge table has one).
   */
  readonly bridge?: string;
  /**
   * The contract step of an earlier expand (db/migrations/compatibility.ts): only such a migration may drop,
   * rename or retype what a running release could still read.
   */
  readonly contract?: { readonly expandedIn: number };
  /**
   * Statements that rewrite existing rows (a backfill), per rendering. The tables' Row-Level Security is forced,
   * so an UPDATE in `pool` or `tenant` would see no rows at all (the owner has no tenant context): the runner runs
   * these with the target's tables' RLS unforced inside the migration's transaction (the owner then sees every
   * row) and forces it again before commit, under the ACCESS EXCLUSIVE locks ALTER TABLE takes, so no other
   * session ever sees the tables unforced.
   */
  readonly backfill?: { readonly pool?: string; readonly tenant?: string };
}

export const MIGRATIONS: readonly Migration[] = [
  invoices,
  dueDates,
  activeTenants,
  verifiedContext,
  tenantFreeze,
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/**
 * The revision of what db/bootstrap.ts installs outside the migrations (roles, the tenant-context functions and
 * their grants). Raise it with every change there: each cell's bootstrap resource carries it (lib/constructs/
 * cell.ts), so the next deploy runs the bootstrap again on a database that already has one (it is idempotent).
 * 2: any role may call tenancy_api.enter(), whose body names pg_catalog functions only (threat model I5).
 * 3: the shared cells' slot roles, one login role per connection (db/slots.ts, threat model I8).
 * test/db/provisioning.test.ts pins a fingerprint of db/bootstrap.ts, so a change there cannot forget this.
 */
export const BOOTSTRAP_REVISION = 3;
