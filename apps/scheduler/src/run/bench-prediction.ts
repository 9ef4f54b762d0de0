/**
 * What the cluster simulator predicts for each row of `moe bench`: the same op list the workers
 * run (buildSchedule), the sim backend's cost model (same modeled layer, profile, compute scale,
 * dilation and accumulation) and links (same node size, dilation and latency scale), on the
 * engine's virtual clock (`predictStep` in @moe/sim).
 *
 * Three host costs the modeled device does not have are measured on the calibration runs, never on
 * the rows predicted, and named in report.json's config:
 * - host transport time of the all-to-alls: the calibration's `host_comm_ms` of a naive step over
 *   the frames a rank sends in it, charged per frame, one all-to-all at a time (frames here are
 *   tens of KiB, so a message's fixed cost dominates, and a process's transport works on one
 *   thread): an overlapped run with C chunks sends C times the frames;
 * - control-plane time of a step: scheduler-measured step_ms minus the workers' op span (the
 *   RunStep round trip and its wake-ups), the median over the calibration steps;
 * - compute overshoot: the naive calibration's measured compute beyond the model, per compute op.
 */
import { buildSchedule, NAIVE, type Op } from '@moe/schedule';
import { encodedBytes } from '@moe/comm';
import { denseParams, initParams, type ModelConfig } from '@moe/model';
import { CostModel, predictStep, resolveModeledModel, type ModeledModelInput, type StepPrediction } from '@moe/sim';
import type { StepSample } from '@moe/report';

export interface BenchPredictionSettings {
  model: ModelConfig;
  workers: number;
  nodeSize: number;
  profile: string;
  dilation: number;
  accumulationSteps: number;
  latencyScale: number;
  modeled: ModeledModelInput;
  tokensPerRank: number;
  dispatchCodec: 'f32' | 'bf16' | 'fp8';
  combineCodec: 'f32' | 'bf16';
  /** Host transport ms of one naive step's all-to-alls (calibrated). */
  hostCommMs: number;
  /** Control-plane ms a step (measured on the calibration steps, `controlPlaneMs`). */
  hostStepMs: number;
  /** Host ms a compute op takes beyond its model (measured on a calibration run, `computeOvershootMs`). */
  hostComputeOpMs: number;
}

/** Median over `steps` of step_ms minus the latest op end of any worker (ms). */
export function controlPlaneMs(steps: readonly StepSample[]): number {
  const gaps = steps.map((s) => s.stepMs - Math.max(...s.timelines.flatMap((ops) => ops.map((op) => op.endMs)))).sort((a, b) => a - b);
  if (gaps.length === 0) return 0;
  const mid = gaps.length >> 1;
  return Math.max(0, gaps.length % 2 ? gaps[mid]! : (gaps[mid - 1]! + gaps[mid]!) / 2);
}

/**
 * Host ms a compute op takes beyond its model: the naive calibration run's measured compute_ms
 * (at `dilation`, compute scale 1) minus the simulator's, over the step's compute ops. Timers
 * fire late by up to a tick and the slowest worker's experts get a few more rows than the mean.
 */
export function computeOvershootMs(s: Omit<BenchPredictionSettings, 'hostComputeOpMs'>, dilation: number, measuredComputeMs: number): number {
  const schedule = { schedule: NAIVE, chunks: 1 };
  const predicted = predictBenchRow({ ...s, dilation, hostComputeOpMs: 0 }, schedule, 1).computeMs;
  const ops = buildSchedule({ kind: NAIVE, layers: s.model.layers, chunks: 1 }).filter((o) => o.stream === 'compute').length;
  return Math.max(0, (measuredComputeMs - predicted) / ops);
}

/** f32 values the sim backend all-reduces: the real model's trainable dense parameters and its expert counts. */
function allReduceValues(model: ModelConfig): number {
  const dense = denseParams(initParams(model)).filter((p) => p.trainable).reduce((n, p) => n + p.tensor.data.length, 0);
  return dense + model.layers * model.routedExperts;
}

/** The predicted step of `schedule` at `computeScale` under `s`. */
export function predictBenchRow(s: BenchPredictionSettings, schedule: { schedule: string; chunks: number }, computeScale: number): StepPrediction {
  const modeled = resolveModeledModel(s.modeled);
  const costs = new CostModel(modeled, s.profile, {
    worldSize: s.workers,
    layers: s.model.layers,
    computeScale,
    dilation: s.dilation,
    accumulationSteps: s.accumulationSteps,
  });
  const ops: Op[] = buildSchedule({ kind: schedule.schedule, layers: s.model.layers, chunks: schedule.chunks });
  const H = modeled.hiddenSize;
  const dispatchRowBytes = encodedBytes(1, H, s.dispatchCodec) + 4;
  const combineRowBytes = encodedBytes(1, H, s.combineCodec);
  // Frames a rank sends in a naive step's all-to-alls: 4 a layer, one to each other rank.
  const naiveFrames = 4 * s.model.layers * (s.workers - 1);
  return predictStep({
    ops,
    costs,
    tokensPerRank: s.tokensPerRank,
    topK: s.model.topK,
    worldSize: s.workers,
    nodeSize: s.nodeSize,
    latencyScale: s.latencyScale,
    // Payload (fp8: data and block scales) plus the dispatch's expert id, an int32 a row.
    dispatchRowBytes,
    combineRowBytes,
    allReduceValues: allReduceValues(s.model),
    hostMsPerFrame: naiveFrames > 0 ? s.hostCommMs / naiveFrames : 0,
    hostMsPerStep: s.hostStepMs,
    hostMsPerComputeOp: s.hostComputeOpMs,
  });
}

/** 1 - |predicted - measured| / measured: 1 is a perfect prediction. */
export const alignment = (predicted: number, measured: number): number => 1 - Math.abs(predicted - measured) / measured;
