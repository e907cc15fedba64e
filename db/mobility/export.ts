/**
 * Export: exactly one tenant's rows to an archive (archive.ts), read by the tenant's own runtime principal
 * through its TenantScope (its credential, its RLS policies or its role), so an export can never include another
 * tenant's rows (M3); one REPEATABLE READ READ ONLY transaction, so it is one consistent snapshot; streamed, so
 * memory stays flat whatever the tenant's size.
 */
import type { TenantScope } from '../tenant-context';
import { ArchiveKey, ArchiveManifest, ArchiveTable } from './archive';
import { ArchiveWriter } from './archive-writer';
import { canonicalSession, readRows, tableColumns, TENANT_TABLES } from './tables';

export async function exportTenant(
  scope: TenantScope,
  file: string,
  key: ArchiveKey,
  options: { schemaVersion: number; encrypt?: boolean },
): Promise<ArchiveManifest> {
  return scope.snapshot(async (tx) => {
    await canonicalSession(tx.query);
    const tables: ArchiveTable[] = [];
    for (const t of TENANT_TABLES) {
      const columns = await tableColumns(tx.query, t.name);
      if (columns.length === 0) {
        throw new Error(`tenant "${scope.tenantId}" has no table ${t.name} its runtime principal can read`);
      }
      tables.push({ name: t.name, columns });
    }
    const writer = await ArchiveWriter.open(
      file,
      { tenantId: scope.tenantId, model: scope.model, schemaVersion: options.schemaVersion, tables },
      key,
      { encrypt: options.encrypt },
    );
    try {
      for (const [i, t] of TENANT_TABLES.entries()) {
        await readRows(tx.query, t, tables[i].columns, (rows) => writer.rows(t.name, rows));
      }
      return await writer.finish();
    } catch (e) {
      await writer.abort();
      throw e;
    }
  });
}
