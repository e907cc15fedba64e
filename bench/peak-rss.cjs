// Loaded with --require into every node process of a benchmark run: appends its peak RSS (KiB) to a file.
const fs = require('fs');
const out = process.env.BENCH_RSS_FILE;
if (out) {
  process.on('exit', () => {
    fs.appendFileSync(out, `${process.resourceUsage().maxRSS}\n`);
  });
}
