export { ServeMetrics, QUEUE_STATES, STEP_SECONDS_BUCKETS, type RunKind, type RunOutcome, type ServeMetricsSources } from './serve-metrics';
export { metricsRouter } from './metrics-router';
