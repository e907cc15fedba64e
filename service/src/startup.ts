/**
 * Starting the API while its database may not be reachable yet (a first deploy racing the bootstrap, a failover
 * during a deploy): the API listens at once (its liveness check answers), answers tenant requests 503 with
 * Retry-After until the database is reachable and its runtime role is confirmed safe, and keeps trying with
 * backoff instead of exiting. A role that is unsafe to serve as is fatal: the process exits and never serves.
 */
import { TenantContextError } from '../../db/tenant-context';

export interface StartupState {
  /** True once the database answered and the runtime role was confirmed safe. */
  ready(): boolean;
  /** Why it is not ready yet (no raw error text: that goes to the log). */
  reason(): string;
}

export interface StartupOptions {
  /** Checks the database and the role: throws a TenantContextError for an unsafe role, anything else to retry. */
  check: () => Promise<void>;
  log: (level: 'info' | 'warn' | 'error' | 'fatal', msg: string, fields?: Record<string, unknown>) => void;
  /** Called when the role is unsafe (never retried). */
  fatal: (e: Error) => void;
  /** @default 1000 */
  readonly firstDelayMs?: number;
  /** @default 15000 */
  readonly maxDelayMs?: number;
}

/** Runs `check` until it passes, with backoff; returns the state the app reads and a promise of readiness. */
export function waitForDatabase(options: StartupOptions): { state: StartupState; done: Promise<void> } {
  let up = false;
  let attempts = 0;
  const state: StartupState = {
    ready: () => up,
    reason: () =>
      attempts === 0 ? 'the API is starting' : 'the API is starting: its database is not reachable yet',
  };
  const done = (async () => {
    let delay = options.firstDelayMs ?? 1000;
    for (;;) {
      attempts++;
      try {
        await options.check();
        up = true;
        options.log('info', 'database reachable and runtime role confirmed safe', { attempts });
        return;
      } catch (e) {
        if (e instanceof TenantContextError) {
          options.log('fatal', 'refusing to serve', { err: e.message });
          options.fatal(e);
          return;
        }
        options.log('warn', 'database not reachable yet; retrying', {
          attempt: attempts,
          inMs: delay,
          err: (e as Error).message,
        });
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, options.maxDelayMs ?? 15000);
    }
  })();
  return { state, done };
}
