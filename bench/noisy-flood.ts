/**
 * The flood of `npm run bench:noisy`, in a process of its own: its 64 connections' answers (pages of 100 invoices)
 * are parsed here, not on the event loop that times the quiet tenants' requests, so a quiet request's latency is
 * the platform's and not the load generator's. Reads FLOOD_URL, FLOOD_TOKEN, FLOOD_SECONDS; prints `ready` once
 * loaded, starts when a line arrives on its standard input (so its start-up is not inside the timed run), and then
 * prints one JSON line.
 */
import autocannon from 'autocannon';

async function main(): Promise<void> {
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.pause();
  const r = await autocannon({
    url: process.env.FLOOD_URL!,
    headers: { authorization: `Bearer ${process.env.FLOOD_TOKEN}` },
    connections: 64,
    duration: Number(process.env.FLOOD_SECONDS),
  });
  const count = (status: string) => r.statusCodeStats?.[status as '429']?.count ?? 0;
  process.stdout.write(
    JSON.stringify({
      ok: r['2xx'],
      throttled: count('429'),
      unavailable: count('503'),
      other: r.non2xx - count('429') - count('503'),
    }) + '\n',
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
