/** What the HTTP benchmarks share. */
import { ChildProcess, spawn } from 'child_process';
import * as path from 'path';

/** Resolves once `url` answers 2xx; throws after `ms`. */
export async function waitFor(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${ms} ms`);
}

/** Stops a child process (SIGTERM) and resolves when it has exited. */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Starts `npm run local` (scripts/local.ts) in a child process on the given ports with its data in `localDir`. */
export function startLocalPlatform(o: {
  localDir: string;
  port: number;
  pgPort: number;
  args?: string[];
  env?: Record<string, string>;
}): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, '..', 'scripts', 'local.ts'), ...(o.args ?? [])],
    {
      env: {
        ...process.env,
        PORT: String(o.port),
        LOCAL_PG_PORT: String(o.pgPort),
        LOCAL_DIR: o.localDir,
        LOG_LEVEL: 'silent',
        ...o.env,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
}
