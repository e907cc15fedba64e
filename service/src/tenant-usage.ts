/**
 * Once a minute, one log line per tenant active in it: requests, throttled, queued, latency. The cell's per-tenant
 * metrics and its sustained-throttling alarm read these lines (lib/constructs/api-service.ts, tenantMetrics).
 */
import type { FastifyInstance } from 'fastify';
import type { TenantLimiter } from './tenant-limits';

export function reportTenantUsage(app: FastifyInstance, limiter: TenantLimiter, intervalMs: number): void {
  const usage = setInterval(() => {
    for (const [tenantId, c] of limiter.drainCounters()) {
      app.log.info(
        {
          tenantId,
          requests: c.requests,
          throttled: c.throttled,
          queued: c.queued,
          latencyMsMax: Math.round(c.latencyMsMax),
          latencyMsAvg: c.completed ? Math.round(c.latencyMsSum / c.completed) : 0,
        },
        'tenant usage',
      );
    }
  }, intervalMs);
  usage.unref();
  app.addHook('onClose', async () => clearInterval(usage));
}
