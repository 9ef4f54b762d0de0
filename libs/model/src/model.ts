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
 *
 * With a lossy wire codec the distributed run rounds the rows of its four all-to-alls; `rounding`
 * applies the same round trips at the same points (see WireRounding), so the two still agree.
 */
import type { Batch } from './batch';
import {
  checkSplit,
  chunkSlots,
  expertCacheRows,
  normCacheRows,
  routeCacheRows,
  rowsOf,
  sumOverRanks,
  wholeBatch,
  type BatchSplit,
  type TokenRange,
} from './batch-split';
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
import { gatherRows, scatterRows } from './rows';
import { ShapeError } from './shape-error';
import { zeros, type Tensor } from './tensor';

export type { Batch };

/** Rounds `rows` [n, cols] in place, row by row, as a wire codec's encode and decode would. */
export type RoundRows = (rows: Float32Array, cols: number) => void;

/**
 * Where rows cross ranks in the distributed run, and the rounding each crossing applies. Each
 * hook sees the rows of one expert at a time; it must round each row on its own (the result of a
 * row may not depend on the other rows), as the wire codecs of @moe/comm do. Absent: exact f32.
 */
export interface WireRounding {
  /** Forward dispatch: the normalised token rows an expert receives. */
  dispatch?: RoundRows;
  /** Forward combine: the expert output rows sent back to the token's rank. */
  combine?: RoundRows;
  /** Backward of the combine: the gradients of the slot outputs sent to the experts. */
  combineBackward?: RoundRows;
  /** Backward of the dispatch: the gradients of the expert inputs sent back. */
  dispatchBackward?: RoundRows;
}

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

/** The rows one expert copy takes in one chunk: the expert, the rank holding the copy (-1: its only copy), its slots ascending. */
interface ExpertGroup {
  expert: number;
  holder: number;
  slots: Int32Array;
}

/** Cached state of one MoE layer's forward pass. */
interface LayerTape {
  x: Tensor;
  norm: RmsNormCache;
  route: Route;
  /** [C][] the expert groups of each chunk. */
  groups: ExpertGroup[][];
  /** [C][] each group's cache for its rows. */
  expertCaches: ExpertCache[][];
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

const zerosLikeExpert = (p: ExpertParams): ExpertParams => ({ w1: zeros(p.w1.shape), w3: zeros(p.w3.shape), w2: zeros(p.w2.shape) });

function addGrads(into: ExpertParams, g: ExpertParams): void {
  addInPlace(into.w1, g.w1);
  addInPlace(into.w3, g.w3);
  addInPlace(into.w2, g.w2);
}

/** Options of forwardBackward: the distributed run's wire rounding and batch split to mirror. */
export interface StepMirror {
  /** Round trips of a lossy wire codec at the all-to-alls (absent: exact f32). */
  rounding?: WireRounding;
  /** The run's split of the batch, to sum gradients in its order (absent: one rank, one chunk). */
  split?: BatchSplit;
  /** The run's redundant experts (absent: one copy of each). */
  replicas?: ReplicaMirror;
}

/**
 * Redundant experts in the run: each holder of a replicated expert computes the gradient of the
 * rows it took (chunk by chunk, from 0), and the all-reduce adds the holders' sums in rank order.
 */
export interface ReplicaMirror {
  /** Experts several ranks hold. */
  replicated: readonly number[];
  /** The rank whose copy of `expert` took global token `token`'s row (of the step's batch). */
  holderOf(token: number, expert: number): number;
}

/** The slots of `slots` (ascending) by expert, ascending, and for a replicated expert by holder, ascending. */
function groupByExpert(expertIds: Int32Array, slots: Int32Array, E: number, k: number, replicas?: ReplicaMirror): ExpertGroup[] {
  const lists = Array.from({ length: E }, () => [] as number[]);
  for (const s of slots) lists[expertIds[s]!]!.push(s);
  const replicated = new Set(replicas?.replicated ?? []);
  return lists.flatMap((list, expert): ExpertGroup[] => {
    if (!replicated.has(expert)) return [{ expert, holder: -1, slots: Int32Array.from(list) }];
    const byHolder = new Map<number, number[]>();
    for (const s of list) {
      const holder = replicas!.holderOf(Math.floor(s / k), expert);
      byHolder.set(holder, [...(byHolder.get(holder) ?? []), s]);
    }
    return [...byHolder].sort(([a], [b]) => a - b).map(([holder, l]) => ({ expert, holder, slots: Int32Array.from(l) }));
  });
}

/**
 * One forward and backward pass over `batch` (inputs/targets [B·L]). divisors.tokens divides the
 * summed cross-entropy (the global token count); divisors.sequences divides the aux loss (the
 * global sequence count). Returns the loss, the gradients of lossSum + auxLoss, and the counts.
 * `params` is read only. With `mirror.split`, routed experts see one chunk's rows at a time and
 * every dense gradient is the sum of per-rank partials in rank order (see batch-split.ts): the
 * same float32 operations, in the same order, as the distributed run.
 */
export function forwardBackward(
  params: ModelParams,
  batch: Batch,
  config: ModelConfig,
  divisors: { tokens: number; sequences: number },
  mirror: StepMirror = {},
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
  const rounding = mirror.rounding ?? {};
  const split = mirror.split ?? wholeBatch(T);
  checkSplit(split, T);
  const chunks = chunkSlots(split, k);
  // A dense gradient: the full call's when one rank holds the batch, else the ranks' partials summed.
  const dense = (full: Tensor[], partial: (range: TokenRange) => Tensor[]): Tensor[] =>
    split.ranks.length === 1 ? full : sumOverRanks(split.ranks, partial);
  const grads = zerosLikeParams(params);

  // Forward.
  let x = embed(batch.inputs, params.embedding);
  const tapes: LayerTape[] = [];
  for (let l = 0; l < config.layers; l++) {
    const layer = params.layers[l]!;
    const norm = rmsNorm(x, layer.norm, config.rmsEps);
    const h = norm.y;
    const r = route(h, layer, config, { seqLen: batch.seqLen, globalSequences: divisors.sequences });
    const slotOutputs = zeros([T * k, H]);
    const groups = chunks.map((slots) => groupByExpert(r.expertIds, slots, E, k, mirror.replicas));
    const expertCaches = groups.map((chunk) =>
      chunk.map(({ expert, slots }) => {
        const rows = gatherRows(h, Array.from(slots, (s) => Math.floor(s / k)));
        rounding.dispatch?.(rows.data, H);
        const out = expertForward(params.experts[l]![expert]!, rows);
        rounding.combine?.(out.y.data, H);
        scatterRows(slotOutputs, slots, out.y);
        return out.cache;
      }),
    );
    const shared = sharedExpertsForward(layer.shared, h);
    tapes.push({ x, norm: norm.cache, route: r, groups, expertCaches, sharedCaches: shared.caches, slotOutputs });
    x = residualAdd(x, shared.y, combine(slotOutputs, r.weights, k));
  }
  const final = rmsNorm(x, params.finalNorm, config.rmsEps);
  const logits = headForward(final.y, params.head);
  const ce = crossEntropy(logits, batch.targets, divisors.tokens);

  // Backward.
  const head = headBackward(final.y, params.head, ce.dLogits);
  const dHead = dense([head.dHead], ({ begin, end }) => [headBackward(rowsOf(final.y, begin, end), params.head, rowsOf(ce.dLogits, begin, end)).dHead]);
  grads.head.data.set(dHead[0]!.data);
  const finalBack = rmsNormBackward(final.cache, head.dh);
  const dFinal = dense([finalBack.dGain], ({ begin, end }) => [rmsNormBackward(normCacheRows(final.cache, begin, end), rowsOf(head.dh, begin, end)).dGain]);
  grads.finalNorm.data.set(dFinal[0]!.data);
  let dx = finalBack.dx;
  for (let l = config.layers - 1; l >= 0; l--) {
    const tape = tapes[l]!;
    const layer = params.layers[l]!;
    const g = grads.layers[l]!;
    const dy = dx; // gradient w.r.t. the layer output, which is also the residual's
    const comb = combineBackward(dy, tape.slotOutputs, tape.route.weights, k);
    const dSlotInputs = zeros([T * k, H]);
    // A replicated expert's gradient: each holder's own sum (key "expert/holder"), then the holders' sums in rank order.
    const held = new Map<string, { expert: number; holder: number; grads: ExpertParams }>();
    tape.groups.forEach((chunk, c) =>
      chunk.forEach(({ expert, holder, slots }, i) => {
        if (slots.length === 0) return; // the distributed expert is not called for a chunk without rows
        const dyRows = gatherRows(comb.dSlotOutputs, slots);
        rounding.combineBackward?.(dyRows.data, H);
        const back = expertBackward(params.experts[l]![expert]!, tape.expertCaches[c]![i]!, dyRows);
        rounding.dispatchBackward?.(back.dx.data, H);
        if (holder < 0) addGrads(grads.experts[l]![expert]!, back.grads);
        else {
          const key = `${expert}/${holder}`;
          if (!held.has(key)) held.set(key, { expert, holder, grads: zerosLikeExpert(params.experts[l]![expert]!) });
          addGrads(held.get(key)!.grads, back.grads);
        }
        scatterRows(dSlotInputs, slots, back.dx);
      }),
    );
    for (const h of [...held.values()].sort((a, b) => a.expert - b.expert || a.holder - b.holder)) addGrads(grads.experts[l]![h.expert]!, h.grads);
    const shared = sharedExpertsBackward(layer.shared, tape.sharedCaches, dy);
    const sharedGrads = dense(
      shared.grads.flatMap((sg) => [sg.w1, sg.w3, sg.w2]),
      ({ begin, end }) =>
        sharedExpertsBackward(
          layer.shared,
          tape.sharedCaches.map((c) => expertCacheRows(c, begin, end)),
          rowsOf(dy, begin, end),
        ).grads.flatMap((sg) => [sg.w1, sg.w3, sg.w2]),
    );
    g.shared.forEach((into, s) => addGrads(into, { w1: sharedGrads[3 * s]!, w3: sharedGrads[3 * s + 1]!, w2: sharedGrads[3 * s + 2]! }));
    const router = routeBackward(tape.route.cache, comb.dWeights);
    const dRouter = dense([router.dRouter], ({ begin, end }) => [
      routeBackward(routeCacheRows(tape.route.cache, begin, end), comb.dWeights.subarray(begin * k, end * k)).dRouter,
    ]);
    addInPlace(g.router, dRouter[0]!);
    const dh = moeInputGrad(shared.dh, router.dh, dSlotInputs, k);
    const normBack = rmsNormBackward(tape.norm, dh);
    const dNorm = dense([normBack.dGain], ({ begin, end }) => [rmsNormBackward(normCacheRows(tape.norm, begin, end), rowsOf(dh, begin, end)).dGain]);
    addInPlace(g.norm, dNorm[0]!);
    dx = zeros(dy.shape);
    for (let i = 0; i < dx.data.length; i++) dx.data[i] = dy.data[i]! + normBack.dx.data[i]!;
  }
  const dEmbedding = dense([embedBackward(batch.inputs, dx, config.vocabSize)], ({ begin, end }) => [
    embedBackward(batch.inputs.subarray(begin, end), rowsOf(dx, begin, end), config.vocabSize),
  ]);
  grads.embedding.data.set(dEmbedding[0]!.data);

  let auxLoss = 0;
  for (const tape of tapes) auxLoss += tape.route.auxLoss;
  return { lossSum: ce.lossSum, auxLoss, grads, counts: tapes.map((t) => t.route.counts) };
}
