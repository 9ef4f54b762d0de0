/**
 * What a cluster simulation needs: the model, the parallel layout, the schedule, the device and
 * the wire formats. Every field is one input a person can name the source of (a spec sheet, a
 * paper, a flag); `presets.ts` gives DeepSeek-V3's with their sources.
 */
import { deviceProfile, type DeviceProfile } from '../devices';
import type { ModeledModel } from '../cost-model';

export interface ClusterModel extends ModeledModel {
  /** Transformer layers. */
  layers: number;
  /** The first `denseLayers` layers have a dense FFN instead of experts (DeepSeek-V3: 3). */
  denseLayers: number;
  /** Intermediate size of those dense FFNs (DeepSeek-V3: 18432). */
  denseFfnSize: number;
  /** k: routed experts per token. */
  topK: number;
  /** Node-limited routing: a token's experts on at most this many nodes (DeepSeek-V3: 4); Infinity for none. */
  maxNodesPerToken: number;
}

export interface ClusterLayout {
  gpus: number;
  /** Pipeline ranks (devices along one pipeline); DualPipeV puts 2 stages on each. */
  pipelineRanks: number;
  /** GPUs of one expert-parallel group (inside one pipeline stage). */
  expertParallel: number;
  /** GPUs per node. */
  nodeSize: number;
}

export interface WireFormats {
  /** Bytes a value of the forward dispatch (DeepSeek-V3: fp8, 1). */
  dispatch: number;
  /** Bytes a value of the forward combine (bf16, 2). */
  combine: number;
  /** Bytes a value of the backward all-to-alls (bf16, 2). */
  backward: number;
  /** Bytes a value of activations and gradients sent between stages (bf16, 2). */
  pipeline: number;
  /** Bytes a gradient value in the ZeRO-1 reduce-scatter (fp32, 4). */
  gradient: number;
  /** Bytes a parameter value in the ZeRO-1 all-gather (bf16, 2). */
  parameter: number;
}

export interface ClusterSimConfig {
  model: ClusterModel;
  layout: ClusterLayout;
  /** Pipeline schedule (`PIPELINE_SCHEDULE_NAMES`). */
  schedule: string;
  /** Micro-batches a pipeline runs per step. */
  microBatches: number;
  /** Tokens each GPU of a stage holds in one micro-batch. */
  tokensPerMicroBatch: number;
  profile: DeviceProfile | string;
  wire: WireFormats;
  /** Share of a GPU's SMs communication takes while it runs (DeepSeek-V3: 20/132); 0 for none. */
  commSmShare: number;
}

/** A configuration that cannot be simulated; the message names the field and the numbers. */
export class ClusterConfigError extends Error {
  override readonly name = 'ClusterConfigError';
}

export interface ResolvedLayout extends ClusterLayout {
  /** GPUs holding each pipeline rank's stages: gpus / pipelineRanks. */
  gpusPerStage: number;
  /** Expert-parallel groups in a stage: gpusPerStage / expertParallel. */
  epGroupsPerStage: number;
}

/** Checks the layout's divisibility; throws ClusterConfigError naming the numbers. */
export function resolveLayout(layout: ClusterLayout, routedExperts: number): ResolvedLayout {
  const { gpus, pipelineRanks, expertParallel, nodeSize } = layout;
  for (const [name, v] of Object.entries({ gpus, pipelineRanks, expertParallel, nodeSize })) {
    if (!Number.isInteger(v) || v < 1) throw new ClusterConfigError(`${name}=${v} must be a positive integer`);
  }
  if (gpus % pipelineRanks !== 0) throw new ClusterConfigError(`gpus=${gpus} is not a multiple of the pipeline ranks (${pipelineRanks})`);
  const gpusPerStage = gpus / pipelineRanks;
  if (gpusPerStage % expertParallel !== 0) {
    throw new ClusterConfigError(`a stage's ${gpusPerStage} GPUs (gpus/pp = ${gpus}/${pipelineRanks}) are not a multiple of ep=${expertParallel}`);
  }
  if (routedExperts % expertParallel !== 0) {
    throw new ClusterConfigError(`routed experts (${routedExperts}) do not split evenly over ep=${expertParallel} GPUs`);
  }
  if (expertParallel > nodeSize && expertParallel % nodeSize !== 0) {
    throw new ClusterConfigError(`ep=${expertParallel} spans nodes of ${nodeSize} GPUs but is not a whole number of them`);
  }
  return { ...layout, gpusPerStage, epGroupsPerStage: gpusPerStage / expertParallel };
}

export const profileOf = (p: DeviceProfile | string): DeviceProfile => (typeof p === 'string' ? deviceProfile(p, 'profile') : p);
