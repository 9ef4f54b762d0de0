/**
 * The top-k router (DeepSeek-V3 style). For h: [T, H]:
 *   logits = h · router                    [T, E]
 *   scores = softmax(logits) over the E experts, or sigmoid(logits) elementwise
 *   select = scores + routerBias           the bias only decides WHICH experts are chosen
 *   with routerGroups G > 1 and routerGroupTopK M < G (node-limited routing, group-limit.ts),
 *     only the experts of the token's M best groups may be chosen
 *   the k experts of token t are those allowed with the largest select values; its k slots
 *     (slot s = t·k + j) are ordered by descending select value, ties to the lower expert id
 *   weights[t·k + j] = scores[t, e_j] / Σ_j' scores[t, e_j']   (selected scores, renormalized)
 * Every slot has a real expert (no -1 in this lib). Row t of every output depends only on row t
 * of h (and, for the aux loss, on the other tokens of its sequence).
 * With balancing 'aux' the sequence-wise aux loss (see balancing.ts) is returned and its
 * gradient is included by routeBackward.
 */
import { sequenceAuxLoss } from './balancing';
import { allowedExperts } from './group-limit';
import type { ModelConfig } from './config';
import { matmul, matmulTransA, matmulTransB } from './ops';
import type { LayerParams } from './params';
import { ShapeError } from './shape-error';
import { expectShape, matrixShape, type Tensor } from './tensor';

export interface RouteOptions {
  /** L: tokens per sequence; T must be a multiple of it (the aux loss is per sequence). */
  seqLen: number;
  /** Sequences in the whole global batch: the aux loss is averaged over them, so workers' values add up. */
  globalSequences: number;
}

export interface RouteCache {
  readonly h: Tensor;
  readonly router: Tensor;
  readonly scoreFunction: ModelConfig['scoreFunction'];
  readonly topK: number;
  /** [T, E] scores (float64). */
  readonly scores: Float64Array;
  readonly expertIds: Int32Array;
  readonly weights: Float32Array;
  /** [T] Σ of the selected scores of each token. */
  readonly selectedSum: Float64Array;
  /** Aux loss only: [T/L, E] dLoss/ds' per sequence, and the [T] Σ of all E scores (sigmoid). */
  readonly aux?: { fScaled: Float64Array; seqLen: number; scoreSum: Float64Array };
}

export interface Route {
  /** [T·k] expert of slot s = t·k + j. */
  expertIds: Int32Array;
  /** [T·k] combine weight of each slot; a token's k weights sum to 1. */
  weights: Float32Array;
  /** [E] slots (tokens) sent to each expert. */
  counts: Int32Array;
  /** Aux loss of these tokens (0 unless balancing is 'aux'), already divided by globalSequences. */
  auxLoss: number;
  cache: RouteCache;
}

/**
 * Routes h: [T, H] with layer.router: [H, E] and layer.routerBias: [E]; see the file comment for
 * the semantics. Throws ShapeError when T is not a multiple of options.seqLen or shapes disagree.
 */
export function route(
  h: Tensor,
  layer: Pick<LayerParams, 'router' | 'routerBias'>,
  config: ModelConfig,
  options: RouteOptions,
): Route {
  const E = config.routedExperts;
  const k = config.topK;
  const [T, H] = matrixShape(h, 'route: h');
  expectShape(layer.router, [H, E], 'route: router');
  expectShape(layer.routerBias, [E], 'route: routerBias');
  if (!(k >= 1 && k <= E)) throw new ShapeError(`route: top_k=${k} must be in [1, ${E}]`);
  if (!Number.isInteger(options.seqLen) || options.seqLen <= 0 || T % options.seqLen !== 0) {
    throw new ShapeError(`route: ${T} tokens are not a whole number of sequences of seqLen=${options.seqLen}`);
  }
  const logits = matmul(h, layer.router).data;
  const scores = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    const o = t * E;
    if (config.scoreFunction === 'softmax') {
      let max = -Infinity;
      for (let e = 0; e < E; e++) max = Math.max(max, logits[o + e]!);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += scores[o + e] = Math.exp(logits[o + e]! - max);
      for (let e = 0; e < E; e++) scores[o + e]! /= sum;
    } else {
      for (let e = 0; e < E; e++) scores[o + e] = 1 / (1 + Math.exp(-logits[o + e]!));
    }
  }
  const bias = layer.routerBias.data;
  const expertIds = new Int32Array(T * k);
  const weights = new Float32Array(T * k);
  const counts = new Int32Array(E);
  const selectedSum = new Float64Array(T);
  const taken = new Uint8Array(E);
  const select = new Float64Array(E);
  const allowed = new Uint8Array(E);
  const groupScratch = new Float64Array(config.routerGroups);
  for (let t = 0; t < T; t++) {
    const o = t * E;
    for (let e = 0; e < E; e++) select[e] = scores[o + e]! + bias[e]!;
    allowedExperts(select, 0, E, config.routerGroups, config.routerGroupTopK, k, allowed, groupScratch);
    // An expert outside the token's groups counts as already taken.
    for (let e = 0; e < E; e++) taken[e] = allowed[e] ? 0 : 1;
    let sum = 0;
    for (let j = 0; j < k; j++) {
      let best = -1;
      let bestValue = -Infinity;
      for (let e = 0; e < E; e++) {
        if (taken[e]) continue;
        const v = select[e]!;
        if (best < 0 || v > bestValue) {
          best = e;
          bestValue = v;
        }
      }
      taken[best] = 1;
      expertIds[t * k + j] = best;
      counts[best]! += 1;
      sum += scores[o + best]!;
    }
    selectedSum[t] = sum;
    for (let j = 0; j < k; j++) weights[t * k + j] = scores[o + expertIds[t * k + j]!]! / sum;
  }
  let auxLoss = 0;
  let aux: RouteCache['aux'];
  if (config.balancing === 'aux') {
    const scoreSum = new Float64Array(T);
    const norm = new Float64Array(T * E);
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += scores[t * E + e]!;
      scoreSum[t] = s;
      for (let e = 0; e < E; e++) norm[t * E + e] = scores[t * E + e]! / s;
    }
    const a = sequenceAuxLoss(norm, expertIds, T, E, k, options.seqLen, config.auxLossAlpha, options.globalSequences);
    auxLoss = a.loss;
    aux = { fScaled: a.fScaled, seqLen: options.seqLen, scoreSum };
  }
  const cache: RouteCache = {
    h,
    router: layer.router,
    scoreFunction: config.scoreFunction,
    topK: k,
    scores,
    expertIds,
    weights,
    selectedSum,
    ...(aux ? { aux } : {}),
  };
  return { expertIds, weights, counts, auxLoss, cache };
}

/**
 * dWeights: [T·k] gradient of the loss w.r.t. the combine weights -> dh: [T, H] (row t depends
 * only on token t's own values and, for the aux loss, its sequence's counts), dRouter: [H, E].
 * Includes the aux-loss gradient when the route had balancing 'aux'. The bias gets no gradient.
 */
export function routeBackward(cache: RouteCache, dWeights: Float32Array): { dh: Tensor; dRouter: Tensor } {
  const { h, router, scores, expertIds, weights, selectedSum, topK: k } = cache;
  const T = h.shape[0]!;
  const E = router.shape[1]!;
  if (dWeights.length !== T * k) throw new ShapeError(`routeBackward: dWeights has ${dWeights.length} values, expected T*k = ${T}*${k} = ${T * k}`);
  const ds = new Float64Array(E);
  const dlogits = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    const o = t * E;
    ds.fill(0);
    // weights w_j = s_j / S: dL/ds_j = (dw_j - Σ_m dw_m w_m) / S
    let dot = 0;
    for (let j = 0; j < k; j++) dot += dWeights[t * k + j]! * weights[t * k + j]!;
    for (let j = 0; j < k; j++) ds[expertIds[t * k + j]!]! += (dWeights[t * k + j]! - dot) / selectedSum[t]!;
    if (cache.aux) {
      // s' = s / Σ_e s_e: dL/ds_e = (g_e - Σ_e' g_e' s'_e') / Σ s
      const { fScaled, seqLen, scoreSum } = cache.aux;
      const q = Math.floor(t / seqLen);
      const S = scoreSum[t]!;
      let gdot = 0;
      for (let e = 0; e < E; e++) gdot += fScaled[q * E + e]! * (scores[o + e]! / S);
      for (let e = 0; e < E; e++) ds[e]! += (fScaled[q * E + e]! - gdot) / S;
    }
    if (cache.scoreFunction === 'softmax') {
      let sdot = 0;
      for (let e = 0; e < E; e++) sdot += scores[o + e]! * ds[e]!;
      for (let e = 0; e < E; e++) dlogits[o + e] = scores[o + e]! * (ds[e]! - sdot);
    } else {
      for (let e = 0; e < E; e++) dlogits[o + e] = ds[e]! * scores[o + e]! * (1 - scores[o + e]!);
    }
  }
  const dl: Tensor = { shape: [T, E], data: dlogits };
  return { dh: matmulTransB(dl, router), dRouter: matmulTransA(h, dl) };
}
