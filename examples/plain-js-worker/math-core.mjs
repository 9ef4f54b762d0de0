// The model's dense math, forward and backward: matrix products, embedding, RMSNorm, head and
// loss, the router. The experts and the rest are in math-moe.mjs; math.mjs gathers both.
//
// Shapes: T tokens this worker holds, H hidden, F expert FFN width, V vocabulary, E routed
// experts, k = top-k, slot s = t*k + j. A matrix is { shape: [rows, cols], data: Float32Array },
// row-major. Every function mirrors the reference trainer's (libs/model) arithmetic: float64
// accumulation where it accumulates, one rounding to float32 when it stores. Parity with the
// reference needs about 1e-5 relative on the loss; replicas stay equal because the dense update
// only uses all-reduced gradients, which are bitwise the same on every rank.

export const zeros = (shape) => ({ shape: [...shape], data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

// ---------------------------------------------------------------- matrix products
// Row i of every product depends only on row i of the left operand: acc[j] = sum_p A[i,p] B[p,j]
// in float64, p ascending in groups of four ((a0 b0 + a1 b1) + a2 b2) + a3 b3, then float32.

function kernel(A, B, m, k, n) {
  const out = new Float32Array(m * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    const aRow = i * k;
    let p = 0;
    for (; p + 4 <= k; p += 4) {
      const a0 = A[aRow + p], a1 = A[aRow + p + 1], a2 = A[aRow + p + 2], a3 = A[aRow + p + 3];
      const b0 = p * n, b1 = b0 + n, b2 = b1 + n, b3 = b2 + n;
      for (let j = 0; j < n; j++) acc[j] += a0 * B[b0 + j] + a1 * B[b1 + j] + a2 * B[b2 + j] + a3 * B[b3 + j];
    }
    for (; p < k; p++) {
      const a = A[aRow + p];
      const b0 = p * n;
      for (let j = 0; j < n; j++) acc[j] += a * B[b0 + j];
    }
    out.set(acc, i * n); // rounds each value to float32
  }
  return out;
}

function transpose(X, r, c, out) {
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = X[i * c + j];
  return out;
}

/** a [m, k] . b [k, n] -> [m, n] */
export function matmul(a, b) {
  const [m, k] = a.shape;
  const n = b.shape[1];
  return { shape: [m, n], data: kernel(a.data, Float64Array.from(b.data), m, k, n) };
}

/** a [k, m], b [k, n] -> a^T . b [m, n] */
export function matmulTransA(a, b) {
  const [k, m] = a.shape;
  const n = b.shape[1];
  return { shape: [m, n], data: kernel(transpose(a.data, k, m, new Float32Array(m * k)), Float64Array.from(b.data), m, k, n) };
}

/** a [m, k], b [n, k] -> a . b^T [m, n] */
export function matmulTransB(a, b) {
  const [m, k] = a.shape;
  const n = b.shape[0];
  return { shape: [m, n], data: kernel(a.data, transpose(b.data, n, k, new Float64Array(k * n)), m, k, n) };
}

/** into += from, elementwise in float32. */
export function addInto(into, from) {
  for (let i = 0; i < into.length; i++) into[i] += from[i];
}

// ---------------------------------------------------------------- embedding, norm, head, loss

/** tokens [T], table [V, H] -> [T, H] */
export function embed(tokens, table) {
  const H = table.shape[1];
  const x = zeros([tokens.length, H]);
  for (let t = 0; t < tokens.length; t++) x.data.set(table.data.subarray(tokens[t] * H, (tokens[t] + 1) * H), t * H);
  return x;
}

/** tokens [T], dy [T, H] -> dTable [V, H], summed per token id in float64, t ascending. */
export function embedBackward(tokens, dy, V) {
  const H = dy.shape[1];
  const acc = new Float64Array(V * H);
  for (let t = 0; t < tokens.length; t++) for (let i = 0; i < H; i++) acc[tokens[t] * H + i] += dy.data[t * H + i];
  return { shape: [V, H], data: Float32Array.from(acc) };
}

/** RMSNorm: y = x * r * gain, r = 1 / sqrt(mean(x^2) + eps), per row. x [T, H], gain [H]. */
export function rmsNorm(x, gain, eps) {
  const [T, H] = x.shape;
  const y = zeros([T, H]);
  const rinv = new Float64Array(T);
  const X = x.data, G = gain.data;
  for (let t = 0; t < T; t++) {
    const o = t * H;
    let ss = 0;
    for (let i = 0; i < H; i++) ss += X[o + i] * X[o + i];
    const r = 1 / Math.sqrt(ss / H + eps);
    rinv[t] = r;
    for (let i = 0; i < H; i++) y.data[o + i] = X[o + i] * r * G[i];
  }
  return { y, cache: { x, gain, rinv } };
}

/** dy [T, H] -> dx [T, H], dGain [H]. */
export function rmsNormBackward({ x, gain, rinv }, dy) {
  const [T, H] = x.shape;
  const X = x.data, G = gain.data, D = dy.data;
  const dx = zeros([T, H]);
  const dGain = new Float64Array(H);
  for (let t = 0; t < T; t++) {
    const o = t * H;
    const r = rinv[t];
    let dot = 0;
    for (let i = 0; i < H; i++) {
      dot += G[i] * D[o + i] * X[o + i];
      dGain[i] += D[o + i] * X[o + i] * r;
    }
    const c = (r * r * dot) / H;
    for (let i = 0; i < H; i++) dx.data[o + i] = r * (G[i] * D[o + i] - X[o + i] * c);
  }
  return { dx, dGain: { shape: [H], data: Float32Array.from(dGain) } };
}

/** logits [T, V], targets [T] -> lossSum = sum CE / divisor, dLogits = (softmax - onehot) / divisor. */
export function crossEntropy(logits, targets, divisor) {
  const [T, V] = logits.shape;
  const L = logits.data;
  const dLogits = zeros([T, V]);
  const p = new Float64Array(V);
  let total = 0;
  for (let t = 0; t < T; t++) {
    const o = t * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, L[o + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += p[v] = Math.exp(L[o + v] - max);
    total += Math.log(sum) + max - L[o + targets[t]];
    for (let v = 0; v < V; v++) dLogits.data[o + v] = (p[v] / sum - (v === targets[t] ? 1 : 0)) / divisor;
  }
  return { lossSum: total / divisor, dLogits };
}

// ---------------------------------------------------------------- router

/**
 * Top-k router. h [T, H], router [H, E], bias [E]. scores = softmax or sigmoid of h.router; the k
 * experts with the largest score + bias (ties to the lower id), slots in descending order;
 * weights = selected scores renormalised. With balancing "aux", the sequence-wise aux loss.
 */
export function route(h, router, bias, model, seqLen, globalSequences) {
  const E = model.routedExperts, k = model.topK;
  const T = h.shape[0];
  const logits = matmul(h, router).data;
  const scores = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    const o = t * E;
    if (model.scoreFunction === 'SOFTMAX') {
      let max = -Infinity;
      for (let e = 0; e < E; e++) max = Math.max(max, logits[o + e]);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += scores[o + e] = Math.exp(logits[o + e] - max);
      for (let e = 0; e < E; e++) scores[o + e] /= sum;
    } else {
      for (let e = 0; e < E; e++) scores[o + e] = 1 / (1 + Math.exp(-logits[o + e]));
    }
  }
  const expertIds = new Int32Array(T * k);
  const weights = new Float32Array(T * k);
  const counts = new Int32Array(E);
  const selectedSum = new Float64Array(T);
  const taken = new Uint8Array(E);
  for (let t = 0; t < T; t++) {
    const o = t * E;
    taken.fill(0);
    let sum = 0;
    for (let j = 0; j < k; j++) {
      let best = -1, bestValue = -Infinity;
      for (let e = 0; e < E; e++) {
        if (taken[e]) continue;
        const v = scores[o + e] + bias.data[e];
        if (best < 0 || v > bestValue) [best, bestValue] = [e, v];
      }
      taken[best] = 1;
      expertIds[t * k + j] = best;
      counts[best] += 1;
      sum += scores[o + best];
    }
    selectedSum[t] = sum;
    for (let j = 0; j < k; j++) weights[t * k + j] = scores[o + expertIds[t * k + j]] / sum;
  }
  let auxLoss = 0;
  let aux;
  if (model.balancing === 'AUX_LOSS') {
    const scoreSum = new Float64Array(T);
    const norm = new Float64Array(T * E);
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += scores[t * E + e];
      scoreSum[t] = s;
      for (let e = 0; e < E; e++) norm[t * E + e] = scores[t * E + e] / s;
    }
    // per sequence: f_e = E/(k L) * count_e, P_e = mean_t s'_te, loss = alpha sum_e f_e P_e / globalSequences
    const S = T / seqLen;
    const fScaled = new Float64Array(S * E);
    const c = new Float64Array(E), P = new Float64Array(E);
    for (let q = 0; q < S; q++) {
      c.fill(0);
      P.fill(0);
      for (let t = q * seqLen; t < (q + 1) * seqLen; t++) {
        for (let j = 0; j < k; j++) c[expertIds[t * k + j]] += 1;
        for (let e = 0; e < E; e++) P[e] += norm[t * E + e];
      }
      let seqLoss = 0;
      for (let e = 0; e < E; e++) {
        const f = (E / (k * seqLen)) * c[e];
        seqLoss += f * (P[e] / seqLen);
        fScaled[q * E + e] = (model.auxLossAlpha * f) / (seqLen * globalSequences);
      }
      auxLoss += (model.auxLossAlpha * seqLoss) / globalSequences;
    }
    aux = { fScaled, seqLen, scoreSum };
  }
  return { expertIds, weights, counts, auxLoss, cache: { h, router, scoreFunction: model.scoreFunction, k, scores, expertIds, weights, selectedSum, aux } };
}

/** dWeights [T*k] -> dh [T, H], dRouter [H, E]. */
export function routeBackward(cache, dWeights) {
  const { h, router, scores, expertIds, weights, selectedSum, k } = cache;
  const T = h.shape[0];
  const E = router.shape[1];
  const ds = new Float64Array(E);
  const dlogits = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    const o = t * E;
    ds.fill(0);
    let dot = 0;
    for (let j = 0; j < k; j++) dot += dWeights[t * k + j] * weights[t * k + j];
    for (let j = 0; j < k; j++) ds[expertIds[t * k + j]] += (dWeights[t * k + j] - dot) / selectedSum[t];
    if (cache.aux) {
      const { fScaled, seqLen, scoreSum } = cache.aux;
      const q = Math.floor(t / seqLen);
      const S = scoreSum[t];
      let gdot = 0;
      for (let e = 0; e < E; e++) gdot += fScaled[q * E + e] * (scores[o + e] / S);
      for (let e = 0; e < E; e++) ds[e] += (fScaled[q * E + e] - gdot) / S;
    }
    if (cache.scoreFunction === 'SOFTMAX') {
      let sdot = 0;
      for (let e = 0; e < E; e++) sdot += scores[o + e] * ds[e];
      for (let e = 0; e < E; e++) dlogits[o + e] = scores[o + e] * (ds[e] - sdot);
    } else {
      for (let e = 0; e < E; e++) dlogits[o + e] = ds[e] * scores[o + e] * (1 - scores[o + e]);
    }
  }
  const dl = { shape: [T, E], data: dlogits };
  return { dh: matmulTransB(dl, router), dRouter: matmulTransA(h, dl) };
}
