/**
 * The known inputs of the conformance kit: two small models, a data stream, and the reference
 * trainer stepped one step at a time, so every RunStep reply can be checked against the numbers
 * the worker must produce.
 *
 * Shapes: V vocab, H hidden, E routed experts, k top-k, B sequences of L tokens per step.
 */
import {
  AdamW,
  applyUpdate,
  checksumTensors,
  denseParams,
  forwardBackward,
  initParams,
  MarkovChain,
  parseModelConfig,
  TINY_OPTIMIZER,
  type Batch,
  type ModelConfig,
  type ModelParams,
  type StepMirror,
  type TrainConfig,
} from '@moe/model';
import type { SequenceRange } from '@moe/placement';

/** Run A of the kit: softmax routing with bias balancing (the counts travel in the all-reduce). */
export const KIT_MODEL: ModelConfig = parseModelConfig({
  vocabSize: 16,
  hiddenSize: 16,
  expertFfnSize: 16,
  routedExperts: 4,
  sharedExperts: 1,
  topK: 2,
  layers: 2,
  scoreFunction: 'softmax',
  balancing: 'bias',
  biasUpdateSpeed: 1e-2,
  seed: 11,
});

/** The other branches of the math: sigmoid scores, the sequence-wise aux loss, two shared experts, top-3. */
export const KIT_MODEL_AUX: ModelConfig = parseModelConfig({
  ...KIT_MODEL,
  scoreFunction: 'sigmoid',
  balancing: 'aux',
  auxLossAlpha: 1e-2,
  sharedExperts: 2,
  topK: 3,
  seed: 12,
});

export const KIT_TRAIN: TrainConfig = { batchSequences: 4, seqLen: 8, steps: 3, dataSeed: 5, optimizer: TINY_OPTIMIZER };

/** FNV-1a 64 of the replicated dense parameters, in `denseParams` order: what LoadShard must answer. */
export function denseChecksum(params: ModelParams): string {
  return checksumTensors(denseParams(params).map((p) => p.tensor));
}

/** The single-process reference, one step at a time, on the kit's data. */
export class ReferenceStepper {
  readonly params: ModelParams;
  private readonly optimizer: AdamW;
  private readonly chain: MarkovChain;

  constructor(
    readonly model: ModelConfig,
    readonly train: TrainConfig = KIT_TRAIN,
  ) {
    this.params = initParams(model);
    this.optimizer = new AdamW(train.optimizer);
    this.chain = new MarkovChain(model.vocabSize, train.dataSeed);
  }

  /** The global batch of `step`: inputs and targets [B * L]. */
  batch(step: number): Batch {
    return this.chain.batch(step, this.train.batchSequences, this.train.seqLen);
  }

  /**
   * Each rank's share of `step` before it is trained: its tokens' cross-entropy over the global
   * token count, and its slots' expert counts per layer ([layers][E]). Tokens do not interact
   * in the forward, so a rank's sub-batch gives its share exactly.
   */
  shares(step: number, ranges: readonly SequenceRange[]): { loss: number; counts: Int32Array[] }[] {
    const batch = this.batch(step);
    const L = this.train.seqLen;
    return ranges.map((r) => {
      const sub: Batch = {
        inputs: batch.inputs.slice(r.first * L, (r.first + r.count) * L),
        targets: batch.targets.slice(r.first * L, (r.first + r.count) * L),
        sequences: r.count,
        seqLen: L,
      };
      const result = forwardBackward(this.params, sub, this.model, { tokens: batch.sequences * L, sequences: batch.sequences });
      return { loss: result.lossSum, counts: result.counts };
    });
  }

  /**
   * Trains one step on `batch(step)`, mirroring the run's codec rounding and batch split
   * (`runMirror`) so the numbers are the run's bit for bit; returns its mean cross-entropy and aux loss.
   */
  step(step: number, mirror?: StepMirror): { loss: number; auxLoss: number; counts: number } {
    const batch = this.batch(step);
    const result = forwardBackward(this.params, batch, this.model, { tokens: batch.sequences * batch.seqLen, sequences: batch.sequences }, mirror);
    applyUpdate(this.params, result.grads, result.counts, this.model, this.optimizer);
    return { loss: result.lossSum, auxLoss: result.auxLoss, counts: result.counts.reduce((n, c) => n + c.reduce((a, b) => a + b, 0), 0) };
  }

  /** AdamW's state now, positions in `optimizerOrder` order. */
  optimizerState() {
    return this.optimizer.state();
  }
}
