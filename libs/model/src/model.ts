/**
 * The whole model, forward and backward, in one pass a reader can follow top to bottom.
 * Shapes: T = B·L tokens, H hidden, V vocab, E routed experts, k = topK, slot s = t·k + j.
 *
 *   x = embed(inputs)                                                   [T, H]
 *   per layer l:
 *     h = rmsNorm(x, norm)                                              [T, H]
 *     r = route(h)                        expert ids and weights        [T·k]
 *     per expert e: its slots (ascending), rows h[floor(s/k)] gathered, expertForward,
 *       outputs put back at those slots                                 slotOutputs [T·k, H]
 *     shared = Σ_s expertForward(shared_s, h), summed in order          [T, H]
 *     x = x + (shared + combine(slotOutputs, weights))                  [T, H]
 *   logits = head(rmsNorm(x, finalNorm)); loss = crossEntropy(logits, targets) / divisors.tokens
 *
 * The backward pass mirrors it with the same helpers the distributed worker calls
 * (combineBackward, expertBackward on the same gathered rows, routeBackward, moeInputGrad,
 * rmsNormBackward, the residual). No attention: a token sees only itself.
 */
import type { Batch } from './batch';
import { combine, combineBackward } from './combine';
import type { ModelConfig } from './config';
import { embed, embedBackward } from './embedding';
import { expertBackward, expertForward, type ExpertCache } from './expert';
import { headBackward, headForward } from './head';
import { crossEntropy } from './loss';
import { moeInputGrad } from './moe-input-grad';
import { rmsNorm, rmsNormBackward, type RmsNormCache } from './norm';
import { addInPlace } from './ops';
import { zerosLikeParams, type ExpertParams, type ModelParams } from './params';
import { route, routeBackward, type Route } from './router';
import { gatherRows, groupSlotsByExpert, scatterRows } from './rows';
import { ShapeError } from './shape-error';
import { zeros, type Tensor } from './tensor';

export type { Batch };

export interface ForwardBackwardResult {
  /** Σ CE / divisors.tokens (nats). */
  lossSum: number;
  /** Σ over layers of the aux loss (0 unless balancing is 'aux'). */
  auxLoss: number;
  /** Gradients of lossSum + auxLoss, same structure as the params; routerBias grads are zero. */
  grads: ModelParams;
  /** [layer][E] tokens routed to each expert in this batch. */
  counts: Int32Array[];
}

/** Cached state of one MoE layer's forward pass. */
interface LayerTape {
  x: Tensor;
  norm: RmsNormCache;
  route: Route;
  /** [E] slot lists, ascending. */
  groups: Int32Array[];
  expertCaches: ExpertCache[];
  sharedCaches: ExpertCache[];
  slotOutputs: Tensor;
}

/** y = Σ_s expertForward(shared[s], h), summed in order in float32 ([T, H] zeros when there are none). */
export function sharedExpertsForward(shared: readonly ExpertParams[], h: Tensor): { y: Tensor; caches: ExpertCache[] } {
  const caches: ExpertCache[] = [];
  let sum: Tensor | undefined;
  for (const p of shared) {
    const out = expertForward(p, h);
    caches.push(out.cache);
    if (sum) addInPlace(sum, out.y);
    else sum = out.y;
  }
  return { y: sum ?? zeros(h.shape), caches };
}

/** dy: [T, H] -> dh: [T, H] summed over shared experts in order, and each one's grads. */
export function sharedExpertsBackward(
  shared: readonly ExpertParams[],
  caches: readonly ExpertCache[],
  dy: Tensor,
): { dh: Tensor; grads: ExpertParams[] } {
  let dh: Tensor | undefined;
  const grads: ExpertParams[] = [];
  shared.forEach((p, s) => {
    const back = expertBackward(p, caches[s]!, dy);
    grads.push(back.grads);
    if (dh) addInPlace(dh, back.dx);
    else dh = back.dx;
  });
  return { dh: dh ?? zeros(dy.shape), grads };
}

/** x: [T, H], shared, combined: [T, H] -> x + (shared + combined), elementwise, float32 result. */
export function residualAdd(x: Tensor, shared: Tensor, combined: Tensor): Tensor {
  const out = zeros(x.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = x.data[i]! + (shared.data[i]! + combined.data[i]!);
  return out;
}

function addGrads(into: ExpertParams, g: ExpertParams): void {
  addInPlace(into.w1, g.w1);
  addInPlace(into.w3, g.w3);
  addInPlace(into.w2, g.w2);
}

/**
 * One forward and backward pass over `batch` (inputs/targets [B·L]). divisors.tokens divides the
 * summed cross-entropy (the global token count); divisors.sequences divides the aux loss (the
 * global sequence count). Returns the loss, the gradients of lossSum + auxLoss, and the counts.
 * `params` is read only.
 */
export function forwardBackward(
  params: ModelParams,
  batch: Batch,
  config: ModelConfig,
  divisors: { tokens: number; sequences: number },
): ForwardBackwardResult {
  const T = batch.inputs.length;
  if (batch.targets.length !== T || T !== batch.sequences * batch.seqLen) {
    throw new ShapeError(
      `forwardBackward: batch of ${batch.sequences} x ${batch.seqLen} tokens has ${T} inputs and ${batch.targets.length} targets`,
    );
  }
  if (params.layers.length !== config.layers || params.experts.length !== config.layers) {
    throw new ShapeError(`forwardBackward: params have ${params.layers.length} layers, config has ${config.layers}`);
  }
  const k = config.topK;
  const E = config.routedExperts;
  const H = config.hiddenSize;
  const grads = zerosLikeParams(params);

  // Forward.
  let x = embed(batch.inputs, params.embedding);
  const tapes: LayerTape[] = [];
  for (let l = 0; l < config.layers; l++) {
    const layer = params.layers[l]!;
    const norm = rmsNorm(x, layer.norm, config.rmsEps);
    const h = norm.y;
    const r = route(h, layer, config, { seqLen: batch.seqLen, globalSequences: divisors.sequences });
    const groups = groupSlotsByExpert(r.expertIds, E);
    const slotOutputs = zeros([T * k, H]);
    const expertCaches: ExpertCache[] = [];
    for (let e = 0; e < E; e++) {
      const slots = groups[e]!;
      const out = expertForward(params.experts[l]![e]!, gatherRows(h, Array.from(slots, (s) => Math.floor(s / k))));
      expertCaches.push(out.cache);
      scatterRows(slotOutputs, slots, out.y);
    }
    const shared = sharedExpertsForward(layer.shared, h);
    tapes.push({ x, norm: norm.cache, route: r, groups, expertCaches, sharedCaches: shared.caches, slotOutputs });
    x = residualAdd(x, shared.y, combine(slotOutputs, r.weights, k));
  }
  const final = rmsNorm(x, params.finalNorm, config.rmsEps);
  const logits = headForward(final.y, params.head);
  const ce = crossEntropy(logits, batch.targets, divisors.tokens);

  // Backward.
  const head = headBackward(final.y, params.head, ce.dLogits);
  grads.head.data.set(head.dHead.data);
  const finalBack = rmsNormBackward(final.cache, head.dh);
  grads.finalNorm.data.set(finalBack.dGain.data);
  let dx = finalBack.dx;
  for (let l = config.layers - 1; l >= 0; l--) {
    const tape = tapes[l]!;
    const layer = params.layers[l]!;
    const g = grads.layers[l]!;
    const dy = dx; // gradient w.r.t. the layer output, which is also the residual's
    const comb = combineBackward(dy, tape.slotOutputs, tape.route.weights, k);
    const dSlotInputs = zeros([T * k, H]);
    for (let e = 0; e < E; e++) {
      const slots = tape.groups[e]!;
      const back = expertBackward(params.experts[l]![e]!, tape.expertCaches[e]!, gatherRows(comb.dSlotOutputs, slots));
      addGrads(grads.experts[l]![e]!, back.grads);
      scatterRows(dSlotInputs, slots, back.dx);
    }
    const shared = sharedExpertsBackward(layer.shared, tape.sharedCaches, dy);
    shared.grads.forEach((sg, s) => addGrads(g.shared[s]!, sg));
    const router = routeBackward(tape.route.cache, comb.dWeights);
    addInPlace(g.router, router.dRouter);
    const dh = moeInputGrad(shared.dh, router.dh, dSlotInputs, k);
    const normBack = rmsNormBackward(tape.norm, dh);
    addInPlace(g.norm, normBack.dGain);
    dx = zeros(dy.shape);
    for (let i = 0; i < dx.data.length; i++) dx.data[i] = dy.data[i]! + normBack.dx.data[i]!;
  }
  grads.embedding.data.set(embedBackward(batch.inputs, dx, config.vocabSize).data);

  let auxLoss = 0;
  for (const tape of tapes) auxLoss += tape.route.auxLoss;
  return { lossSum: ce.lossSum, auxLoss, grads, counts: tapes.map((t) => t.route.counts) };
}
