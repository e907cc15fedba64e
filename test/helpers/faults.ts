/**
 * Breaking things for real, for the fault-injection suite: a PostgreSQL server of the test's own (stopped,
 * restarted, every process of it paused with SIGSTOP), and a TCP proxy in front of it that can blackhole
 * traffic (sockets stay open, nothing flows: a half-open connection to a primary that went away).
 */
import { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { startEmbeddedServer } from '../../service/src/local/embedded-server';
import { freePort } from '../../service/src/local/free-port';
export { freePort };

/** A PostgreSQL server the test may stop, restart and pause. */
export class ControlledServer {
  private child?: ChildProcess;
  url = '';
  /** Where the server keeps its data (pg-server may relocate it when the postgres user cannot reach `dir`). */
  dataDir = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(dir: string): Promise<ControlledServer> {
    const s = new ControlledServer(dir, await freePort());
    await s.startAgain();
    return s;
  }

  async startAgain(): Promise<void> {
    const { server, url, dataDir } = await startEmbeddedServer(this.dir, this.port, true);
    this.child = server;
    this.url = url;
    this.dataDir = dataDir;
  }

  /** A clean, fast shutdown (what a restart or a failover does to open connections). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.on('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }

  /** Every process of the server (the postmaster and its backends): the pid file names the postmaster. */
  private pids(): number[] {
    const postmaster = Number(
      fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    const children = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
        } catch {
          return false;
        }
      })
      .map(Number);
    return [postmaster, ...children];
  }

  /** The server hangs: every one of its processes stops (the kernel still holds the sockets open). */
  pause(): void {
    for (const pid of this.pids()) process.kill(pid, 'SIGSTOP');
  }

  resume(): void {
    for (const pid of this.pids()) process.kill(pid, 'SIGCONT');
  }
}

/** A TCP proxy to the server that can stop forwarding (blackhole) without closing anything. */
export class BlackholeProxy {
  private blackholed = false;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly target: () => number,
  ) {}

  static async start(target: () => number): Promise<BlackholeProxy> {
    const holder: { proxy?: BlackholeProxy } = {};
    const server = net.createServer((client) => holder.proxy!.accept(client));
    const proxy = (holder.proxy = new BlackholeProxy(server, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy.port = (server.address() as net.AddressInfo).port;
    return proxy;
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target(), '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (d) => {
      if (!this.blackholed) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!this.blackholed) client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Nothing flows either way on any connection, old or new; nothing is closed. */
  blackhole(on: boolean): void {
    this.blackholed = on;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** One line per injected fault, for the run's summary (test/global-teardown.cjs). */
export function recordFault(entry: { fault: string; recovered: boolean; wrongAnswers: number }): void {
  const file = process.env.FAULTS_LEDGER;
  if (file) fs.appendFileSync(file, JSON.stringify(entry) + '\n');
}
