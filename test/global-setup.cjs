// Starts one real PostgreSQL server for the whole test run (unless DATABASE_URL names one), and a ledger file
// where the isolation tests record every leak attempt. Test files each create their own databases.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

module.exports = async function globalSetup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantforge-test-'));
  fs.chmodSync(dir, 0o755);
  process.env.ISOLATION_LEDGER = path.join(dir, 'isolation-ledger.jsonl');
  fs.writeFileSync(process.env.ISOLATION_LEDGER, '');
  // The fault-injection suite's record: each fault injected, whether the API recovered, its wrong answers.
  process.env.FAULTS_LEDGER = path.join(dir, 'faults-ledger.jsonl');
  fs.writeFileSync(process.env.FAULTS_LEDGER, '');
  if (process.env.DATABASE_URL) {
    process.env.TEST_DATABASE_URL = process.env.DATABASE_URL;
    return;
  }
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      path.join(__dirname, '..', 'scripts', 'pg-server.mjs'),
      '--dir',
      path.join(dir, 'pg'),
      '--port',
      String(port),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('embedded PostgreSQL did not start within 60 s')), 60000);
    child.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line).url);
      }
    });
    child.on('exit', (code) =>
      reject(new Error(`embedded PostgreSQL exited with code ${code} before it was ready`)),
    );
  });
  process.env.TEST_DATABASE_URL = url;
  globalThis.__PG_SERVER__ = child;
};
