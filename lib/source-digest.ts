/**
 * The deploy job's source integrity. The app's source reaches CodeBuild as a CDK asset in the bootstrap bucket;
 * whoever can write that bucket could change what the job deploys with the bootstrap roles. So the synth records
 * a digest of the source it uploads, and the job's buildspec (part of the project, which only CloudFormation
 * changes) checks the unpacked source against it before installing or running anything.
 *
 * The algorithm is written once, as the JavaScript below: the synth evaluates it here, and the buildspec runs
 * the same text with `node -e`, so the two cannot drift apart.
 */

/** Path names left out of the source (at any depth), as the asset leaves them out. */
export const SOURCE_EXCLUDES = [
  'node_modules',
  'cdk.out',
  'cdk.out.*',
  '.local',
  '.git',
  'coverage',
  '.bench',
];

/**
 * `(root, excludes) => hex`: SHA-256 over every regular file under root, sorted by its relative path
 * ('/'-separated), each as "<path>\0<sha256 of its bytes>\n"; `excludes` are top-level names only. Symbolic
 * links and other special files are refused (a link could point the build anywhere). Plain ES2020 with
 * `require`: it runs in Node as it is.
 */
export const DIGEST_JS = `function sourceDigest(root, excludes) {
  const fs = require('fs'), path = require('path'), crypto = require('crypto');
  const skip = (name) => excludes.some((e) => e.endsWith('*') ? name.startsWith(e.slice(0, -1)) : name === e);
  const files = [];
  const walk = (dir, rel) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (rel === '' && skip(entry.name)) continue;
      const r = rel ? rel + '/' + entry.name : entry.name;
      if (entry.isDirectory()) walk(path.join(dir, entry.name), r);
      else if (entry.isFile()) files.push(r);
      else throw new Error('source holds ' + r + ', which is not a regular file or directory');
    }
  };
  walk(root, '');
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const all = crypto.createHash('sha256');
  for (const f of files) {
    const h = crypto.createHash('sha256').update(fs.readFileSync(path.join(root, f))).digest('hex');
    all.update(f + '\\0' + h + '\\n');
  }
  return all.digest('hex');
}`;

const compiled = new Function('require', `return (${DIGEST_JS});`)(require) as (
  root: string,
  excludes: readonly string[],
) => string;

/** The digest of the source under `root`, as the deploy job computes it. */
export function sourceDigest(root: string, excludes: readonly string[] = SOURCE_EXCLUDES): string {
  return compiled(root, excludes);
}

/**
 * The command the deploy job runs in its source directory before anything else: the check, with the expected
 * digest written into the command (no environment variable a build override could change). It exits non-zero, naming both
 * digests, when the source is not what the synth uploaded.
 */
export function verifierCommand(expected: string, excludes: readonly string[] = SOURCE_EXCLUDES): string {
  if (!/^[0-9a-f]{64}$/.test(expected)) throw new Error(`not a SHA-256 digest: ${expected}`);
  const script = [
    `const sourceDigest = ${DIGEST_JS};`,
    `const expected = process.argv[1];`,
    `const actual = sourceDigest(process.cwd(), ${JSON.stringify(excludes)});`,
    `if (actual !== expected) {`,
    `  console.error('the deploy source is not the one the synth uploaded (digest ' + actual + ', expected ' + expected + '): someone changed the source bundle; nothing was deployed');`,
    `  process.exit(3);`,
    `}`,
    `console.log('deploy source verified: ' + actual);`,
  ].join('\n');
  return `node -e "$(echo ${Buffer.from(script).toString('base64')} | base64 -d)" ${expected}`;
}
