/**
 * Restore: an archive (archive.ts) into one tenant's place in a database, all or nothing. In ONE transaction on
 * the destination database, as its master user acting as the owner role:
 *
 * 1. a staging schema is created at the archive's schema version with the migrations' tenant rendering, and the
 *    rows are loaded into it and read back: they must give the manifest's counts and checksums;
 * 2. an older archive is migrated forward there by the same migrations (a newer one was refused before);
 * 3. the rows go into the tenant's tables under the tenant's credential (owner_enter), so the pool's policies
 *    and the bridge tables' policies admit this tenant's rows only, and are read back and checked again;
 * 4. the staging schema is dropped.
 *
 * Any failure rolls everything back: the destination is exactly as it was. The archive is verified whole
 * (signature, counts, checksums) before the transaction starts.
 */
import { randomBytes } from 'crypto';
import type { ClientBase } from 'pg';
import type { IsolationModel } from '../naming';
import { LATEST_VERSION } from '../migrations';
import { migrateTarget, MigrationTarget, targetState } from '../migrate';
import { dataModel, ModelOptions } from '../models';
import { ADMIN_SCHEMA, OWNER_ROLE } from '../roles';
import { ident, join, sql } from '../sql';
import { exec, inTransaction, shareTarget } from '../tx';
import { ArchiveError, ArchiveKey, ArchiveManifest } from './archive';
import { readArchive, verifyArchive } from './archive-reader';
import { canonicalSession, digestTables, Query, tableColumns, TENANT_TABLES } from './tables';

export interface RestoreInto {
  /** The tenant the rows become (the archive's own, or a new id). */
  readonly tenantId: string;
  readonly model: IsolationModel;
  readonly options?: ModelOptions;
  /** The tenant the archive must be of (checked on the same read that loads it). */
  readonly archiveTenantId: string;
  /** Replace what the tenant has (the caller froze it and exported it first); otherwise its tables must be empty. */
  readonly replace?: boolean;
  /** The tenant is frozen (a restore over a live tenant): lift the freeze in the same transaction. */
  readonly thaw?: boolean;
  /**
   * The caller has just verified the archive (verifyArchive) and passes its manifest: it is not read twice before
   * the load. The load reads the file again whole, signature and counts included, inside the transaction, and
   * checks the rows against this manifest, so a file changed in between still writes nothing.
   */
  readonly verified?: ArchiveManifest;
  /**
   * A tenant whose tables already hold exactly this archive's rows (the same counts and checksums, read under its
   * credential) is reported restored, and nothing is written: a restore run again after its answer was lost
   * succeeds instead of failing on the rows it wrote itself. Any other rows still refuse it. (It relies on the
   * migrations being deterministic: one that filled a new column with now() or a random value would make the
   * expected checksums differ between runs, and a rerun would be refused, safely but for good.)
   */
  readonly rerunIsDone?: boolean;
  /**
   * Runs inside the restore's transaction as its last step, once everything is written, checked and cleaned up,
   * just before it commits: a throw rolls the whole restore back (the caller's last look at whether it may still
   * write).
   */
  readonly beforeCommit?: () => Promise<void>;
}

export interface Restored {
  readonly manifest: ArchiveManifest;
  /** The destination's schema version (the archive's, or later: migrated forward). */
  readonly schemaVersion: number;
  readonly rows: Record<string, number>;
  readonly checksums: Record<string, string>;
  /** The tenant already held exactly these rows (`rerunIsDone`): nothing was written. */
  readonly alreadyThere?: boolean;
}

/** Rows per INSERT into the staging tables. */
const LOAD_ROWS = 5000;

export async function restoreArchive(
  client: ClientBase,
  file: string,
  key: ArchiveKey,
  into: RestoreInto,
): Promise<Restored> {
  const manifest = into.verified ?? (await verifyArchive(file, key));
  if (manifest.tenantId !== into.archiveTenantId) {
    throw new ArchiveError(
      file,
      `is tenant "${manifest.tenantId}"'s archive, not "${into.archiveTenantId}"'s; nothing was written`,
    );
  }
  if (manifest.schemaVersion > LATEST_VERSION) {
    throw new ArchiveError(
      file,
      `is at schema version ${manifest.schemaVersion}, newer than this release's latest (${LATEST_VERSION}): restore it with the release that made it, or a later one; nothing was written`,
    );
  }
  const names = new Set(manifest.tables.map((t) => t.name));
  const missing = TENANT_TABLES.filter((t) => !names.has(t.name)).map((t) => t.name);
  if (missing.length > 0 || names.size !== TENANT_TABLES.length) {
    throw new ArchiveError(
      file,
      `does not hold this application's tables (missing: ${missing.join(', ') || 'none'}; it has ${[...names].join(', ')})`,
    );
  }
  const impl = dataModel(into.model);
  const destination = impl.migrationTarget(into.tenantId, into.options ?? {});
  const query: Query = (statement) => client.query(statement.toQuery());
  return inTransaction(client, async () => {
    // The destination's migration lock, shared and held to the end: a migration of it (the pool's shared schema,
    // or the tenant's own) waits for this restore, so the version read below stays the version written to; other
    // restores into the same shared schema do not wait.
    await shareTarget(client, destination.target);
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    const state = await targetState(client, destination.target);
    await client.query('RESET ROLE');
    if (!state || state.status !== 'active') {
      throw new Error(
        `${destination.target} is not provisioned and active in this database: provision the tenant first`,
      );
    }
    if (manifest.schemaVersion > state.version) {
      throw new ArchiveError(
        file,
        `is at schema version ${manifest.schemaVersion}; ${destination.target} is at ${state.version}: migrate the destination first (npm run migrate); nothing was written`,
      );
    }
    const staging: MigrationTarget = {
      target: `restore:${randomBytes(6).toString('hex')}`,
      model: 'silo',
      schema: `tf_restore_${randomBytes(6).toString('hex')}`,
      grantee: OWNER_ROLE,
      kind: 'tenant',
    };
    // 1. The rows into a staging schema at the archive's version, checked against the manifest.
    await migrateTarget(client, staging, manifest.schemaVersion);
    await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
    await exec(client, sql`SET LOCAL search_path = ${ident(staging.schema)}`);
    await canonicalSession(query);
    const archived: Record<string, readonly string[]> = {};
    for (const t of manifest.tables) {
      const actual = await tableColumns(query, t.name);
      if ([...actual].sort().join(',') !== [...t.columns].sort().join(',')) {
        throw new ArchiveError(
          file,
          `table ${t.name} has columns ${t.columns.join(', ')}, but schema version ${manifest.schemaVersion} has ${actual.join(', ')}: it was not made by this application; nothing was written`,
        );
      }
      archived[t.name] = t.columns;
    }
    await load(client, file, key, manifest, staging.schema, into.archiveTenantId);
    const loaded = await digestTables(query, archived);
    expectSame(loaded, manifest, `the rows loaded from ${file}`);
    // 2. Forward to the destination's version.
    let expected: { rows: Record<string, number>; checksums: Record<string, string> } = manifest;
    let columns = archived;
    if (manifest.schemaVersion < state.version) {
      await client.query('RESET ROLE');
      await migrateTarget(client, staging, state.version);
      await exec(client, sql`SET LOCAL ROLE ${ident(OWNER_ROLE)}`);
      await exec(client, sql`SET LOCAL search_path = ${ident(staging.schema)}`);
      columns = {};
      for (const t of TENANT_TABLES) columns[t.name] = await tableColumns(query, t.name);
      expected = await digestTables(query, columns);
    }
    // 3. Into the tenant's tables, under its credential (renewed before each statement: each may be long).
    const enter = () => exec(client, sql`SELECT ${ident(ADMIN_SCHEMA)}.owner_enter(${into.tenantId})`);
    await exec(client, sql`SET LOCAL search_path = ${ident(destination.schema)}`);
    if (into.thaw) await impl.thawWithin(client, into.tenantId, into.options ?? {});
    if (into.replace) {
      for (const t of [...TENANT_TABLES].reverse()) {
        await enter();
        await exec(client, sql`DELETE FROM ${ident(t.name)}`);
      }
    } else {
      let occupied: string | undefined;
      for (const t of TENANT_TABLES) {
        await enter();
        const r = await client.query(sql`SELECT 1 FROM ${ident(t.name)} LIMIT 1`.toQuery());
        if ((r.rowCount ?? 0) > 0) {
          occupied = t.name;
          break;
        }
      }
      if (occupied !== undefined) {
        if (into.rerunIsDone) {
          const there = await digestTables(query, columns, enter);
          if (differences(there, expected).length === 0) {
            await dropStaging(client, staging);
            await into.beforeCommit?.();
            return { manifest, schemaVersion: state.version, ...there, alreadyThere: true };
          }
        }
        throw new Error(
          `tenant "${into.tenantId}" already has rows in ${occupied}: restore over existing data only with --force`,
        );
      }
    }
    for (const t of TENANT_TABLES) {
      const list = join(
        columns[t.name].map((c) => sql`${ident(c)}`),
        ', ',
      );
      await enter();
      await exec(
        client,
        sql`INSERT INTO ${ident(destination.schema)}.${ident(t.name)} (${list}) SELECT ${list} FROM ${ident(staging.schema)}.${ident(t.name)}`,
      );
    }
    const restored = await digestTables(query, columns, enter);
    expectSame(restored, expected, `tenant "${into.tenantId}"'s restored rows`);
    // 4. No staging left behind.
    await dropStaging(client, staging);
    await into.beforeCommit?.();
    return { manifest, schemaVersion: state.version, ...restored };
  });
}

async function dropStaging(client: ClientBase, staging: MigrationTarget): Promise<void> {
  await exec(client, sql`DROP SCHEMA ${ident(staging.schema)} CASCADE`);
  await exec(client, sql`DELETE FROM ${ident(ADMIN_SCHEMA)}.targets WHERE target = ${staging.target}`);
  await client.query('RESET ROLE');
}

/** Loads the archive's rows into the staging schema's tables, LOAD_ROWS per statement. */
async function load(
  client: ClientBase,
  file: string,
  key: ArchiveKey,
  manifest: ArchiveManifest,
  schema: string,
  archiveTenantId: string,
): Promise<void> {
  // One INSERT per batch: each column's values as one text[] parameter, cast to the column's type in SQL.
  const statements = new Map<string, string>();
  for (const t of manifest.tables) {
    const types = await client.query<{ name: string; type: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND a.attnum > 0 AND NOT a.attisdropped`,
      [schema, t.name],
    );
    const typeOf = new Map(types.rows.map((r) => [r.name, r.type]));
    const target = sql`${ident(schema)}.${ident(t.name)}`.toLiteralSql();
    const names = t.columns.map((c) => sql`${ident(c)}`.toLiteralSql());
    statements.set(
      t.name,
      `INSERT INTO ${target} (${names.join(', ')}) SELECT ${t.columns
        .map((c, i) => `u.c${i}::${typeOf.get(c)}`)
        .join(', ')} FROM unnest(${t.columns.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS u(${t.columns
        .map((_, i) => `c${i}`)
        .join(', ')})`,
    );
  }
  let table = '';
  let batch: (string | null)[][] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const width = batch[0].length;
    const arrays = Array.from({ length: width }, (_, i) => batch.map((row) => row[i]));
    await client.query(statements.get(table)!, arrays);
    batch = [];
  };
  for await (const rows of readArchive(file, key, (header) => {
    // The same read that loads the rows says whose they are (the file may have changed since it was verified).
    if (header.tenantId !== archiveTenantId || header.schemaVersion !== manifest.schemaVersion) {
      throw new ArchiveError(file, 'changed while it was being restored; nothing was written');
    }
  })) {
    for (const row of rows) {
      if (row.table !== table) {
        await flush();
        table = row.table;
      }
      batch.push(row.values);
      if (batch.length >= LOAD_ROWS) await flush();
    }
  }
  await flush();
}

function expectSame(
  actual: { rows: Record<string, number>; checksums: Record<string, string> },
  expected: { rows: Record<string, number>; checksums: Record<string, string> },
  what: string,
): void {
  const [t] = differences(actual, expected);
  if (t !== undefined) {
    throw new Error(
      `${what} do not match: ${t} has ${actual.rows[t]} rows with checksum ${actual.checksums[t]}, expected ${expected.rows[t]} with ${expected.checksums[t]}; nothing was written`,
    );
  }
}

/** The tenant tables whose counts or checksums differ. */
function differences(
  actual: { rows: Record<string, number>; checksums: Record<string, string> },
  expected: { rows: Record<string, number>; checksums: Record<string, string> },
): string[] {
  return TENANT_TABLES.map((t) => t.name).filter(
    (t) => actual.rows[t] !== expected.rows[t] || actual.checksums[t] !== expected.checksums[t],
  );
}
