import * as fs from 'fs';
import * as path from 'path';

const REPO_ROOT = path.join(__dirname, '..', '..');
const DOC = 'docs/threat-model.md';

interface Row {
  readonly id: string;
  readonly control: string;
  readonly test: string;
}

/** The rows of the threat model's tables: `| id | leak | what stops it | test |`. */
function rows(): Row[] {
  return fs
    .readFileSync(path.join(REPO_ROOT, DOC), 'utf8')
    .split('\n')
    .map((line) => line.split('|').map((c) => c.trim()))
    .filter((cells) => cells.length === 6 && /^(API|[PBICMN]\d+)$/.test(cells[1]))
    .map((cells) => ({ id: cells[1], control: cells[3], test: cells[4] }));
}

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === '__snapshots__' ? [] : files(p);
    return /\.(ts|cjs|mjs)$/.test(e.name) ? [p] : [];
  });
}

describe('threat model', () => {
  test('every row has a control and a test that exists, unless it is marked open', () => {
    const problems: string[] = [];
    for (const row of rows()) {
      if (row.control === 'open') continue;
      const m = /^(test\/\S+\.ts): (.+)$/.exec(row.test);
      if (!m) {
        problems.push(`${row.id}: test "${row.test}" is not "<file>: <test name>"`);
        continue;
      }
      const file = path.join(REPO_ROOT, m[1]);
      if (!fs.existsSync(file)) problems.push(`${row.id}: ${m[1]} does not exist`);
      else if (!fs.readFileSync(file, 'utf8').includes(m[2]))
        problems.push(`${row.id}: ${m[1]} has no test "${m[2]}"`);
    }
    expect(problems).toEqual([]);
    expect(rows().length).toBeGreaterThan(20);
  });

  test('every row id cited in code or tests is a row of the threat model', () => {
    const known = new Set(rows().map((r) => r.id));
    const cited = new Map<string, string>();
    for (const dir of ['bin', 'lib', 'db', 'lambda', 'service', 'scripts', 'bench', 'test', 'contracts']) {
      for (const file of files(path.join(REPO_ROOT, dir))) {
        for (const m of fs.readFileSync(file, 'utf8').matchAll(/\b([PBICM]\d{1,2})\b/g)) {
          cited.set(m[1], path.relative(REPO_ROOT, file));
        }
      }
    }
    const unresolved = [...cited]
      .filter(([id]) => !known.has(id))
      .map(([id, file]) => `${id} (cited in ${file})`);
    expect(unresolved).toEqual([]);
    expect(cited.size).toBeGreaterThan(10);
  });

  test('the isolation ledger ids the tests record are rows of the threat model', () => {
    const known = new Set(rows().map((r) => r.id));
    const recorded = new Set<string>();
    for (const file of files(path.join(REPO_ROOT, 'test'))) {
      for (const m of fs.readFileSync(file, 'utf8').matchAll(/tryLeak\(\s*'([^']+)'/g)) recorded.add(m[1]);
    }
    expect([...recorded].filter((id) => !known.has(id))).toEqual([]);
  });
});
