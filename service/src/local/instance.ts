/**
 * One `npm run local` per data directory. The running instance records its pid and ports in `<dir>.lock` (beside
 * the directory, so `--reset` cannot delete it from under a live server); a second start, or a reset while one
 * runs, is refused with that pid and those ports. A lock whose process is gone is taken over.
 */
import * as fs from 'fs';

export interface Instance {
  readonly pid: number;
  readonly port: number;
  readonly pgPort: number;
}

export class InstanceRunning extends Error {
  constructor(
    readonly running: Instance,
    lockFile: string,
  ) {
    super(
      `another instance is already running for this data directory (pid ${running.pid}, API on port ${running.port}, PostgreSQL on port ${running.pgPort}): ` +
        `stop it first (Ctrl-C in its terminal, or kill ${running.pid}), then start again. (Its lock: ${lockFile})`,
    );
    this.name = 'InstanceRunning';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The instance holding `dir`, if one is running. */
export function runningInstance(dir: string): Instance | undefined {
  try {
    const held = JSON.parse(fs.readFileSync(`${dir}.lock`, 'utf8')) as Instance;
    return Number.isInteger(held.pid) && held.pid !== process.pid && alive(held.pid) ? held : undefined;
  } catch {
    return undefined;
  }
}

/** Takes `dir` for this process, or throws InstanceRunning. Returns the release function. */
export function acquireInstance(dir: string, me: Omit<Instance, 'pid'>): () => void {
  const lockFile = `${dir}.lock`;
  const mine = JSON.stringify({ pid: process.pid, ...me });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lockFile, mine, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (fs.readFileSync(lockFile, 'utf8') === mine) fs.rmSync(lockFile);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const running = runningInstance(dir);
      if (running) throw new InstanceRunning(running, lockFile);
      fs.rmSync(lockFile, { force: true }); // its process is gone: take it over
    }
  }
  throw new Error(`could not take ${lockFile}: another start is racing this one`);
}

/**
 * The PostgreSQL port the commands beside `npm run local` (onboard, offboard, migrate, tenant) use: LOCAL_PG_PORT
 * when set, else the port of the instance running on `dir` (its lock file says), else the default 54329.
 */
export function localPgPort(dir: string): number {
  if (process.env.LOCAL_PG_PORT) return Number(process.env.LOCAL_PG_PORT);
  return runningInstance(dir)?.pgPort ?? 54329;
}
