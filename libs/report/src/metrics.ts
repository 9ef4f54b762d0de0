import { ALL_TO_ALL_OPS } from './ops';
import { computeDrifts, modeledComputeMs } from './modeled';
import {
  ReportError,
  type OpRecordData,
  type Range,
  type ResultRow,
  type RunSamples,
  type SettingSummary,
} from './types';

/** A time interval [start, end) in ms. */
export type Interval = readonly [start: number, end: number];

/**
 * The union of `intervals` as disjoint intervals in increasing order, each clipped to
 * [`from`, `to`] (ms). Empty intervals are dropped.
 */
export function unionIntervals(intervals: readonly Interval[], from = -Infinity, to = Infinity): Interval[] {
  const clipped = intervals
    .map(([s, e]): Interval => [Math.max(s, from), Math.min(e, to)])
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [s, e] of clipped) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** Total length (ms) of disjoint intervals. */
export function totalLength(disjoint: readonly Interval[]): number {
  return disjoint.reduce((sum, [s, e]) => sum + (e - s), 0);
}

/** Length (ms) of the overlap of two lists of disjoint, sorted intervals. */
export function overlapLength(a: readonly Interval[], b: readonly Interval[]): number {
  let i = 0;
  let j = 0;
  let sum = 0;
  while (i < a.length && j < b.length) {
    const [as, ae] = a[i]!;
    const [bs, be] = b[j]!;
    sum += Math.max(0, Math.min(ae, be) - Math.max(as, bs));
    if (ae <= be) i++;
    else j++;
  }
  return sum;
}

/** The figures of one step, all in ms, all taken on the slowest worker. */
export interface StepFigures {
  /** Busy time of the compute stream (union of compute ops) on the slowest worker. */
  computeMs: number;
  /** Time at least one all-to-all op (`ALL_TO_ALL_OPS`) was in flight on that worker. */
  commMs: number;
  /** Time that worker had an all-to-all in flight and its compute stream idle: |comm \ compute|. */
  exposedCommMs: number;
  /** The slowest worker: largest compute busy time; the lowest rank on a tie. */
  slowestRank: number;
}

const computeIntervals = (ops: readonly OpRecordData[]): Interval[] =>
  ops.filter((op) => op.stream === 'compute').map((op) => [op.startMs, op.endMs]);
const allToAllIntervals = (ops: readonly OpRecordData[]): Interval[] =>
  ops.filter((op) => op.stream === 'comm' && ALL_TO_ALL_OPS.has(op.name)).map((op) => [op.startMs, op.endMs]);

/**
 * The report's per-step figures (DESIGN.md, "What a report measures").
 *
 * @param timelines [world_size][ops]: each rank's ops of one step, ms from its receipt of RunStep.
 * @param stepMs the step as the scheduler measured it (ms); op intervals are clipped to [0, stepMs].
 * @returns figures in ms of the slowest worker (the one whose compute stream was busy longest).
 */
export function stepMetrics(timelines: readonly (readonly OpRecordData[])[], stepMs: number): StepFigures {
  if (timelines.length === 0) throw new ReportError('timelines has 0 ranks; a step needs at least 1 worker timeline');
  if (!(stepMs > 0) || !Number.isFinite(stepMs)) throw new ReportError(`stepMs=${stepMs} must be a positive number of ms`);
  let slowestRank = 0;
  let slowestCompute: Interval[] = [];
  let computeMs = -1;
  timelines.forEach((ops, rank) => {
    const busy = unionIntervals(computeIntervals(ops), 0, stepMs);
    const length = totalLength(busy);
    if (length > computeMs) {
      computeMs = length;
      slowestRank = rank;
      slowestCompute = busy;
    }
  });
  const comm = unionIntervals(allToAllIntervals(timelines[slowestRank]!), 0, stepMs);
  const commMs = totalLength(comm);
  const exposedCommMs = commMs - overlapLength(comm, slowestCompute);
  return { computeMs, commMs, exposedCommMs: Math.max(0, exposedCommMs), slowestRank };
}

/** Bytes one rank sent in all-to-all ops (`ALL_TO_ALL_OPS`) in one step. */
export function allToAllBytes(ops: readonly OpRecordData[]): number {
  return ops.reduce((sum, op) => (op.stream === 'comm' && ALL_TO_ALL_OPS.has(op.name) ? sum + op.bytesSent : sum), 0);
}

/** The median of `values`; the mean of the two middle values for an even count; NaN for none. */
export function median(values: readonly number[]): number {
  return values.length === 0 ? NaN : summarize(values).median;
}

/** {min, median, max} of `values` (any unit; the result has the same). Throws on an empty list. */
export function summarize(values: readonly number[]): Range {
  if (values.length === 0) throw new ReportError('summarize needs at least 1 value, got 0');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const med = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { min: sorted[0]!, median: med, max: sorted[sorted.length - 1]! };
}

/** `naive C1 ratio 1`: names a run in messages. */
export const runName = (run: Pick<RunSamples, 'schedule' | 'chunks' | 'ratio'>): string =>
  `${run.schedule} C${run.chunks} ratio ${run.ratio}`;

/** A result row before the figures that need the setting's naive run. */
export type MeasuredRow = Omit<ResultRow, 'ideal_ms' | 'speedup' | 'efficiency' | 'winner'>;

/**
 * Figures of one run over its measured steps (warm-up dropped): each `*_ms` as {min, median,
 * max} over steps, `overhead` from medians, `algbw_gbps` and `bytes_per_step` as medians.
 */
export function aggregateRun(run: RunSamples): MeasuredRow {
  const name = runName(run);
  if (!Number.isInteger(run.chunks) || run.chunks < 1) throw new ReportError(`${name}: chunks=${run.chunks} must be a positive integer`);
  if (run.schedule === 'naive' && run.chunks !== 1) throw new ReportError(`${name}: chunks=${run.chunks}, but naive runs use 1`);
  if (!(run.ratio > 0) || !Number.isFinite(run.ratio)) throw new ReportError(`${name}: ratio=${run.ratio} must be a positive number`);
  if (!Number.isInteger(run.warmupSteps) || run.warmupSteps < 0) {
    throw new ReportError(`${name}: warmupSteps=${run.warmupSteps} must be a non-negative integer`);
  }
  const measured = run.steps.slice(run.warmupSteps);
  if (measured.length === 0) {
    throw new ReportError(`${name}: ${run.steps.length} steps, all within the ${run.warmupSteps} warm-up steps; nothing to measure`);
  }
  const step: number[] = [];
  const compute: number[] = [];
  const comm: number[] = [];
  const exposed: number[] = [];
  const algbw: number[] = [];
  const bytes: number[] = [];
  const slowestCount = new Map<number, number>();
  const modeled: number[] = [];
  const drifts: number[] = [];
  for (const sample of measured) {
    const m = stepMetrics(sample.timelines, sample.stepMs);
    const model = modeledComputeMs(sample.timelines[m.slowestRank]!);
    if (model !== null) modeled.push(model);
    drifts.push(...computeDrifts(sample.timelines));
    const sent = allToAllBytes(sample.timelines[m.slowestRank]!);
    step.push(sample.stepMs);
    compute.push(m.computeMs);
    comm.push(m.commMs);
    exposed.push(m.exposedCommMs);
    bytes.push(sent);
    // bytes / ms = 10^3 bytes/s; / 10^6 more gives 10^9 bytes/s.
    algbw.push(m.commMs > 0 ? sent / m.commMs / 1e6 : 0);
    slowestCount.set(m.slowestRank, (slowestCount.get(m.slowestRank) ?? 0) + 1);
  }
  const stepRange = summarize(step);
  const computeRange = summarize(compute);
  let slowestRank = 0;
  let most = 0;
  for (const [rank, count] of [...slowestCount].sort((a, b) => a[0] - b[0])) {
    if (count > most) [slowestRank, most] = [rank, count];
  }
  return {
    schedule: run.schedule,
    chunks: run.chunks,
    ratio: run.ratio,
    steps: measured.length,
    warmup_steps: run.warmupSteps,
    step_ms: stepRange,
    compute_ms: computeRange,
    comm_ms: summarize(comm),
    exposed_comm_ms: summarize(exposed),
    overhead: computeRange.median > 0 ? (stepRange.median - computeRange.median) / computeRange.median : 0,
    algbw_gbps: median(algbw),
    bytes_per_step: median(bytes),
    slowest_rank: slowestRank,
    modeled_compute_ms: modeled.length > 0 ? summarize(modeled) : null,
    compute_drift: drifts.length > 0 ? median(drifts) : null,
  };
}

/**
 * One result row per run (schedule, chunks, ratio), with the figures that compare it to its
 * setting's naive run: `ideal_ms` = max(compute, comm) of the naive run (medians), `speedup` =
 * naive step / this step, `efficiency` = ideal / this step; `winner` marks the overlapped run
 * with the smallest median step of each setting. Rows are ordered by ratio, naive first, then
 * by chunks. Throws `ReportError` on two runs of the same (schedule, chunks, ratio).
 */
export function aggregateRuns(runs: readonly RunSamples[]): ResultRow[] {
  const seen = new Set<string>();
  for (const run of runs) {
    const key = runName(run);
    if (seen.has(key)) throw new ReportError(`two runs of ${key}; each (schedule, chunks, ratio) is measured once`);
    seen.add(key);
  }
  const measured = runs.map(aggregateRun).sort(
    (a, b) => a.ratio - b.ratio || Number(a.schedule !== 'naive') - Number(b.schedule !== 'naive') || a.chunks - b.chunks,
  );
  const rows: ResultRow[] = [];
  for (const ratio of ratiosOf(measured)) {
    const setting = measured.filter((r) => r.ratio === ratio);
    const naive = setting.find((r) => r.schedule === 'naive');
    const ideal = naive ? Math.max(naive.compute_ms.median, naive.comm_ms.median) : null;
    const best = bestOverlapped(setting);
    for (const row of setting) {
      const { algbw_gbps, bytes_per_step, slowest_rank, ...times } = row;
      rows.push({
        ...times,
        ideal_ms: ideal,
        speedup: naive ? naive.step_ms.median / row.step_ms.median : null,
        efficiency: ideal === null ? null : ideal / row.step_ms.median,
        algbw_gbps,
        bytes_per_step,
        slowest_rank,
        winner: row === best,
      });
    }
  }
  return rows;
}

/** The overlapped row of one setting with the smallest median step (fewer chunks on a tie). */
function bestOverlapped<T extends MeasuredRow>(setting: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const row of setting) {
    if (row.schedule !== 'overlapped') continue;
    if (!best || row.step_ms.median < best.step_ms.median) best = row;
  }
  return best;
}

/** The distinct ratios of `rows`, increasing. */
export function ratiosOf(rows: readonly Pick<ResultRow, 'ratio'>[]): number[] {
  return [...new Set(rows.map((r) => r.ratio))].sort((a, b) => a - b);
}

/** Per setting: naive against the best overlapped run (see `SettingSummary`). */
export function summarizeSettings(rows: readonly ResultRow[]): SettingSummary[] {
  return ratiosOf(rows).map((ratio) => {
    const setting = rows.filter((r) => r.ratio === ratio);
    const naive = setting.find((r) => r.schedule === 'naive');
    const best = setting.find((r) => r.winner);
    const ideal = naive?.ideal_ms ?? null;
    return {
      ratio,
      naive_step_ms: naive?.step_ms.median ?? null,
      overlapped_step_ms: best?.step_ms.median ?? null,
      ideal_ms: ideal,
      speedup: naive && best ? naive.step_ms.median / best.step_ms.median : null,
      efficiency: ideal !== null && best ? ideal / best.step_ms.median : null,
      overhead_naive: naive?.overhead ?? null,
      overhead_overlapped: best?.overhead ?? null,
      winning_chunks: best?.chunks ?? null,
    };
  });
}

/** The headline ratio: 1 when present, else the ratio nearest 1 on a log scale (the smaller on a tie). */
export function headlineRatio(ratios: readonly number[]): number {
  if (ratios.length === 0) throw new ReportError('no settings measured; a report needs at least 1 run');
  return [...ratios].sort((a, b) => Math.abs(Math.log2(a)) - Math.abs(Math.log2(b)) || a - b)[0]!;
}
