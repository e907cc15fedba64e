const { printFaultSummary, printIsolationSummary } = require('./isolation-summary.cjs');

// Runs after Jest's own summary, so the isolation line is the last line of the test output.
module.exports = async function globalTeardown() {
  printFaultSummary();
  printIsolationSummary();
  const child = globalThis.__PG_SERVER__;
  if (!child || child.exitCode !== null) return;
  await new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, 15000);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
};
