/** GET /metrics: the registry's exposition in Prometheus' text format, for the HTTP server. */
import { Router } from 'express';
import type { Registry } from 'prom-client';

export function metricsRouter(registry: Registry): Router {
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    try {
      res.type(registry.contentType).send(await registry.metrics());
    } catch (error) {
      res.status(500).type('text/plain').send(`metrics failed: ${(error as Error).message}\n`);
    }
  });
  return router;
}
