import { describe, expect, it } from 'vitest';
import {
  aggregateRuns,
  headlineRatio,
  ReportError,
  stepMetrics,
  summarize,
  unionIntervals,
  type OpRecordData,
  type RunSamples,
  type StepSample,
} from '../src';

/** A compute op from `startMs` to `endMs`. */
const compute = (name: string, startMs: number, endMs: number, direction: OpRecordData['direction'] = 'forward'): OpRecordData => ({
  name,
  stream: 'compute',
  layer: 0,
  chunk: -1,
  startMs,
  endMs,
  bytesSent: 0,
  direction,
});
/** A comm op from `startMs` to `endMs` that sent `bytesSent` bytes. */
const comm = (name: string, startMs: number, endMs: number, bytesSent = 0, chunk = 0): OpRecordData => ({
  name,
  stream: 'comm',
  layer: 0,
  chunk,
  startMs,
  endMs,
  bytesSent,
  direction: name.endsWith('_bwd') ? 'backward' : name === 'allreduce' ? 'update' : 'forward',
});

describe('stepMetrics', () => {
  it('counts overlapping all-to-alls once in comm_ms (union of intervals)', () => {
    const m = stepMetrics([[compute('route', 0, 1), comm('dispatch', 1, 5, 0, 1), comm('combine', 3, 7, 0, 0), compute('post', 7, 8)]], 10);
    expect(m.commMs).toBeCloseTo(6); // [1,7]
    expect(m.computeMs).toBeCloseTo(2);
    expect(m.exposedCommMs).toBeCloseTo(6);
  });

  it('counts as exposed only the comm time during which the compute stream is idle', () => {
    // compute [0,2] and [5,8]; a dispatch in flight [1,6]: idle and waiting during [2,5].
    const m = stepMetrics([[compute('route', 0, 2), compute('experts', 5, 8), comm('dispatch', 1, 6)]], 10);
    expect(m.computeMs).toBeCloseTo(5);
    expect(m.commMs).toBeCloseTo(5);
    expect(m.exposedCommMs).toBeCloseTo(3);
  });

  it('does not count a compute idle gap with no all-to-all in flight as exposed', () => {
    // compute idle [2,4] but the only dispatch ran during [0,1], hidden behind compute.
    const m = stepMetrics([[compute('route', 0, 2), compute('experts', 4, 6), comm('dispatch', 0, 1)]], 8);
    expect(m.exposedCommMs).toBe(0);
    expect(m.commMs).toBeCloseTo(1);
  });

  it('takes every figure on the worker with the most compute, not the longest timeline', () => {
    const fast: OpRecordData[] = [compute('experts', 0, 5), comm('dispatch', 5, 12)]; // compute 5, exposed 7
    const slow: OpRecordData[] = [compute('experts', 0, 3), comm('dispatch', 3, 5), compute('experts', 5, 9)]; // compute 7
    const m = stepMetrics([fast, slow], 20);
    expect(m.slowestRank).toBe(1);
    expect(m.computeMs).toBeCloseTo(7);
    expect(m.commMs).toBeCloseTo(2);
    expect(m.exposedCommMs).toBeCloseTo(2);
  });

  it('picks the lowest rank when two workers have the same compute time', () => {
    const ops = [compute('experts', 0, 4)];
    expect(stepMetrics([ops, ops, ops], 5).slowestRank).toBe(0);
  });

  it('leaves the allreduce out of comm_ms: it is not an all-to-all', () => {
    const m = stepMetrics([[compute('grads', 0, 1), comm('allreduce', 1, 3), comm('dispatch_bwd', 4, 5), compute('update', 5, 6)]], 6);
    expect(m.commMs).toBeCloseTo(1);
    expect(m.exposedCommMs).toBeCloseTo(1);
  });

  it('counts backward all-to-alls (combine_bwd, dispatch_bwd) in comm_ms', () => {
    const m = stepMetrics([[comm('combine_bwd', 0, 2), comm('dispatch_bwd', 2, 3), compute('experts_bwd', 3, 4)]], 4);
    expect(m.commMs).toBeCloseTo(3);
  });

  it('clips intervals to the step: [0, stepMs]', () => {
    const m = stepMetrics([[compute('experts', -1, 2), comm('combine', 1, 9)]], 5);
    expect(m.computeMs).toBeCloseTo(2);
    expect(m.commMs).toBeCloseTo(4);
    expect(m.exposedCommMs).toBeCloseTo(3);
  });

  it('refuses an empty cluster and a non-positive step time, naming the value', () => {
    expect(() => stepMetrics([], 5)).toThrow(ReportError);
    expect(() => stepMetrics([[]], 0)).toThrow(/stepMs=0/);
  });
});

describe('unionIntervals', () => {
  it('merges touching and overlapping intervals and drops empty ones', () => {
    expect(unionIntervals([[5, 6], [0, 2], [2, 3], [1, 1.5], [7, 7]])).toEqual([[0, 3], [5, 6]]);
  });
});

describe('summarize', () => {
  it('gives min, median and max; the median of an even count is the mean of the middle two', () => {
    expect(summarize([3, 1, 2])).toEqual({ min: 1, median: 2, max: 3 });
    expect(summarize([4, 1, 3, 2])).toEqual({ min: 1, median: 2.5, max: 4 });
    expect(summarize([7])).toEqual({ min: 7, median: 7, max: 7 });
  });

  it('refuses an empty list', () => {
    expect(() => summarize([])).toThrow(/at least 1 value/);
  });
});

/** One worker: compute [0, c], then an all-to-all [c, c + a] sending `bytes`, then compute [c+a, c+a+d]. */
function serialStep(step: number, c: number, a: number, d: number, bytes: number, overhead = 1): StepSample {
  return {
    step,
    stepMs: c + a + d + overhead,
    timelines: [[compute('experts', 0, c), comm('dispatch', c, c + a, bytes), compute('post', c + a, c + a + d)]],
  };
}

/** One worker: compute [0, c + d] with the all-to-all hidden behind it, except `exposed` ms at the end. */
function overlappedStep(step: number, c: number, a: number, exposed: number, bytes: number, overhead = 1): StepSample {
  return {
    step,
    stepMs: c + exposed + overhead,
    timelines: [[compute('experts', 0, c), comm('dispatch', c + exposed - a, c + exposed, bytes)]],
  };
}

const run = (schedule: RunSamples['schedule'], chunks: number, ratio: number, steps: StepSample[], warmupSteps = 1): RunSamples => ({
  schedule,
  chunks,
  ratio,
  warmupSteps,
  steps,
});

describe('aggregateRuns', () => {
  // ratio 1: naive compute 10 (8 + 2), comm 10, step 21; overlapped (4 chunks) compute 10, comm 10, 1 exposed, step 12.
  const naive = run('naive', 1, 1, [serialStep(0, 80, 80, 80, 1), serialStep(1, 8, 10, 2, 2e6), serialStep(2, 8, 10, 2, 2e6), serialStep(3, 8, 10, 2, 2e6)]);
  const over4 = run('overlapped', 4, 1, [overlappedStep(0, 90, 10, 9, 1), overlappedStep(1, 10, 10, 1, 2e6), overlappedStep(2, 10, 10, 2, 2e6, 0), overlappedStep(3, 10, 10, 1, 2e6)]);
  const over2 = run('overlapped', 2, 1, [overlappedStep(0, 90, 10, 9, 1), overlappedStep(1, 10, 10, 4, 2e6), overlappedStep(2, 10, 10, 4, 2e6), overlappedStep(3, 10, 10, 4, 2e6)]);
  const rows = aggregateRuns([over4, naive, over2]);

  it('drops the warm-up steps before taking any figure', () => {
    const n = rows.find((r) => r.schedule === 'naive')!;
    expect(n.steps).toBe(3);
    expect(n.step_ms).toEqual({ min: 21, median: 21, max: 21 });
    expect(n.compute_ms.median).toBeCloseTo(10);
    expect(n.comm_ms.median).toBeCloseTo(10);
    expect(n.exposed_comm_ms.median).toBeCloseTo(10);
  });

  it('orders rows naive first, then by chunk count', () => {
    expect(rows.map((r) => `${r.schedule}${r.chunks}`)).toEqual(['naive1', 'overlapped2', 'overlapped4']);
  });

  it('derives overhead from medians, and ideal, speedup and efficiency from the naive run', () => {
    const n = rows[0]!;
    const o4 = rows[2]!;
    expect(n.overhead).toBeCloseTo((21 - 10) / 10);
    expect(o4.step_ms).toEqual({ min: 12, median: 12, max: 12 });
    expect(o4.exposed_comm_ms).toEqual({ min: 1, median: 1, max: 2 });
    expect(o4.overhead).toBeCloseTo(0.2);
    expect(o4.ideal_ms).toBeCloseTo(10);
    expect(o4.speedup).toBeCloseTo(21 / 12);
    expect(o4.efficiency).toBeCloseTo(10 / 12);
    expect(n.speedup).toBe(1);
    expect(n.efficiency).toBeCloseTo(10 / 21);
  });

  it('marks the overlapped run with the smallest median step as the winner', () => {
    expect(rows.filter((r) => r.winner).map((r) => r.chunks)).toEqual([4]);
    expect(rows[0]!.winner).toBe(false);
  });

  it('computes algbw as all-to-all bytes over comm time, in GB/s', () => {
    // 2e6 bytes in 10 ms = 2e8 bytes/s = 0.2 GB/s.
    expect(rows[0]!.algbw_gbps).toBeCloseTo(0.2);
    expect(rows[0]!.bytes_per_step).toBe(2e6);
  });

  it('leaves ideal, speedup and efficiency null for a setting without a naive run', () => {
    const [row] = aggregateRuns([{ ...over4, ratio: 2 }]);
    expect(row!.ideal_ms).toBeNull();
    expect(row!.speedup).toBeNull();
    expect(row!.efficiency).toBeNull();
    expect(row!.winner).toBe(true);
  });

  it('refuses a run measured twice, a naive run with chunks, and a run that is all warm-up', () => {
    expect(() => aggregateRuns([naive, naive])).toThrow(/two runs of naive C1 ratio 1/);
    expect(() => aggregateRuns([{ ...naive, chunks: 4 }])).toThrow(/chunks=4, but naive runs use 1/);
    expect(() => aggregateRuns([{ ...naive, warmupSteps: 4 }])).toThrow(/4 steps, all within the 4 warm-up steps/);
  });
});

describe('headlineRatio', () => {
  it('is 1 when measured, else the ratio nearest 1 on a log scale', () => {
    expect(headlineRatio([0.25, 1, 4])).toBe(1);
    expect(headlineRatio([0.25, 0.5, 4])).toBe(0.5);
    expect(headlineRatio([0.5, 2])).toBe(0.5);
  });
});
