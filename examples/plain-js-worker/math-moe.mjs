// The model's MoE math, forward and backward: SwiGLU experts, combining a token's k slots, the
// residual, the input gradient of the MoE block; then AdamW, bias balancing and the checksum.
// Same conventions as math-core.mjs.
import { addInto, matmul, matmulTransA, matmulTransB, zeros } from './math-core.mjs';

// ---------------------------------------------------------------- experts (SwiGLU)

const sigmoid = (v) => 1 / (1 + Math.exp(-v));

/** y = (silu(x.w1) * (x.w3)).w2; x [n, H] (n may be 0) -> y [n, H]. */
export function expertForward(p, x) {
  const a = matmul(x, p.w1);
  const b = matmul(x, p.w3);
  const g = zeros(a.shape);
  for (let i = 0; i < g.data.length; i++) g.data[i] = a.data[i] * sigmoid(a.data[i]) * b.data[i];
  return { y: matmul(g, p.w2), cache: { x, a, b, g } };
}

/** dy [n, H] -> dx [n, H] and this call's weight gradients. */
export function expertBackward(p, { x, a, b, g }, dy) {
  const dg = matmulTransB(dy, p.w2);
  const da = zeros(a.shape);
  const db = zeros(a.shape);
  for (let i = 0; i < da.data.length; i++) {
    const av = a.data[i];
    const s = sigmoid(av);
    const silu = av * s;
    da.data[i] = dg.data[i] * b.data[i] * s * (1 + av * (1 - s));
    db.data[i] = dg.data[i] * silu;
  }
  const dx1 = matmulTransB(da, p.w1);
  const dx3 = matmulTransB(db, p.w3);
  const dx = zeros(x.shape);
  for (let i = 0; i < dx.data.length; i++) dx.data[i] = dx1.data[i] + dx3.data[i];
  return { dx, grads: { w1: matmulTransA(x, da), w3: matmulTransA(x, db), w2: matmulTransA(g, dy) } };
}

/** Shared experts on every token, outputs summed in order (float32 adds). */
export function sharedForward(shared, h) {
  const caches = [];
  let sum;
  for (const p of shared) {
    const out = expertForward(p, h);
    caches.push(out.cache);
    if (sum) addInto(sum.data, out.y.data);
    else sum = out.y;
  }
  return { y: sum ?? zeros(h.shape), caches };
}

export function sharedBackward(shared, caches, dy) {
  let dh;
  const grads = [];
  shared.forEach((p, s) => {
    const back = expertBackward(p, caches[s], dy);
    grads.push(back.grads);
    if (dh) addInto(dh.data, back.dx.data);
    else dh = back.dx;
  });
  return { dh: dh ?? zeros(dy.shape), grads };
}

// ---------------------------------------------------------------- combining the k slots of a token

/** y[t] = sum_j w[t k + j] out[t k + j], float64 per element. slotOutputs [T k, H] -> [T, H]. */
export function combineSlots(slotOutputs, weights, k) {
  const [S, H] = slotOutputs.shape;
  const T = S / k;
  const y = zeros([T, H]);
  const O = slotOutputs.data;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < H; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += weights[t * k + j] * O[(t * k + j) * H + i];
      y.data[t * H + i] = s;
    }
  }
  return y;
}

/** dy [T, H] -> dSlotOutputs [T k, H] = w dy, dWeights [T k] = dy . out. */
export function combineSlotsBackward(dy, slotOutputs, weights, k) {
  const [S, H] = slotOutputs.shape;
  const T = S / k;
  const dSlotOutputs = zeros([S, H]);
  const dWeights = new Float32Array(S);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      const s = t * k + j;
      let dot = 0;
      for (let i = 0; i < H; i++) {
        dSlotOutputs.data[s * H + i] = weights[s] * dy.data[t * H + i];
        dot += dy.data[t * H + i] * slotOutputs.data[s * H + i];
      }
      dWeights[s] = dot;
    }
  }
  return { dSlotOutputs, dWeights };
}

/** x + (shared + combined), elementwise. */
export function residualAdd(x, shared, combined) {
  const out = zeros(x.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = x.data[i] + (shared.data[i] + combined.data[i]);
  return out;
}

/** dh[t] = ((dhShared[t] + dhRouter[t]) + dSlot[t k]) + ... + dSlot[t k + k-1], in float64, one rounding. */
export function moeInputGrad(dhShared, dhRouter, dSlotInputs, k) {
  const [T, H] = dhShared.shape;
  const dh = zeros([T, H]);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < H; i++) {
      let s = dhShared.data[t * H + i] + dhRouter.data[t * H + i];
      for (let j = 0; j < k; j++) s += dSlotInputs.data[(t * k + j) * H + i];
      dh.data[t * H + i] = s;
    }
  }
  return dh;
}

// ---------------------------------------------------------------- optimizer, balancing, checksum

/** AdamW over a fixed list of tensors; state per position. Per element in float64, stored as float32. */
export class AdamW {
  constructor({ learningRate, beta1, beta2, eps, weightDecay }) {
    Object.assign(this, { lr: learningRate, b1: beta1, b2: beta2, eps, wd: weightDecay, t: 0 });
  }

  /** Sets the state: t steps taken, m and v one Float32Array per position (t = 0: fresh). */
  restore(t, m, v) {
    this.t = t;
    this.m = t === 0 ? undefined : m;
    this.v = t === 0 ? undefined : v;
  }

  step(params, grads) {
    this.m ??= params.map((p) => new Float32Array(p.length));
    this.v ??= params.map((p) => new Float32Array(p.length));
    this.t += 1;
    const { lr, b1, b2, eps, wd } = this;
    const c1 = 1 - Math.pow(b1, this.t);
    const c2 = 1 - Math.pow(b2, this.t);
    const decay = 1 - lr * wd;
    params.forEach((P, i) => {
      const G = grads[i], M = this.m[i], V = this.v[i];
      for (let j = 0; j < P.length; j++) {
        const g = G[j];
        const mj = b1 * M[j] + (1 - b1) * g;
        const vj = b2 * V[j] + (1 - b2) * g * g;
        M[j] = mj;
        V[j] = vj;
        P[j] = P[j] * decay - (lr * (mj / c1)) / (Math.sqrt(vj / c2) + eps);
      }
    });
  }
}

/** bias[e] += speed * sign(mean - counts[e]): underloaded experts become more attractive. */
export function updateRouterBias(bias, counts, speed) {
  const E = bias.length;
  let total = 0;
  for (let e = 0; e < E; e++) total += counts[e];
  const mean = total / E;
  for (let e = 0; e < E; e++) bias[e] += speed * Math.sign(mean - counts[e]);
}

/** FNV-1a 64 over the float32 bytes (little-endian) of every array in order: 16 hex digits. */
export function checksum(arrays) {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const a of arrays) {
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (let i = 0; i < bytes.length; i++) {
      lo = (lo ^ bytes[i]) >>> 0;
      const prod = lo * 0x1b3;
      const carry = Math.floor(prod / 4294967296);
      hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
      lo = prod >>> 0;
    }
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}
