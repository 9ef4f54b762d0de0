/**
 * A worker's own Prometheus metrics (prom-client), served by `moe worker --metrics-port`: its
 * steps as it ran them, its compute / comm / exposed-comm time (DESIGN.md's meanings, on this
 * worker's own timeline), the bytes it sent by link class, and Node's default process metrics.
 * Labels are bounded: no run id, no step.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '@moe/log/metrics';
import { stepMetrics } from '@moe/report';
import type { WorkerStepRecord } from '../worker-node';
import type { LinkClassLabel } from './counting-transport';

/** Seconds: a sim step of a few ms up to a real-math step of many seconds. */
export const STEP_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly steps: Counter;
  private readonly stepSeconds: Histogram;
  private readonly computeSeconds: Histogram;
  private readonly commSeconds: Histogram;
  private readonly exposedCommSeconds: Histogram;
  private readonly bytesSent: Counter<'link_class'>;

  constructor(workerId: string) {
    this.registry.setDefaultLabels({ worker_id: workerId });
    collectProcessMetrics(this.registry);
    const registers = [this.registry];
    this.steps = new Counter({ name: 'moe_worker_steps_total', help: 'Steps this worker ran to the end', registers });
    const histogram = (name: string, help: string) => new Histogram({ name, help, buckets: STEP_SECONDS_BUCKETS, registers });
    this.stepSeconds = histogram('moe_worker_step_duration_seconds', "This worker's own measure of a step, from RunStep's receipt to its reply");
    this.computeSeconds = histogram('moe_worker_step_compute_seconds', 'Busy time of the compute stream in a step');
    this.commSeconds = histogram('moe_worker_step_comm_seconds', 'Time an all-to-all was in flight in a step');
    this.exposedCommSeconds = histogram('moe_worker_step_exposed_comm_seconds', 'Time the compute stream sat idle waiting on an all-to-all in a step');
    this.bytesSent = new Counter({
      name: 'moe_worker_sent_bytes_total',
      help: 'Payload bytes this worker sent to peers, by link class of the sim link model (intra, inter node; unmodeled without one)',
      labelNames: ['link_class'],
      registers,
    });
  }

  /** Counts one frame's bytes (called by CountingTransport). */
  countBytes = (linkClass: LinkClassLabel, bytes: number): void => {
    this.bytesSent.inc({ link_class: linkClass }, bytes);
  };

  /** Records one finished step. */
  observeStep = (step: WorkerStepRecord): void => {
    this.steps.inc();
    this.stepSeconds.observe(step.stepMs / 1000);
    if (step.stepMs <= 0 || step.timeline.length === 0) return;
    const figures = stepMetrics([step.timeline as Parameters<typeof stepMetrics>[0][number]], step.stepMs);
    this.computeSeconds.observe(figures.computeMs / 1000);
    this.commSeconds.observe(figures.commMs / 1000);
    this.exposedCommSeconds.observe(figures.exposedCommMs / 1000);
  };
}
