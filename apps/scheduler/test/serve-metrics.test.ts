/**
 * ServeMetrics without a process: a step's figures land in the histograms with DESIGN.md's
 * meanings (slowest worker's compute, its all-to-all time, the part of it the compute stream
 * waited on), in seconds; the roster gauges follow the workers; no series names a run.
 */
import { describe, expect, it } from 'vitest';
import { ServeMetrics } from '../src/metrics/index';
import type { RegisteredWorker } from '../src/control/rendezvous';
import type { StepMetrics } from '../src/run/step-replies';
import type { RunInfo } from '../src/run/train-run';

const op = (name: string, stream: string, startMs: number, endMs: number, bytesSent = 0) => ({ name, stream, startMs, endMs, bytesSent, layer: 0, chunk: -1, direction: 'forward' });

/** Rank 0: compute 0-40 and 60-100 ms, dispatch in flight 30-70 ms (exposed: 40-60 = 20 ms). Rank 1: less compute. */
const step = {
  step: 0,
  stepMs: 100,
  bytesSent: [1000, 500],
  timelines: [
    [op('experts', 'compute', 0, 40), op('dispatch', 'comm', 30, 70, 1000), op('experts', 'compute', 60, 100)],
    [op('experts', 'compute', 0, 30), op('dispatch', 'comm', 30, 70, 500)],
  ],
} as unknown as StepMetrics;
const run = { runId: 'job-1-a1', settings: { schedule: 'overlapped' }, tokensPerStep: 4096 } as unknown as RunInfo;

const worker = (workerId: string, lastSeen: number, lost = false) => ({ workerId, lastSeen, lost }) as RegisteredWorker;

/** The value of `series` (name{labels} as exposed) in the registry's text. */
async function value(metrics: ServeMetrics, series: string): Promise<number | undefined> {
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('ServeMetrics', () => {
  it("observes a step's time, compute, comm and exposed comm in seconds, with its tokens and bytes", async () => {
    const metrics = new ServeMetrics({ workers: () => [], jobCounts: async () => ({}) });
    metrics.observeStep('train', step, run);
    const labels = '{kind="train",schedule="overlapped"}';
    expect(await value(metrics, `moe_step_duration_seconds_sum${labels}`)).toBeCloseTo(0.1, 9);
    expect(await value(metrics, `moe_step_compute_seconds_sum${labels}`)).toBeCloseTo(0.08, 9);
    expect(await value(metrics, `moe_step_comm_seconds_sum${labels}`)).toBeCloseTo(0.04, 9);
    expect(await value(metrics, `moe_step_exposed_comm_seconds_sum${labels}`)).toBeCloseTo(0.02, 9);
    expect(await value(metrics, 'moe_tokens_total{kind="train"}')).toBe(4096);
    expect(await value(metrics, 'moe_tokens_per_second{kind="train"}')).toBeCloseTo(40960, 6);
    expect(await value(metrics, 'moe_alltoall_sent_bytes_total{kind="train"}')).toBe(1500);
    expect(await metrics.registry.metrics()).not.toContain('job-1-a1');
  });

  it('reads the queue and the roster at each scrape; a lost worker has no heartbeat series', async () => {
    let roster = [worker('w-0', Date.now() - 2_000), worker('w-1', Date.now())];
    const metrics = new ServeMetrics({ workers: () => roster, jobCounts: async () => ({ waiting: 3, active: 1, failed: 2 }) });
    expect(await value(metrics, 'moe_queue_jobs{state="waiting"}')).toBe(3);
    expect(await value(metrics, 'moe_queue_jobs{state="completed"}')).toBe(0);
    expect(await value(metrics, 'moe_registered_workers{state="live"}')).toBe(2);
    expect(await value(metrics, 'moe_worker_heartbeat_age_seconds{worker_id="w-0"}')).toBeGreaterThanOrEqual(2);
    roster = [worker('w-0', Date.now() - 20_000, true), worker('w-1', Date.now())];
    expect(await value(metrics, 'moe_registered_workers{state="lost"}')).toBe(1);
    expect(await value(metrics, 'moe_worker_heartbeat_age_seconds{worker_id="w-0"}')).toBeUndefined();
  });

  it('counts attempts by outcome, and a retried one as a retry', async () => {
    const metrics = new ServeMetrics({ workers: () => [], jobCounts: async () => ({}) });
    metrics.countAttempt('bench', 'retried');
    metrics.countAttempt('bench', 'completed');
    expect(await value(metrics, 'moe_run_attempts_total{kind="bench",outcome="retried"}')).toBe(1);
    expect(await value(metrics, 'moe_run_retries_total{kind="bench"}')).toBe(1);
  });
});
