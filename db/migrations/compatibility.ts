/**
 * Releases stay compatible both ways. While a release rolls out, tasks of the previous release keep serving
 * tenants whose schemas the new release's migrations have already changed, and tasks of the new release serve
 * tenants the runner has not reached yet. So:
 *
 * - Each release of the API states the oldest schema version it can serve (SERVED_SCHEMA_VERSIONS); for a tenant
 *   whose schema is older the API answers 503 with the reason instead of failing mid-query (service/src/app.ts).
 * - A migration may only add (expand). A statement that would break the release still running (a dropped or
 *   renamed column, table or view, a changed column type, a new NOT NULL) is refused unless the migration is the
 *   contract step of an expand made in an earlier migration that this release already requires: the column's
 *   readers moved to the expanded schema one release before it goes.
 */
import type { Migration } from './index';

/** The schema versions this release of the API serves: `oldest` and every later one. */
export const SERVED_SCHEMA_VERSIONS = {
  /** Migration 4: the bridge tables' policies that admit only verified credentials. */
  oldest: 4,
} as const;

const BREAKING: readonly [RegExp, string][] = [
  [/\bDROP\s+COLUMN\b/i, 'drops a column'],
  [/\bRENAME\s+COLUMN\b|\bRENAME\s+\w+\s+TO\b/i, 'renames a column'],
  [/\bRENAME\s+TO\b/i, 'renames a table or view'],
  [/\bDROP\s+(TABLE|VIEW)\b/i, 'drops a table or view'],
  [/\bALTER\s+(COLUMN\s+)?\w+\s+(SET\s+DATA\s+)?TYPE\b/i, "changes a column's type"],
  [/\bSET\s+NOT\s+NULL\b/i, 'makes a column NOT NULL'],
];

/** What in `sql` would break a release that still reads the old schema. */
export function breakingChanges(sql: string): string[] {
  const code = sql.replace(/--[^\n]*/g, '');
  return BREAKING.filter(([re]) => re.test(code)).map(([, what]) => what);
}

/**
 * The problems with `migrations` for a release that serves `served.oldest` and later: every breaking statement
 * must be in a contract step (`contract.expandedIn`) whose expand is an earlier migration this release requires.
 */
export function compatibilityProblems(
  migrations: readonly Migration[],
  served: { readonly oldest: number } = SERVED_SCHEMA_VERSIONS,
): string[] {
  const problems: string[] = [];
  for (const m of migrations) {
    for (const [rendering, text] of [
      ['pool', m.pool],
      ['tenant', m.tenant],
    ] as const) {
      if (
        /(?<!\b(?:ON|FOR)\s+)\bUPDATE\s+\w+|\bDELETE\s+FROM\b|\bINSERT\s+INTO\b/i.test(
          text.replace(/--[^\n]*/g, ''),
        )
      ) {
        problems.push(
          `migration ${m.version} (${m.name}) changes rows in its ${rendering} SQL, where forced Row-Level Security shows the owner no rows (it would change nothing): move it to \`backfill.${rendering}\``,
        );
      }
    }
    const changes = [
      ...new Set([
        ...breakingChanges(m.pool),
        ...breakingChanges(m.tenant),
        ...breakingChanges(m.bridge ?? ''),
      ]),
    ];
    if (changes.length === 0) continue;
    const where = `migration ${m.version} (${m.name})`;
    if (!m.contract) {
      problems.push(
        `${where} ${changes.join(' and ')}, which breaks the release still serving while it rolls out: split it into an expand migration (add the new, keep the old) in one release and a contract migration (\`contract: { expandedIn: <the expand's version> }\`) in a later one`,
      );
      continue;
    }
    const expand = migrations.find((x) => x.version === m.contract!.expandedIn);
    if (!expand || expand.version >= m.version) {
      problems.push(`${where} names expand ${m.contract.expandedIn}, which is not an earlier migration`);
    } else if (expand.version > served.oldest) {
      problems.push(
        `${where} contracts what migration ${expand.version} expanded, but this release still serves schema version ${served.oldest}: ship the expand (and an API that no longer reads what it replaces) in an earlier release, then raise SERVED_SCHEMA_VERSIONS.oldest to ${expand.version}`,
      );
    }
  }
  return problems;
}

export class IncompatibleMigrationError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`refusing to migrate: ${problems.join('; ')}`);
    this.name = 'IncompatibleMigrationError';
  }
}

export function assertCompatible(migrations: readonly Migration[], served = SERVED_SCHEMA_VERSIONS): void {
  const problems = compatibilityProblems(migrations, served);
  if (problems.length) throw new IncompatibleMigrationError(problems);
}
