// Summarises the isolation tests' ledger: every leak attempt they made and how many leaked.
const fs = require('fs');

function printIsolationSummary() {
  const file = process.env.ISOLATION_LEDGER;
  if (!file || !fs.existsSync(file)) return;
  const entries = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  if (entries.length === 0) return;
  const leaks = entries.filter((e) => e.leaked);
  for (const e of leaks) process.stderr.write(`LEAK ${e.id}: ${e.what}: ${e.detail}\n`);
  const ids = new Set(entries.map((e) => e.id));
  process.stderr.write(
    `isolation: ${entries.length} attempts, ${leaks.length} leaks (${ids.size} vectors: ${[...ids].sort().join(' ')})\n`,
  );
}
// Summarises the fault-injection suite's ledger: faults injected, recovered, and wrong answers seen.
function printFaultSummary() {
  const file = process.env.FAULTS_LEDGER;
  if (!file || !fs.existsSync(file)) return;
  const entries = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  if (entries.length === 0) return;
  const recovered = entries.filter((e) => e.recovered).length;
  const wrong = entries.reduce((n, e) => n + e.wrongAnswers, 0);
  for (const e of entries.filter((x) => !x.recovered || x.wrongAnswers > 0)) {
    process.stderr.write(`FAULT ${e.fault}: recovered ${e.recovered}, wrong answers ${e.wrongAnswers}\n`);
  }
  process.stderr.write(
    `faults: ${entries.length} injected, ${recovered} recovered, ${wrong} wrong answers\n`,
  );
}

module.exports = { printIsolationSummary, printFaultSummary };
