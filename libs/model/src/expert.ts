/**
 * One expert FFN (routed or shared), SwiGLU: y = (silu(x·w1) ⊙ (x·w3))·w2, silu(a) = a·σ(a).
 * Row-wise: row i of y (and of dx) depends only on row i of x (and dy), so an expert applied to a
 * gathered subset of token rows gives bitwise the rows it gives when applied to all.
 */
import { matmul, matmulTransA, matmulTransB } from './ops';
import type { ExpertParams } from './params';
import { ShapeError } from './shape-error';
import { matrixShape, zeros, type Tensor } from './tensor';

export interface ExpertCache {
  /** [n, H] the input. */
  readonly x: Tensor;
  /** [n, F] gate pre-activation x·w1. */
  readonly a: Tensor;
  /** [n, F] up projection x·w3. */
  readonly b: Tensor;
  /** [n, F] silu(a) ⊙ b. */
  readonly g: Tensor;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

function checkExpert(p: ExpertParams, H: number, what: string): number {
  const [h1, F] = matrixShape(p.w1, `${what}: w1`);
  if (h1 !== H) throw new ShapeError(`${what}: w1 is [${h1}, ${F}] but x has ${H} columns`);
  matrixShape(p.w3, `${what}: w3`, F);
  if (p.w3.shape[0] !== H) throw new ShapeError(`${what}: w3 is [${p.w3.shape.join(', ')}], expected [${H}, ${F}]`);
  const [f2, h2] = matrixShape(p.w2, `${what}: w2`);
  if (f2 !== F || h2 !== H) throw new ShapeError(`${what}: w2 is [${f2}, ${h2}], expected [${F}, ${H}]`);
  return F;
}

/** p: w1 [H, F], w3 [H, F], w2 [F, H]; x: [n, H] (n may be 0) -> y: [n, H]. */
export function expertForward(p: ExpertParams, x: Tensor): { y: Tensor; cache: ExpertCache } {
  const [n, H] = matrixShape(x, 'expertForward: x');
  const F = checkExpert(p, H, 'expertForward');
  const a = matmul(x, p.w1);
  const b = matmul(x, p.w3);
  const g = zeros([n, F]);
  for (let i = 0; i < g.data.length; i++) {
    const av = a.data[i]!;
    g.data[i] = av * sigmoid(av) * b.data[i]!;
  }
  return { y: matmul(g, p.w2), cache: { x, a, b, g } };
}

/** What an expert's weight gradients need once its input gradient is computed (see `expertInputGrad`). */
export interface ExpertWeightGradInputs {
  /** [n, H] the forward's input. */
  readonly x: Tensor;
  /** [n, F] silu(a) ⊙ b from the forward. */
  readonly g: Tensor;
  /** [n, H] gradient w.r.t. y. */
  readonly dy: Tensor;
  /** [n, F] gradients w.r.t. the gate and up pre-activations. */
  readonly da: Tensor;
  readonly db: Tensor;
}

/**
 * The input-gradient half of `expertBackward` (zero-bubble's B): dy [n, H] -> dx [n, H], and what
 * `expertWeightGrad` needs later (the weight-gradient half, W), so dx can be sent on first.
 */
export function expertInputGrad(p: ExpertParams, cache: ExpertCache, dy: Tensor): { dx: Tensor; weightGradInputs: ExpertWeightGradInputs } {
  const { x, a, b, g } = cache;
  const [n, H] = x.shape as [number, number];
  if (dy.shape.length !== 2 || dy.shape[0] !== n || dy.shape[1] !== H) {
    throw new ShapeError(`expertBackward: dy has shape [${dy.shape.join(', ')}], expected [${n}, ${H}]`);
  }
  const F = checkExpert(p, H, 'expertBackward');
  const dg = matmulTransB(dy, p.w2); // [n, F]
  const da = zeros([n, F]);
  const db = zeros([n, F]);
  for (let i = 0; i < n * F; i++) {
    const av = a.data[i]!;
    const s = sigmoid(av);
    const silu = av * s;
    da.data[i] = dg.data[i]! * b.data[i]! * s * (1 + av * (1 - s));
    db.data[i] = dg.data[i]! * silu;
  }
  const dx1 = matmulTransB(da, p.w1);
  const dx3 = matmulTransB(db, p.w3);
  const dx = zeros([n, H]);
  for (let i = 0; i < dx.data.length; i++) dx.data[i] = dx1.data[i]! + dx3.data[i]!;
  return { dx, weightGradInputs: { x, g, dy, da, db } };
}

/** The weight-gradient half of `expertBackward`: {w1 [H, F], w3 [H, F], w2 [F, H]}, summed over rows in ascending order. */
export function expertWeightGrad(w: ExpertWeightGradInputs): ExpertParams {
  return { w1: matmulTransA(w.x, w.da), w3: matmulTransA(w.x, w.db), w2: matmulTransA(w.g, w.dy) };
}

/**
 * dy: [n, H] gradient w.r.t. y -> dx: [n, H] and grads {w1 [H, F], w3 [H, F], w2 [F, H]} (the
 * gradients of this call only; zero when n = 0). Weight gradients sum over rows in ascending order.
 * Exactly `expertInputGrad` then `expertWeightGrad`, so a split backward gives the same bits.
 */
export function expertBackward(p: ExpertParams, cache: ExpertCache, dy: Tensor): { dx: Tensor; grads: ExpertParams } {
  const { dx, weightGradInputs } = expertInputGrad(p, cache, dy);
  return { dx, grads: expertWeightGrad(weightGradInputs) };
}
