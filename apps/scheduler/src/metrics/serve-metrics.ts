/**
 * `moe serve`'s Prometheus metrics (prom-client), exposed at GET /metrics on its HTTP port.
 *
 * Step figures follow DESIGN.md's meanings (compute, comm and exposed comm on the slowest
 * worker), in seconds. Queue depth and the worker roster are read when Prometheus scrapes, so
 * they are never stale. Labels are bounded: kind (bench, train), schedule (the registry's
 * names), state, outcome, worker_id (the cluster's workers); never a run or job id.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '@moe/log/metrics';
import { stepMetrics, toStepSample } from '@moe/report';
import type { RunInfo } from '../run/train-run';
import type { StepMetrics } from '../run/step-replies';
import type { RegisteredWorker } from '../control/rendezvous';

/** Seconds: a sim step of a few ms up to a real-math step of many seconds. */
export const STEP_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** BullMQ job states counted as the queue's depth (Queue.getJobCounts). */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'] as const;

export type RunKind = 'bench' | 'train';
/** How a job's attempt ended, as the run service saw it. */
export type RunOutcome = 'completed' | 'failed' | 'retried' | 'requeued' | 'cancelled';

export interface ServeMetricsSources {
  /** The roster: registered workers and their last heartbeat (none before the service starts). */
  workers: () => readonly RegisteredWorker[];
  /** Jobs by BullMQ state, read at each scrape. */
  jobCounts: () => Promise<Record<string, number>>;
}

export class ServeMetrics {
  readonly registry = new Registry();
  private readonly stepSeconds: Histogram<'kind' | 'schedule'>;
  private readonly computeSeconds: Histogram<'kind' | 'schedule'>;
  private readonly commSeconds: Histogram<'kind' | 'schedule'>;
  private readonly exposedCommSeconds: Histogram<'kind' | 'schedule'>;
  private readonly steps: Counter<'kind'>;
  private readonly tokens: Counter<'kind'>;
  private readonly tokensPerSecond: Gauge<'kind'>;
  private readonly bytesSent: Counter<'kind'>;
  private readonly attempts: Counter<'kind' | 'outcome'>;
  private readonly retries: Counter<'kind'>;

  constructor(sources: ServeMetricsSources) {
    collectProcessMetrics(this.registry);
    const registers = [this.registry];
    const stepHistogram = (name: string, help: string) =>
      new Histogram({ name, help, labelNames: ['kind', 'schedule'] as const, buckets: STEP_SECONDS_BUCKETS, registers });
    this.stepSeconds = stepHistogram('moe_step_duration_seconds', "A step from the scheduler sending RunStep to the last worker's reply");
    this.computeSeconds = stepHistogram('moe_step_compute_seconds', 'Busy time of the compute stream of the slowest worker in a step');
    this.commSeconds = stepHistogram('moe_step_comm_seconds', 'Time an all-to-all was in flight on the slowest worker in a step');
    this.exposedCommSeconds = stepHistogram('moe_step_exposed_comm_seconds', 'Time the slowest worker sat idle waiting on an all-to-all in a step');
    this.steps = new Counter({ name: 'moe_steps_total', help: 'Steps run to the end', labelNames: ['kind'] as const, registers });
    this.tokens = new Counter({ name: 'moe_tokens_total', help: 'Tokens of the global batches of finished steps', labelNames: ['kind'] as const, registers });
    this.tokensPerSecond = new Gauge({ name: 'moe_tokens_per_second', help: 'Tokens per second of the last step (global batch / step time)', labelNames: ['kind'] as const, registers });
    this.bytesSent = new Counter({
      name: 'moe_alltoall_sent_bytes_total',
      help: 'Payload bytes all ranks sent to peers (per link class: moe_worker_sent_bytes_total on each worker)',
      labelNames: ['kind'] as const,
      registers,
    });
    this.attempts = new Counter({
      name: 'moe_run_attempts_total',
      help: 'Attempts of queued runs by how they ended: completed, failed (no retry left or not retryable), retried, requeued (service stopped), cancelled',
      labelNames: ['kind', 'outcome'] as const,
      registers,
    });
    this.retries = new Counter({ name: 'moe_run_retries_total', help: 'Failed attempts BullMQ retries after its backoff', labelNames: ['kind'] as const, registers });

    new Gauge({
      name: 'moe_queue_jobs',
      help: 'Runs in the queue by BullMQ state (waiting, active, delayed, prioritized, completed, failed)',
      labelNames: ['state'] as const,
      registers,
      async collect() {
        const counts = await sources.jobCounts();
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'moe_registered_workers',
      help: 'Workers registered with the scheduler, by liveness (live, lost)',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const all = sources.workers();
        const live = all.filter((w) => !w.lost).length;
        this.set({ state: 'live' }, live);
        this.set({ state: 'lost' }, all.length - live);
      },
    });
    new Gauge({
      name: 'moe_worker_heartbeat_age_seconds',
      help: 'Time since each live worker last registered or heartbeat',
      labelNames: ['worker_id'] as const,
      registers,
      collect() {
        this.reset(); // a worker that is gone leaves no stale series
        const now = Date.now();
        for (const w of sources.workers()) if (!w.lost) this.set({ worker_id: w.workerId }, (now - w.lastSeen) / 1000);
      },
    });
  }

  /** Records one finished step of a run (`run` says its schedule and its global batch). */
  observeStep(kind: RunKind, step: StepMetrics, run: RunInfo): void {
    const schedule = run.settings.schedule;
    const seconds = step.stepMs / 1000;
    this.stepSeconds.observe({ kind, schedule }, seconds);
    this.steps.inc({ kind });
    this.tokens.inc({ kind }, run.tokensPerStep);
    if (seconds > 0) this.tokensPerSecond.set({ kind }, run.tokensPerStep / seconds);
    this.bytesSent.inc({ kind }, step.bytesSent.reduce((a, b) => a + b, 0));
    // Timelines come with steps that record them (every bench step; train when asked).
    if (step.stepMs > 0 && step.timelines.length > 0 && step.timelines.every((t) => t.length > 0)) {
      const figures = stepMetrics(toStepSample(step).timelines, step.stepMs);
      this.computeSeconds.observe({ kind, schedule }, figures.computeMs / 1000);
      this.commSeconds.observe({ kind, schedule }, figures.commMs / 1000);
      this.exposedCommSeconds.observe({ kind, schedule }, figures.exposedCommMs / 1000);
    }
  }

  /** Counts how a job's attempt ended; a retried one also counts in moe_run_retries_total. */
  countAttempt(kind: RunKind, outcome: RunOutcome): void {
    this.attempts.inc({ kind, outcome });
    if (outcome === 'retried') this.retries.inc({ kind });
  }
}
