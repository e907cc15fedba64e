/**
 * Tenant data mobility: export one tenant to an archive, restore an archive into a tenant (the same, a new id,
 * another model), and the pieces a move is made of (freeze, wait, export, restore, verify). The orchestration
 * of a move (registry status `moving`, provisioning the destination, switching) is the platform's:
 * service/src/local/mobility.ts.
 */
export * from './archive';
export { ArchiveWriter } from './archive-writer';
export { verifyArchive, readArchive, MAX_ARCHIVE_LINE, type ArchiveRow } from './archive-reader';
export { exportTenant } from './export';
export { estimateTenantBytes } from './size';
export { restoreArchive, type RestoreInto, type Restored } from './restore';
export { waitForOlderTransactions, FreezeTimeout } from './freeze';
export { holdTenantLock, TenantBusy } from './lock';
export { TENANT_TABLES, digestTables, canonicalSession, tableColumns } from './tables';
export { ensureRestoreReceipts, restoreReceipt, recordReplaced, endRestore } from './receipts';
