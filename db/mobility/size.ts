/**
 * How much of a tenant there is to move, before moving it: the mobility runner in AWS hands work larger than its
 * function can finish to the cell's runner task (lambda/tenant-provisioner/runner-task.ts).
 */
import { ident, sql } from '../sql';
import type { TenantScope } from '../tenant-context';
import { TENANT_TABLES } from './tables';

/**
 * The bytes of the tenant's rows, estimated as the tenant's principal sees them (its RLS rows or its schema's):
 * each table's row count times the table's average row size on disk (its size over the larger of its planner row
 * count and the tenant's rows, so a table never analyzed errs high, never low). In one snapshot. With `upTo`, it
 * stops counting once the estimate is past it (a huge tenant is not counted row by row to learn it is large).
 */
export async function estimateTenantBytes(scope: TenantScope, upTo?: number): Promise<number> {
  return scope.snapshot(async (tx) => {
    let bytes = 0;
    for (const t of TENANT_TABLES) {
      const meta = await tx.query<{ table_bytes: string; table_rows: string }>(
        sql`SELECT pg_catalog.pg_table_size(c.oid) AS table_bytes, c.reltuples AS table_rows
              FROM pg_catalog.pg_class c
             WHERE c.oid = to_regclass(format('%I.%I', current_schema(), ${t.name}::text))`,
      );
      if (meta.rows.length === 0) {
        throw new Error(`tenant "${scope.tenantId}" has no table ${t.name} its runtime principal can read`);
      }
      const tableBytes = Number(meta.rows[0].table_bytes);
      const tableRows = Number(meta.rows[0].table_rows);
      // Enough rows to pass `upTo` at the table's analyzed row size; all of them when it was never analyzed.
      const cap =
        upTo !== undefined && tableRows > 0
          ? Math.ceil(Math.max(0, upTo - bytes) / Math.max(tableBytes / tableRows, 1)) + 1
          : undefined;
      const counted = await tx.query<{ rows: string }>(
        cap === undefined
          ? sql`SELECT count(*) AS rows FROM ${ident(t.name)}`
          : sql`SELECT count(*) AS rows FROM (SELECT 1 FROM ${ident(t.name)} LIMIT ${cap}::bigint) s`,
      );
      const rows = Number(counted.rows[0].rows);
      bytes += Math.ceil((rows * tableBytes) / Math.max(tableRows, rows, 1));
      if (upTo !== undefined && bytes > upTo) return bytes;
    }
    return bytes;
  });
}
