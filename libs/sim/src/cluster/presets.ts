/**
 * Named configurations of `moe simulate`, each field with where it comes from. Nothing here is
 * fitted to a published total: the figures a simulation prints follow from these inputs.
 */
import { DEEPSEEK_V3_LAYER } from '../cost-model';
import type { ClusterSimConfig } from './config';

export interface SimPreset {
  name: string;
  summary: string;
  config: ClusterSimConfig;
  /** Field path -> source of its value. */
  sources: Record<string, string>;
  /** Tokens the cost estimate is for, by default. */
  trainingTokens: number;
  /** Price per GPU-hour, USD, by default. */
  pricePerGpuHour: number;
}

const V3 = 'DeepSeek-V3 Technical Report, arXiv:2412.19437';

/** DeepSeek-V3 pre-training as published: 61 layers, PP16 x EP64 x ZeRO-1 DP on 2048 H800, DualPipe. */
export const DEEPSEEK_V3_PRESET: SimPreset = {
  name: 'deepseek-v3',
  summary: 'DeepSeek-V3 pre-training: 671B MoE, 2048 H800 in nodes of 8, PP16 DualPipe x EP64 x ZeRO-1 DP',
  trainingTokens: 14.8e12,
  pricePerGpuHour: 2,
  config: {
    model: {
      ...DEEPSEEK_V3_LAYER,
      attention: { ...DEEPSEEK_V3_LAYER.attention },
      gemmDtype: 'fp8',
      layers: 61,
      denseLayers: 3,
      denseFfnSize: 18432,
      topK: 8,
      maxNodesPerToken: 4,
    },
    layout: { gpus: 2048, pipelineRanks: 16, expertParallel: 64, nodeSize: 8 },
    schedule: 'dualpipe',
    // 15360 sequences a step (final batch size) over 128 GPUs a stage = 120 sequences a GPU,
    // one 4096-token sequence a micro-batch.
    microBatches: 120,
    tokensPerMicroBatch: 4096,
    profile: 'H800',
    wire: { dispatch: 1, combine: 2, backward: 2, pipeline: 2, gradient: 4, parameter: 2 },
    commSmShare: 20 / 132,
  },
  sources: {
    'model.layers': `${V3} §4.2: 61 Transformer layers`,
    'model.denseLayers / denseFfnSize': 'deepseek-ai/DeepSeek-V3 config.json: first_k_dense_replace 3, intermediate_size 18432',
    'model.hiddenSize': `${V3} §4.2: hidden dimension 7168`,
    'model.attention': `${V3} §4.2: 128 heads, per-head 128, KV compression 512, query compression 1536, decoupled RoPE 64 (MLA)`,
    'model.routedExperts / sharedExperts / expertFfnSize / topK': `${V3} §4.2: 1 shared and 256 routed experts, intermediate 2048, 8 activated`,
    'model.maxNodesPerToken': `${V3} §4.2: each token sent to at most 4 nodes (node-limited routing, §2.1.2)`,
    'model.seqLen': `${V3} §4.2: maximum sequence length 4K in pre-training`,
    'model.vocabSize': `${V3} §4.1: byte-level BPE with 128K tokens (config.json vocab_size 129280)`,
    'model.gemmDtype': `${V3} §3.3.1: FP8 GEMMs (Fprop, Dgrad, Wgrad)`,
    'model.mfu': 'kernel efficiency of the cost model (libs/sim cost-model.ts default 0.6): an assumption, not from the paper; --kernel-efficiency',
    'layout.gpus / nodeSize': `${V3} §3.1: 2048 NVIDIA H800 GPUs, 8 per node`,
    'layout.pipelineRanks / expertParallel': `${V3} §3.2: 16-way PP, 64-way EP over 8 nodes, ZeRO-1 DP`,
    schedule: `${V3} §3.2.1: DualPipe`,
    microBatches: `${V3} §4.2: batch size 15360 sequences (final) / 128 GPUs a stage = 120 sequences a GPU; one sequence a micro-batch (assumption; --micro-batches)`,
    tokensPerMicroBatch: `${V3} §4.2: sequence length 4096`,
    profile: 'libs/sim devices.ts H800 (NVIDIA H800 SXM5 product brief; §3.2.2 IB 50 GB/s per GPU)',
    'wire.dispatch / combine': `${V3} §3.3.3: dispatch activations quantized to FP8, combine in BF16`,
    'wire.gradient / parameter': `${V3} §3.3.1: master weights and weight gradients kept in FP32 (reduce-scattered as FP32); BF16 parameters all-gathered (assumption)`,
    commSmShare: `${V3} §3.2.2: 20 of 132 SMs for communication`,
    'left out': 'the multi-token prediction module (§2.2), activation recomputation (§3.2.3), and overlap of the ZeRO-1 sync with the next step',
    trainingTokens: `${V3} §4.1 and Table 1: 14.8T pre-training tokens`,
    pricePerGpuHour: `${V3} §1 Table 1: H800 rental assumed at $2 per GPU hour`,
  },
};

/**
 * The local bench's configuration (`moe bench` defaults): 4 sim workers in nodes of 2 modeling
 * H800, a DeepSeek-V3-shaped layer scaled to hidden 256, 2 MoE layers, top-4 of 8 experts, as
 * one pipeline rank (no pipeline) so the simulator's step is the bench's.
 */
export const LOCAL_BENCH_PRESET: SimPreset = {
  name: 'local-bench',
  summary: "moe bench's cluster: 4 GPUs (nodes of 2), hidden 256, 2 layers, top-4 of 8 experts, no pipeline",
  trainingTokens: 1e9,
  pricePerGpuHour: 2,
  config: {
    model: {
      ...DEEPSEEK_V3_LAYER,
      hiddenSize: 256,
      expertFfnSize: 512,
      routedExperts: 8,
      attention: { heads: 8, qLoraRank: 55, kvLoraRank: 18, qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32 },
      vocabSize: 1024,
      seqLen: 512,
      layers: 2,
      denseLayers: 0,
      denseFfnSize: 512,
      topK: 4,
      maxNodesPerToken: Infinity,
    },
    layout: { gpus: 4, pipelineRanks: 1, expertParallel: 4, nodeSize: 2 },
    schedule: '1f1b',
    microBatches: 1,
    tokensPerMicroBatch: 256,
    profile: 'H800',
    wire: { dispatch: 2, combine: 2, backward: 2, pipeline: 2, gradient: 4, parameter: 4 },
    commSmShare: 0,
  },
  sources: {
    '*': 'apps/scheduler/src/run/run-bench.ts: BENCH_DEFAULTS; bench-model.ts: benchConfigs and modeledModel (hidden 256, 2 layers, 8 experts top-4, 2 sequences of 128 tokens a worker)',
  },
};

export const SIM_PRESETS: readonly SimPreset[] = [DEEPSEEK_V3_PRESET, LOCAL_BENCH_PRESET];

export function simPreset(name: string): SimPreset {
  const found = SIM_PRESETS.find((p) => p.name === name);
  if (!found) throw new RangeError(`unknown preset "${name}"; known: ${SIM_PRESETS.map((p) => p.name).join(', ')}`);
  return found;
}
