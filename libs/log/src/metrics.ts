/**
 * prom-client's default process metrics (CPU, memory, event-loop lag, GC, handles), minus the
 * three that break Prometheus' naming rules: `nodejs_active_{handles,requests,resources}_total`
 * are gauges named like counters (`promtool check metrics` refuses them). Nothing is lost: the
 * same counts are in `nodejs_active_handles`, `nodejs_active_requests` and
 * `nodejs_active_resources`, by type. A separate entry point (`@moe/log/metrics`), so a process
 * that serves no metrics never loads prom-client.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

export const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULT_METRICS) registry.removeSingleMetric(name);
}
