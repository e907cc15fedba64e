import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';
import {
  EVENT_SOURCE,
  onboardingExecutionName,
  siloMobilityRunnerName,
  tenantExecutionsPattern,
  tenantMark,
  PROVISIONER_RESOURCE_TYPES,
  BOOTSTRAP_QUALIFIERS,
  RESULT_DETAIL_TYPES,
  SSM_ROOT,
  STACK_NAMES,
  TENANT_CLAIM,
  TENANT_SETTING,
  TENANT_STACK_PREFIX,
} from '../../contracts';

const REPO_ROOT = path.join(__dirname, '..', '..');
/** Every runtime's source: what must take its contract values from contracts/ rather than spell them. */
const SOURCE_DIRS = ['bin', 'lib', 'db', 'lambda', 'service', 'scripts', 'bench'];

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs|cjs|js)$/.test(e.name) ? [p] : [];
  });
}

/** The string literals (and template literal parts) of a file, with their line numbers. Comments are not code. */
function stringLiterals(file: string): { text: string; line: number }[] {
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { text: string; line: number }[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      ts.isTemplateHead(node) ||
      ts.isTemplateMiddle(node) ||
      ts.isTemplateTail(node)
    ) {
      out.push({ text: node.text, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Contract values no other file may spell: a substring anywhere in a literal, or the whole literal. */
const CONTAINED = [
  SSM_ROOT,
  TENANT_CLAIM,
  TENANT_SETTING,
  TENANT_STACK_PREFIX,
  EVENT_SOURCE,
  ...Object.values(BOOTSTRAP_QUALIFIERS),
  ...Object.values(PROVISIONER_RESOURCE_TYPES),
];
const WHOLE = [...Object.values(STACK_NAMES), ...Object.values(RESULT_DETAIL_TYPES)];

describe('contracts', () => {
  test('no source file outside contracts/ spells a contract value itself', () => {
    const offences: string[] = [];
    for (const dir of SOURCE_DIRS) {
      for (const file of sourceFiles(path.join(REPO_ROOT, dir))) {
        for (const { text, line } of stringLiterals(file)) {
          const hit = CONTAINED.find((v) => text.includes(v)) ?? WHOLE.find((v) => text === v);
          if (hit)
            offences.push(
              `${path.relative(REPO_ROOT, file)}:${line} spells "${hit}" in ${JSON.stringify(text)}`,
            );
        }
      }
    }
    expect(offences).toEqual([]);
  });

  test('the contracts module is pure: it imports nothing outside itself', () => {
    for (const file of sourceFiles(path.join(REPO_ROOT, 'contracts'))) {
      const imports = [...fs.readFileSync(file, 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]);
      expect({ file: path.basename(file), imports: imports.filter((i) => !i.startsWith('./')) }).toEqual({
        file: path.basename(file),
        imports: [],
      });
    }
  });

  test('the check finds a contract value spelled in a literal, and ignores it in a comment', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'contracts-'));
    const file = path.join(dir, 'x.ts');
    fs.writeFileSync(file, `// ${SSM_ROOT}/in/a/comment\nconst a = \`\${x}${SSM_ROOT}/platform/x\`;\n`);
    expect(stringLiterals(file).filter(({ text }) => text.includes(SSM_ROOT))).toEqual([
      { text: `${SSM_ROOT}/platform/x`, line: 2 },
    ]);
  });
});

describe('names the IAM patterns rely on', () => {
  const longest = `a${'-b'.repeat(31)}`; // 63 characters, the longest id
  test("an execution's name fits Step Functions' 80 characters and carries one tenant's mark between underscores", () => {
    const name = onboardingExecutionName('offboard', undefined, longest, 1795877511097, '0a1b2c3d');
    expect(name.length).toBeLessThanOrEqual(80);
    expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(onboardingExecutionName('onboard', 'silo', 'wonka', 1, 'ff')).toBe(
      `onboard_silo_${tenantMark('wonka')}_wonka-1-ff`,
    );
    // Only the mark sits between the second and third underscore: an id (no `_` in it) cannot put another's there.
    const other = onboardingExecutionName('onboard', 'silo', `x-${tenantMark('wonka')}`, 1, 'ff');
    expect(other.startsWith(`onboard_silo_${tenantMark('wonka')}_`)).toBe(false);
    expect(onboardingExecutionName('onboard', 'nonsense', 'wonka', 1, 'ff')).toMatch(/^onboard_x_/);
  });

  test("one tenant's executions' IAM pattern needs its id's start as well as its mark", () => {
    const glob = (pattern: string) =>
      new RegExp(
        `^${pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      );
    for (const id of ['wonka', longest]) {
      const pattern = glob(tenantExecutionsPattern('move', 'silo', id));
      expect(pattern.test(onboardingExecutionName('move', 'silo', id, 1795877511097, '0a1b2c3d'))).toBe(true);
      expect(pattern.test(onboardingExecutionName('onboard', 'silo', id, 1, 'ff'))).toBe(false);
      expect(pattern.test(onboardingExecutionName('move', 'pool', id, 1, 'ff'))).toBe(false);
    }
    // An id whose mark collided with wonka's (FNV-1a can be made to) still does not match.
    const pattern = glob(tenantExecutionsPattern('move', 'silo', 'wonka'));
    expect(pattern.test(`move_silo_${tenantMark('wonka')}_evil-1-ff`)).toBe(false);
    expect(pattern.test(`move_silo_${tenantMark('wonka')}_wonkaz-1-ff`)).toBe(false);
  });

  test("a silo's runner name fits Lambda's 64 characters, one per tenant id", () => {
    expect(siloMobilityRunnerName(longest).length).toBeLessThanOrEqual(64);
    expect(siloMobilityRunnerName('wonka')).toMatch(/^tenantforge-silo-[0-9a-f]{16}-mobility$/);
    expect(siloMobilityRunnerName('wonka')).not.toBe(siloMobilityRunnerName('wonka-s'));
    expect(tenantMark('wonka')).toBe(tenantMark('wonka'));
  });
});
