/**
 * bench:api's baseline: the same read with no tenant isolation, served the same way. Fastify (the API's
 * framework, its logger off as the API's is in the bench), a pg pool with the API's settings, as the same runtime
 * role, and the same query and result mapping as GET /invoices/:id (db/invoices.ts getInvoice), run directly on
 * the pool against copies of the pool cell's tables without RLS: no token, no registry, no tenant context.
 *
 *   BASELINE_DATABASE_URL=postgres://app_pool:...@127.0.0.1:PORT/local_pool PORT=3999 node --import tsx bench/api-baseline.ts
 *
 * Started by bench/api.ts in a child process, as the API is; never part of the product.
 */
import Fastify from 'fastify';
import { getInvoice } from '../db/invoices';
import type { TenantScope } from '../db/tenant-context';
import { createPool } from '../service/src/db-pool';
import { DEFAULT_RUNTIME_SLOTS } from '../db/slots';

const url = process.env.BASELINE_DATABASE_URL;
if (!url) throw new Error('BASELINE_DATABASE_URL is not set (bench/api.ts sets it)');
// Signing in as the API's connections do: each as a slot role of the runtime role (db/slots.ts).
const pool = createPool(
  { connectionString: url, options: '-c search_path=bench_plain' },
  { slots: DEFAULT_RUNTIME_SLOTS },
  () => undefined,
);
// The same statement getInvoice sends in tenant context, sent here as is: no enter(), no credential, no RLS.
const unisolated = {
  tenantId: 'none',
  model: 'pool',
  run: (statement) => pool.query(statement.toQuery()),
  transaction: () => Promise.reject(new Error('not used by the baseline')),
  snapshot: () => Promise.reject(new Error('not used by the baseline')),
} as TenantScope;

const app = Fastify({ logger: false });
app.get<{ Params: { id: string } }>('/invoices/:id', async (request, reply) => {
  const invoice = await getInvoice(unisolated, request.params.id);
  return invoice ?? reply.code(404).send({ error: 'not_found', message: 'no such invoice' });
});
app.get('/ready', async () => ({ ready: true }));
app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' }).catch((e) => {
  console.error(e);
  process.exit(1);
});
process.on('SIGTERM', () => void app.close().then(() => pool.end()));
