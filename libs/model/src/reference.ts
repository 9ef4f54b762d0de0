/**
 * The single-process reference trainer: the numbers distributed training must reproduce.
 * Per step: the chain's batch for the step, forwardBackward over the whole global batch, then
 * applyUpdate (AdamW + router-bias balancing).
 */
import type { ModelConfig, TrainConfig } from './config';
import { MarkovChain } from './data';
import { forwardBackward, type StepMirror } from './model';
import { AdamW, type AdamWState } from './optimizer';
import { denseParams, initParams, routedExpertParams, type ModelParams, type NamedParam } from './params';
import { updateRouterBias } from './balancing';
import { ShapeError } from './shape-error';
import type { Tensor } from './tensor';

export interface ReferenceResult {
  /** [steps] cross-entropy mean per step (nats). */
  losses: number[];
  /** [steps] aux loss per step (0 unless balancing is 'aux'). */
  auxLosses: number[];
  /** Final parameters. */
  params: ModelParams;
  /** AdamW state, positions in `optimizerOrder` order. */
  optimizerState: AdamWState;
  /** H(X_{t+1} | X_t) of the data, nats: the lowest expected loss. */
  entropy: number;
}

/**
 * The tensors AdamW updates, in this fixed order: the trainable dense params in `denseParams`
 * order (router_bias excluded), then every routed expert's w1, w3, w2, layer by layer, experts in
 * ascending id (names "layers.l.experts.e.w1", as `routedExpertParams`). AdamW is elementwise
 * with per-position state, so a worker may run it on its own dense + expert subset.
 */
export function optimizerOrder(p: ModelParams): NamedParam[] {
  return [...denseParams(p).filter((q) => q.trainable), ...routedExpertParams(p)];
}

/**
 * One update: AdamW over `optimizerOrder(params)` with the same positions of `grads`, then,
 * when balancing is 'bias', updateRouterBias per layer with counts[l]: [E] global counts.
 */
export function applyUpdate(
  params: ModelParams,
  grads: ModelParams,
  counts: readonly ArrayLike<number>[],
  config: ModelConfig,
  optimizer: AdamW,
): void {
  const p = optimizerOrder(params);
  const g = optimizerOrder(grads);
  if (p.length !== g.length) throw new ShapeError(`applyUpdate: ${p.length} params but ${g.length} grads`);
  optimizer.step(
    p.map((q) => q.tensor),
    g.map((q): Tensor => q.tensor),
  );
  if (config.balancing === 'bias') {
    if (counts.length !== config.layers) throw new ShapeError(`applyUpdate: counts for ${counts.length} layers, model has ${config.layers}`);
    params.layers.forEach((layer, l) => updateRouterBias(layer.routerBias, counts[l]!, config.biasUpdateSpeed));
  }
}

/**
 * Trains `model` on the Markov chain (vocabSize, train.dataSeed) for options.steps ?? train.steps
 * steps of train.batchSequences x train.seqLen tokens, from initParams(model). Deterministic.
 * onStep(step, loss) is called after each step with the step's CE mean. `mutateParams` may edit the
 * initial parameters in place before the first step (e.g. to force a routing). `mirror` gives the
 * lossy wire codec's round trips and the batch split of the distributed run to compare
 * with, so its float32 operations are done in the same order (forwardBackward).
 */
export function trainReference(
  model: ModelConfig,
  train: TrainConfig,
  options: {
    onStep?: (step: number, loss: number) => void;
    steps?: number;
    mutateParams?: (params: ModelParams) => void;
    /** The distributed run's wire rounding and batch split to mirror. */
    mirror?: StepMirror;
    /** A mirror per step (wins over `mirror`): a run whose placement changed mid-way (redundant experts moved). */
    mirrorAt?: (step: number) => StepMirror;
  } = {},
): ReferenceResult {
  const chain = new MarkovChain(model.vocabSize, train.dataSeed);
  const params = initParams(model);
  options.mutateParams?.(params);
  const optimizer = new AdamW(train.optimizer);
  const steps = options.steps ?? train.steps;
  const losses: number[] = [];
  const auxLosses: number[] = [];
  const divisors = { tokens: train.batchSequences * train.seqLen, sequences: train.batchSequences };
  for (let step = 0; step < steps; step++) {
    const batch = chain.batch(step, train.batchSequences, train.seqLen);
    const result = forwardBackward(params, batch, model, divisors, options.mirrorAt?.(step) ?? options.mirror);
    applyUpdate(params, result.grads, result.counts, model, optimizer);
    losses.push(result.lossSum);
    auxLosses.push(result.auxLoss);
    options.onStep?.(step, result.lossSum);
  }
  return { losses, auxLosses, params, optimizerState: optimizer.state(), entropy: chain.entropy };
}
