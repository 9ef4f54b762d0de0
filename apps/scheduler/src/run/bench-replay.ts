/**
 * `moe bench --replay`: the bench's rows from the cost and link models alone, in milliseconds of
 * CPU and no processes. The same op lists, modeled layer, links and ratio sweep as `moe bench`
 * (predictBenchRow in bench-prediction.ts replays them on the simulator's virtual clock), with
 * no host terms (predictBenchRow without host costs): what the schedule itself can reach, apart from what the loopback
 * transport and timers add. Deterministic, so it is the way to choose between schedules.
 *
 * The dilation is set so a naive step's modeled all-to-alls take `commTargetMs`, and each ratio
 * r sets the compute scale so the naive step's modeled compute is r times that, as the bench's
 * calibration does with measured figures.
 */
import { FB_OVERLAP, NAIVE, OVERLAPPED } from '@moe/schedule';
import type { StepPrediction } from '@moe/sim';
import { predictBenchRow, type BenchStepSettings } from './bench-prediction';
import type { BenchOptions } from './run-bench';
import { BENCH_SIM_SETTINGS, benchConfigs, modeledModel } from './bench-model';

export type ReplayOptions = Pick<
  BenchOptions,
  'workers' | 'ratios' | 'chunks' | 'fbChunks' | 'microBatches' | 'tokensPerRank' | 'dispatchCodec' | 'combineCodec' | 'profile' | 'commTargetMs' | 'hiddenSize' | 'nodeSize'
>;

export interface ReplayRow extends StepPrediction {
  schedule: string;
  chunks: number;
  ratio: number;
  /** naive step / this step, at the same ratio. */
  speedup: number;
  /** ideal / this step; ideal = max(compute, comm) of the naive step at the same ratio. */
  efficiency: number;
  /** exposed comm / comm of this step. */
  exposedShare: number;
}

/** Every (ratio, schedule) row of a bench with these options, predicted with no host costs. */
export function replayBench(o: ReplayOptions): ReplayRow[] {
  const { model } = benchConfigs(o.workers, o.microBatches);
  const settings = (dilation: number): BenchStepSettings => ({
    model,
    workers: o.workers,
    nodeSize: o.nodeSize,
    profile: o.profile,
    dilation,
    ...BENCH_SIM_SETTINGS,
    modeled: modeledModel(o.hiddenSize, model.routedExperts),
    tokensPerRank: o.tokensPerRank,
    microBatches: o.microBatches,
    dispatchCodec: o.dispatchCodec,
    combineCodec: o.combineCodec,
  });
  const naive = { schedule: NAIVE, chunks: 1 };
  // Every modeled time is linear in the dilation, so one probe at 1 sets it exactly.
  const probe = predictBenchRow(settings(1), naive, 1);
  const s = settings(o.commTargetMs / probe.commMs);
  const base = predictBenchRow(s, naive, 1);
  const schedules = [
    naive,
    ...o.chunks.map((chunks) => ({ schedule: OVERLAPPED, chunks })),
    ...o.fbChunks.map((chunks) => ({ schedule: FB_OVERLAP, chunks })),
  ];
  const rows: ReplayRow[] = [];
  for (const ratio of o.ratios) {
    const scale = (ratio * base.commMs) / base.computeMs;
    const predicted = schedules.map((schedule) => ({ ...schedule, ...predictBenchRow(s, schedule, scale) }));
    const reference = predicted[0]!;
    const ideal = Math.max(reference.computeMs, reference.commMs);
    for (const p of predicted) {
      rows.push({
        ...p,
        ratio,
        speedup: reference.stepMs / p.stepMs,
        efficiency: ideal / p.stepMs,
        exposedShare: p.commMs > 0 ? p.exposedCommMs / p.commMs : 0,
      });
    }
  }
  return rows;
}

/** The rows as a plain-text table, one line each. */
export function formatReplay(rows: readonly ReplayRow[]): string {
  const head = ['ratio', 'schedule', 'step ms', 'compute ms', 'comm ms', 'exposed ms', 'exposed %', 'speedup', 'efficiency'];
  const lines = rows.map((r) => [
    String(r.ratio),
    `${r.schedule} C${r.chunks}`,
    r.stepMs.toFixed(1),
    r.computeMs.toFixed(1),
    r.commMs.toFixed(1),
    r.exposedCommMs.toFixed(1),
    (100 * r.exposedShare).toFixed(0),
    `${r.speedup.toFixed(2)}x`,
    r.efficiency.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const pad = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [pad(head), ...lines.map(pad)].join('\n');
}
