import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { embeddedDataDirs } from '../../service/src/local/embedded-server';
import { freePort } from '../../service/src/local/free-port';
import { awsErrorMessage } from '../../scripts/cli';

// The local platform's commands as a new user runs them: through npm, in their own processes.
const REPO = path.join(__dirname, '..', '..');

function npm(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync('npm', ['run', '-s', ...args], {
    cwd: REPO,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60000,
  });
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.on('connect', () => (c.destroy(), resolve(true)));
    c.on('error', () => resolve(false));
  });

async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

describe('command line: --help, unknown flags, missing values', () => {
  test('an AWS command without a Region or credentials says what to set', () => {
    const r = npm(['fleet', '--', 'pull', '--out', path.join(os.tmpdir(), 'never-written.json')], {
      AWS_REGION: '',
      AWS_DEFAULT_REGION: '',
      AWS_PROFILE: '',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^fleet pull: .*: set AWS_REGION \(or AWS_PROFILE, with a profile that names a region\)\n$/,
    );
    expect(awsErrorMessage(new Error('Could not load credentials from any providers'))).toBe(
      "Could not load credentials from any providers: configure AWS credentials for the fleet's account (aws configure, AWS_PROFILE or the AWS_* environment variables)",
    );
    expect(awsErrorMessage(new Error('Access denied'))).toBe('Access denied');
  });

  test.each([
    [['local', '--', '--help'], 0, /usage: npm run local/],
    [['token', '--', '--help'], 0, /usage: npm run -s token/],
    [['onboard', '--', '--help'], 0, /--admin-email/],
    [['offboard', '--', '--help'], 0, /usage: npm run offboard/],
    [['local', '--', '--bogus'], 2, /Unknown option '--bogus'/],
    [['token', '--', 'acme', '--user'], 2, /--user <value>' argument missing/],
    [['token', '--', 'acme', '--user', '--help'], 2, /'--user' argument is ambiguous/],
    [['onboard', '--', '--tenant'], 2, /--tenant <value>' argument missing/],
    [['migrate', '--', '--help'], 0, /--canary <n\|ids>/],
    [['cost', '--', '--help'], 0, /--nat-gb <GB per NAT gateway>/],
    [['cost', '--', '--nat-gb', 'lots'], 2, /--nat-gb must be a number 0 or more \(got "lots"\)/],
    [['migrate', '--', '--concurrency', 'many'], 2, /--concurrency must be a whole number \(got "many"\)/],
    [['tenant', '--', '--help'], 0, /move --tenant <id> --to <silo\|pool\|bridge>/],
    [['tenant', '--', 'teleport'], 2, /unknown command "teleport"/],
    [['tenant', '--', 'move', '--tenant', 'acme'], 2, /tenant move: --to required/],
    [
      ['tenant', '--', 'move', '--tenant', 'acme', '--to', 'cloud'],
      2,
      /--to must be silo, pool or bridge \(got "cloud"\)/,
    ],
    [['tenant', '--', 'export', '--tenant', 'acme', '--bogus'], 2, /Unknown option '--bogus'/],
    [['request', '--', '--help'], 0, /signed\nwith your AWS credentials/],
    [['request', '--', 'offboard', '--tenant', 'acme', '--bogus'], 2, /Unknown option '--bogus'/],
    [['request', '--', 'offboard', '--tenant', 'acme', '--model', 'pool'], 2, /offboard takes no --model/],
    [['request', '--', 'teleport', '--tenant', 'acme'], 2, /unknown request "teleport"/],
    [['deploy-policies', '--', '--help'], 0, /--commands {3}print the set-up commands/],
    [['deploy-policies', '--', 'now'], 2, /unexpected argument "now"/],
    [['onboard', '--', '--tenant', 'zed'], 2, /--model <silo\|pool\|bridge> is required/],
    [['cost', '--', '--catalog', 'nope.json'], 1, /pass an existing file with --catalog <path>/],
    [['fleet', '--', 'push'], 2, /unknown command "push": the one command is pull/],
    [['fleet', '--', '--help'], 0, /usage: npm run fleet -- pull/],
  ])('npm run %j exits %i', (args, code, said) => {
    const r = npm(args as string[], { LOCAL_DIR: path.join(os.tmpdir(), 'cli-test-never-created') });
    expect(r.status).toBe(code);
    expect(r.stdout + r.stderr).toMatch(said);
    // Nothing started, and no Node internals in what the user reads.
    expect(r.stdout + r.stderr).not.toMatch(/node:internal|triggerUncaughtException|\n\s+at /);
  });
});

/** One `npm run local` instance of its own (data in `localDir`, free ports), started and stopped through npm. */
async function localInstance(localDir: string) {
  const [port, pgPort] = [await freePort(), await freePort()];
  const env = {
    ...process.env,
    LOCAL_DIR: localDir,
    PORT: String(port),
    LOCAL_PG_PORT: String(pgPort),
    LOG_LEVEL: 'silent',
  };
  const start = async (args: string[] = []) => {
    const p = spawn('npm', ['run', '-s', 'local', ...(args.length ? ['--', ...args] : [])], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = { text: '' };
    p.stdout.on('data', (d) => (out.text += d));
    p.stderr.on('data', (d) => (out.text += d));
    const up = await until(() => out.text.includes('API listening') || p.exitCode !== null, 90000);
    return { p, out, up: up && out.text.includes('API listening') };
  };
  const stop = async (p: ReturnType<typeof spawn>) => {
    p.kill('SIGTERM');
    return until(async () => !(await listening(port)) && !(await listening(pgPort)), 20000);
  };
  const token = () => npm(['token', '--', 'acme'], env).stdout.trim();
  const invoices = async () => {
    const r = await fetch(`http://127.0.0.1:${port}/invoices`, {
      headers: { authorization: `Bearer ${token()}` },
    });
    return {
      status: r.status,
      customers: ((await r.json()) as { invoices?: { customer: string }[] }).invoices?.map((i) => i.customer),
    };
  };
  const addInvoice = async (customer: string) =>
    (
      await fetch(`http://127.0.0.1:${port}/invoices`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ customer, items: [{ description: 'x', quantity: 1, unitPriceCents: 100 }] }),
      })
    ).status;
  return { env, start, stop, invoices, addInvoice, port, pgPort };
}

describe('npm run local: one instance, and every stop signal stops everything', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'local-cli-'));
    fs.chmodSync(dir, 0o755);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a second instance and a reset of a running one are refused with its pid and ports; SIGTERM to npm leaves no process', async () => {
    const [port, pgPort] = [await freePort(), await freePort()];
    const env = {
      ...process.env,
      LOCAL_DIR: path.join(dir, '.local'),
      PORT: String(port),
      LOCAL_PG_PORT: String(pgPort),
      LOG_LEVEL: 'silent',
    };
    const first = spawn('npm', ['run', '-s', 'local'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    first.stdout.on('data', (d) => (output += d));
    first.stderr.on('data', (d) => (output += d));
    try {
      expect(await until(() => output.includes('API listening'), 90000)).toBe(true);
      const lock = JSON.parse(fs.readFileSync(path.join(dir, '.local.lock'), 'utf8'));
      for (const args of [['local'], ['local', '--', '--reset']]) {
        const second = npm(args, env);
        expect(second.status).toBe(1);
        expect(second.stderr).toContain(
          `another instance is already running for this data directory (pid ${lock.pid}, API on port ${port}, PostgreSQL on port ${pgPort})`,
        );
      }
      // npm run migrate works beside the running instance: the plan lists every target, a run has nothing to do.
      const plan = npm(['migrate', '--', '--plan'], env);
      expect(plan.status).toBe(0);
      expect(plan.stdout).toMatch(/\| bridge cell \| bridge:umbrella \| \d+ \| \d+ \| current \|/);
      expect(plan.stdout).toMatch(/\| silo northwind \| silo \|/);
      expect(plan.stdout).toContain('0 of 5 targets would be migrated'); // pool (2 tenants), 2 bridge, 2 silos
      const run = npm(['migrate'], env);
      expect(run.status).toBe(0);
      expect(run.stdout).toContain('| 5 | 0 | 0 | 0 | 5 | 0 |');
      // The reset removed nothing from under the running server.
      expect(fs.existsSync(path.join(dir, '.local', 'pg', 'PG_VERSION'))).toBe(true);
      expect(await listening(port)).toBe(true);

      first.kill('SIGTERM'); // npm itself, as a supervisor or `kill <pid>` would
      expect(await until(async () => !(await listening(port)) && !(await listening(pgPort)), 20000)).toBe(
        true,
      );
      expect(
        await until(() => {
          try {
            process.kill(lock.pid, 0);
            return false;
          } catch {
            return true;
          }
        }, 5000),
      ).toBe(true);
      expect(fs.existsSync(path.join(dir, '.local.lock'))).toBe(false);
    } finally {
      first.kill('SIGKILL');
    }
  }, 150000);

  test('a start after a move serves the tenant where the move put it, its data there, kept copy or not', async () => {
    const { env, start, stop, invoices, addInvoice } = await localInstance(path.join(dir, '.local-moved'));
    let running = await start();
    try {
      expect(running.up).toBe(true);
      expect(await addInvoice('Moved Co')).toBe(201);
      // Beside the running instance, without LOCAL_PG_PORT: its lock file says which port its PostgreSQL is on.
      const moved = npm(['tenant', '--', 'move', '--tenant', 'acme', '--to', 'bridge'], {
        ...env,
        LOCAL_PG_PORT: '',
      });
      expect({ status: moved.status, stderr: moved.stderr }).toEqual({ status: 0, stderr: '' });
      expect(await stop(running.p)).toBe(true);

      // tenants.json still says pool: the start leaves acme in the bridge cell with its kept pool copy.
      running = await start();
      expect(running.out.text).toContain(
        "kept       acme (the registry's: bridge, active, keeps its pool copy (npm run tenant -- purge --tenant acme); tenants.json says pool",
      );
      expect(running.up).toBe(true);
      expect(await invoices()).toEqual({ status: 200, customers: ['Moved Co'] });
      expect(await stop(running.p)).toBe(true);

      const purged = npm(['tenant', '--', 'purge', '--tenant', 'acme'], env);
      expect(purged.status).toBe(0);
      running = await start();
      expect(running.out.text).toContain(
        "kept       acme (the registry's: bridge, active; tenants.json says pool",
      );
      expect(await invoices()).toEqual({ status: 200, customers: ['Moved Co'] });
    } finally {
      await stop(running.p);
      running.p.kill('SIGKILL');
    }
  }, 300000);

  test('--reset starts from empty data, wherever the server keeps it (as root in a 0700 checkout: the shared cache)', async () => {
    // A directory only its owner may enter, as root's home is: as root, the postgres user cannot reach it.
    const closed = path.join(dir, 'closed');
    fs.mkdirSync(closed, { mode: 0o700 });
    const localDir = path.join(closed, '.local');
    const dataDir = embeddedDataDirs(path.join(localDir, 'pg')).inUse;
    if (process.getuid?.() === 0) expect(dataDir).not.toContain(closed);
    const { start, stop, invoices, addInvoice } = await localInstance(localDir);
    let running = await start();
    try {
      expect(running.up).toBe(true);
      expect(running.out.text).toContain(`starting PostgreSQL (data in ${dataDir})`);
      expect(await addInvoice('Before Reset')).toBe(201);
      expect(await stop(running.p)).toBe(true);
      running = await start();
      expect(await invoices()).toEqual({ status: 200, customers: ['Before Reset'] });
      expect(await stop(running.p)).toBe(true);

      running = await start(['--reset']);
      expect(running.out.text).toContain(
        `reset: removed ${localDir}${dataDir !== path.join(localDir, 'pg') ? ` and ${dataDir}` : ''}`,
      );
      expect(running.up).toBe(true);
      expect(await invoices()).toEqual({ status: 200, customers: [] });
    } finally {
      await stop(running.p);
      running.p.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 300000);
});
