/**
 * Whether this task can reach its database, learnt mostly from the requests it serves (passive), so asking costs
 * no query: `/ready` probes the database itself only when nothing has told it anything for `probeEveryMs`, at
 * most once per that interval however often it is asked. A task that has not reached its database for
 * `stuckAfterMs` while serving is stuck: `/health` says so, and the platform replaces it (a failover usually takes
 * 30-120 s, so a shorter outage never replaces every task at once).
 */
export interface DatabaseHealthOptions {
  /** A cheap query against the database. */
  readonly probe: () => Promise<void>;
  /** @default 5000 */
  readonly probeEveryMs?: number;
  /** @default 120000 */
  readonly stuckAfterMs?: number;
  /**
   * Probe the database when nothing has told this task anything for `probeEveryMs`. Off for a database that
   * pauses when idle (the idle-friendly silo profile's Aurora Serverless v2): a probe every few seconds from the
   * health checks would keep it awake, and bill it, for ever. Readiness then comes from requests alone.
   * @default true
   */
  readonly probeWhenIdle?: boolean;
  readonly now?: () => number;
}

export class DatabaseHealth {
  private lastOk: number;
  private lastOutcome = 0;
  private failingSince: number | undefined;
  private probing: Promise<boolean> | undefined;
  private readonly probeEveryMs: number;
  private readonly stuckAfterMs: number;
  private readonly now: () => number;

  constructor(private readonly options: DatabaseHealthOptions) {
    this.now = options.now ?? Date.now;
    this.probeEveryMs = options.probeEveryMs ?? 5000;
    this.stuckAfterMs = options.stuckAfterMs ?? 120000;
    this.lastOk = this.now();
  }

  /** A request reached the database. */
  succeeded(): void {
    this.lastOk = this.lastOutcome = this.now();
    this.failingSince = undefined;
  }

  /** A request could not reach the database (db/faults.ts isUnavailable). */
  failed(): void {
    this.lastOutcome = this.now();
    this.failingSince ??= this.lastOutcome;
  }

  /** Whether the database answers now (from the last outcome, or a probe when that is older than probeEveryMs). */
  async ready(): Promise<boolean> {
    if (this.options.probeWhenIdle === false || this.now() - this.lastOutcome < this.probeEveryMs)
      return this.failingSince === undefined;
    this.probing ??= this.options
      .probe()
      .then(
        () => (this.succeeded(), true),
        () => (this.failed(), false),
      )
      .finally(() => (this.probing = undefined));
    return this.probing;
  }

  /** The database has not been reached for stuckAfterMs although it was tried: replace this task. */
  stuck(): boolean {
    return this.failingSince !== undefined && this.now() - this.lastOk >= this.stuckAfterMs;
  }
}
