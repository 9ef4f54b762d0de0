/**
 * What the bench's sim workers hold and model: the real model and batch (only its experts and
 * top-k matter), the DeepSeek-V3-shaped layer scaled down to loopback sizes, and the sim settings
 * that shape the figures without being flags. `moe bench` and `moe bench --replay` share them.
 */
import { parseModelConfig, parseTrainConfig, TINY_MODEL, TINY_TRAIN, type ModelConfig, type TrainConfig } from '@moe/model';

/** Routed experts of the model the sim workers hold. */
export const BENCH_ROUTED_EXPERTS = 8;

/**
 * Settings of the sim workers that shape the figures but are not flags (recorded in config):
 * one optimizer update a step (the step's micro-batches are real, not modeled), and link latency
 * scaled like the payloads, ~1/100 of a DeepSeek-V3 rank's (fewer tokens, narrower rows), so a
 * frame stays bandwidth-bound as it is on the real cluster.
 */
export const BENCH_SIM_SETTINGS = { accumulationSteps: 1, latencyScale: 0.01 } as const;

/**
 * The real model the sim workers hold: only its experts and top-k matter to the simulation. The
 * real batch only has to give every rank one sequence per micro-batch; the modeled tokens are
 * `tokensPerRank`, shared out over the micro-batches by their sequences.
 */
export function benchConfigs(workers: number, microBatches: number): { model: ModelConfig; train: TrainConfig } {
  const model = parseModelConfig({ ...TINY_MODEL, routedExperts: BENCH_ROUTED_EXPERTS, topK: 4, layers: 2, balancing: 'none' });
  const train = parseTrainConfig({ ...TINY_TRAIN, batchSequences: microBatches * workers, seqLen: 32, steps: 1 });
  return { model, train };
}

/**
 * The layer the sim workers model: DeepSeek-V3's attention shape scaled down by hidden/7168,
 * experts twice as wide as the hidden size, a short context (512) and a small vocabulary (1024),
 * so the bytes on the wire stay loopback-sized and the step's compute is mostly expert work, the
 * work an overlapped schedule can hide all-to-alls behind. (Attention runs before the dispatch
 * it feeds, and the optimizer after the last all-to-all: neither can hide them in this schedule.)
 */
export function modeledModel(hiddenSize: number, routedExperts: number) {
  const f = hiddenSize / 7168;
  const dim = (v: number) => Math.max(8, Math.round(v * f));
  return {
    hiddenSize,
    expertFfnSize: 2 * hiddenSize,
    routedExperts,
    sharedExperts: 1,
    attention: { heads: dim(128), qLoraRank: dim(1536), kvLoraRank: dim(512), qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32 },
    vocabSize: 1024,
    seqLen: 512,
  };
}
