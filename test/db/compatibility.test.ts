import { planFleet } from '../../db/fleet-migrate';
import { MIGRATIONS, type Migration } from '../../db/migrations';
import {
  breakingChanges,
  compatibilityProblems,
  SERVED_SCHEMA_VERSIONS,
} from '../../db/migrations/compatibility';

const latest = MIGRATIONS[MIGRATIONS.length - 1].version;
const migration = (version: number, sql: string, extra: Partial<Migration> = {}): Migration => ({
  version,
  name: `test ${version}`,
  pool: sql,
  tenant: sql,
  ...extra,
});

describe('releases stay compatible both ways (db/migrations/compatibility.ts)', () => {
  test('every shipped migration only expands', () => {
    expect(compatibilityProblems(MIGRATIONS)).toEqual([]);
  });

  test.each([
    ['ALTER TABLE invoices DROP COLUMN reference', 'drops a column'],
    ['ALTER TABLE invoices RENAME COLUMN customer TO client', 'renames a column'],
    ['ALTER TABLE invoices RENAME TO bills', 'renames a table or view'],
    ['DROP VIEW invoice_summaries', 'drops a table or view'],
    ['ALTER TABLE invoices ALTER COLUMN customer TYPE varchar(50)', "changes a column's type"],
    ['ALTER TABLE invoices ALTER COLUMN reference SET NOT NULL', 'makes a column NOT NULL'],
  ])('%s is breaking: %s', (sql, what) => {
    expect(breakingChanges(sql)).toContain(what);
    const problems = compatibilityProblems([...MIGRATIONS, migration(latest + 1, sql)]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`migration ${latest + 1} (test ${latest + 1}) ${what}`);
    expect(problems[0]).toContain('split it into an expand migration');
  });

  test('a data change outside `backfill` is refused (forced RLS would show it no rows); ON/FOR UPDATE are not data changes', () => {
    const problems = compatibilityProblems([
      ...MIGRATIONS,
      migration(latest + 1, 'UPDATE invoices SET notes = customer'),
    ]);
    expect(problems).toEqual([
      expect.stringContaining('changes rows in its pool SQL'),
      expect.stringContaining('changes rows in its tenant SQL'),
    ]);
    expect(
      compatibilityProblems([
        ...MIGRATIONS,
        migration(
          latest + 1,
          'CREATE TABLE t (id int REFERENCES invoices ON UPDATE CASCADE); CREATE POLICY p ON t FOR UPDATE USING (true)',
          {
            backfill: { pool: 'UPDATE invoices SET notes = customer' },
          },
        ),
      ]),
    ).toEqual([]);
  });

  test('adding is not breaking: a column with a default, an index, a table, a backfill', () => {
    expect(
      breakingChanges(`ALTER TABLE invoices ADD COLUMN notes text NOT NULL DEFAULT '';
        CREATE INDEX ON invoices (notes); CREATE TABLE tags (id int); UPDATE invoices SET notes = customer;
        -- DROP COLUMN in a comment is not a statement`),
    ).toEqual([]);
  });

  test('a contract step is allowed only after its expand, once this release requires the expand', () => {
    const expand = migration(latest + 1, 'ALTER TABLE invoices ADD COLUMN client text');
    const contract = migration(latest + 2, 'ALTER TABLE invoices DROP COLUMN customer', {
      contract: { expandedIn: latest + 1 },
    });
    // This release still serves schemas from before the expand: too early.
    expect(compatibilityProblems([...MIGRATIONS, expand, contract])[0]).toContain(
      `but this release still serves schema version ${SERVED_SCHEMA_VERSIONS.oldest}`,
    );
    // The release after the one that shipped the expand (and requires it): allowed.
    expect(compatibilityProblems([...MIGRATIONS, expand, contract], { oldest: latest + 1 })).toEqual([]);
    // A contract naming no earlier expand.
    const orphan = migration(latest + 1, 'ALTER TABLE invoices DROP COLUMN customer', {
      contract: { expandedIn: latest + 5 },
    });
    expect(compatibilityProblems([...MIGRATIONS, orphan])[0]).toContain('is not an earlier migration');
  });

  test('the fleet runner refuses a breaking migration before it touches any database', async () => {
    const breaking = [...MIGRATIONS, migration(latest + 1, 'ALTER TABLE invoices DROP COLUMN reference')];
    const touched: string[] = [];
    const database = {
      name: 'never',
      model: 'bridge' as const,
      options: {},
      connect: async () => {
        touched.push('connected');
        throw new Error('must not connect');
      },
    };
    await expect(planFleet([database], latest + 1, breaking)).rejects.toThrow(
      /refusing to migrate: migration/,
    );
    expect(touched).toEqual([]);
  });
});
