/**
 * What the cluster simulator predicts for each row of `moe bench`: the same op list the workers
 * run (buildSchedule), the sim backend's cost model (same modeled layer, profile, compute scale,
 * dilation and accumulation) and links (same node size, dilation and latency scale), on the
 * engine's virtual clock (`predictStep` in @moe/sim), plus what the local cluster's host adds
 * (`HostCosts`), every term measured in the same bench run on other runs than the rows:
 * - the data plane's ms per byte: the transport line's all-to-all on the plane the rows used;
 * - how a compute op's overshoot grows with its length: the two calibration probes (naive, at
 *   two dilations, so the same ops at two lengths);
 * - per compute op, per all-to-all, per all-reduce and per step: the probes of the row's schedule
 *   (same chunks) at the rows' dilation and compute scale 1 (`probeExtras`), one run before each
 *   of the schedule's rows, pooled: their own launch gaps, frame costs and waits (an overlapped
 *   schedule's event loop serves frames while it launches compute).
 */
import { buildSchedule, type Op } from '@moe/schedule';
import { encodedBytes } from '@moe/comm';
import { denseParams, initParams, type ModelConfig } from '@moe/model';
import { CostModel, predictStep, resolveModeledModel, type HostCosts, type ModeledModelInput, type StepPrediction, type StepPredictionInput } from '@moe/sim';

export interface BenchStepSettings {
  model: ModelConfig;
  workers: number;
  nodeSize: number;
  profile: string;
  dilation: number;
  accumulationSteps: number;
  latencyScale: number;
  modeled: ModeledModelInput;
  tokensPerRank: number;
  /** Micro-batches a step, every schedule alike (the op lists have them; tokens are shared out over them). */
  microBatches: number;
  dispatchCodec: 'f32' | 'bf16' | 'fp8';
  combineCodec: 'f32' | 'bf16';
}

export interface ScheduleRef {
  schedule: string;
  chunks: number;
}

/** f32 values the sim backend all-reduces: the real model's trainable dense parameters and its expert counts. */
function allReduceValues(model: ModelConfig): number {
  const dense = denseParams(initParams(model)).filter((p) => p.trainable).reduce((n, p) => n + p.tensor.data.length, 0);
  return dense + model.layers * model.routedExperts;
}

/** The step of `schedule` at `computeScale` (and `dilation`, default the settings') as predictStep takes it, without host costs. */
export function benchStepInput(s: BenchStepSettings, schedule: ScheduleRef, computeScale: number, dilation = s.dilation): StepPredictionInput {
  const modeled = resolveModeledModel(s.modeled);
  const costs = new CostModel(modeled, s.profile, {
    worldSize: s.workers,
    layers: s.model.layers,
    computeScale,
    dilation,
    accumulationSteps: s.accumulationSteps,
  });
  const ops: Op[] = buildSchedule({ kind: schedule.schedule, layers: s.model.layers, chunks: schedule.chunks, microBatches: s.microBatches });
  const H = modeled.hiddenSize;
  return {
    ops,
    costs,
    tokensPerRank: s.tokensPerRank,
    topK: s.model.topK,
    worldSize: s.workers,
    nodeSize: s.nodeSize,
    latencyScale: s.latencyScale,
    // Payload (fp8: data and block scales) plus the dispatch's expert id, an int32 a row.
    dispatchRowBytes: encodedBytes(1, H, s.dispatchCodec) + 4,
    combineRowBytes: encodedBytes(1, H, s.combineCodec),
    allReduceValues: allReduceValues(s.model),
  };
}

/** The predicted step of `schedule` at `computeScale`, on `host`. */
export function predictBenchRow(s: BenchStepSettings, schedule: ScheduleRef, computeScale: number, host?: HostCosts): StepPrediction {
  return predictStep({ ...benchStepInput(s, schedule, computeScale), host });
}

/**
 * ms per byte a rank sends through the data plane, from the transport line's all-to-all of
 * `world` processes at `mbps` (10^6 bytes/s, all ranks together): each rank moves its share.
 */
export function perByteMsOf(mbps: number, world: number): number {
  return mbps > 0 ? world / (mbps * 1e3) : 0;
}

/** 1 - |predicted - measured| / measured: 1 is a perfect prediction. */
export const alignment = (predicted: number, measured: number): number => 1 - Math.abs(predicted - measured) / measured;
