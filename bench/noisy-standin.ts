/**
 * The stand-in of `npm run bench:noisy`: a server that answers the flood as the platform does, without the
 * platform. It serves the page it is given (STANDIN_PAGE) at the standard tier's rows budget (rows per second and
 * burst, in pages of 100), and refuses the rest with 429 after the same spread wait as the API. Sending the flood
 * here instead of to the platform measures what the flood costs the quiet tenants on this machine by its mere
 * presence (the flood client, the loopback network, the kernel): the floor under any API's ratio. Reads
 * STANDIN_PORT; prints `ready` once listening.
 */
import * as http from 'http';
import { TIER_LIMITS } from '../service/src/tenant-limits';

const page = process.env.STANDIN_PAGE ?? '';
const { rowsPerSecond, rowsBurst } = TIER_LIMITS.standard;
const PAGE_ROWS = 100;
const REFUSAL_DELAY_MS = 250; // the API's default (service/src/app.ts)
let budget = rowsBurst;
let last = performance.now();

http
  .createServer((_req, res) => {
    const now = performance.now();
    budget = Math.min(rowsBurst, budget + ((now - last) / 1000) * rowsPerSecond);
    last = now;
    if (budget >= PAGE_ROWS) {
      budget -= PAGE_ROWS;
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(page);
      return;
    }
    setTimeout(
      () =>
        res
          .writeHead(429, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' })
          .end('{"error":"too_many_requests","limit":"rows per second","message":"stand-in"}'),
      REFUSAL_DELAY_MS * (0.5 + Math.random()),
    );
  })
  .listen(Number(process.env.STANDIN_PORT), '127.0.0.1', () => process.stdout.write('ready\n'));
