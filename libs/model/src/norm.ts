/**
 * RMSNorm: y[t, i] = x[t, i] · r[t] · gain[i], with r[t] = 1 / sqrt(mean_i x[t, i]² + eps).
 * Row-wise (row t of y depends only on row t of x); computed in float64, stored as float32.
 */
import { ShapeError } from './shape-error';
import { expectShape, matrixShape, zeros, type Tensor } from './tensor';

export interface RmsNormCache {
  readonly x: Tensor;
  readonly gain: Tensor;
  /** [T] the reciprocal RMS r[t] of each row. */
  readonly rinv: Float64Array;
}

/** x: [T, H], gain: [H], eps > 0 (added to the mean square) -> y: [T, H]. */
export function rmsNorm(x: Tensor, gain: Tensor, eps: number): { y: Tensor; cache: RmsNormCache } {
  const [T, H] = matrixShape(x, 'rmsNorm: x');
  expectShape(gain, [H], 'rmsNorm: gain');
  if (!(eps > 0)) throw new RangeError(`rmsNorm: eps must be > 0, got ${eps}`);
  const y = zeros([T, H]);
  const rinv = new Float64Array(T);
  const X = x.data;
  const G = gain.data;
  for (let t = 0; t < T; t++) {
    const o = t * H;
    let ss = 0;
    for (let i = 0; i < H; i++) ss += X[o + i]! * X[o + i]!;
    const r = 1 / Math.sqrt(ss / H + eps);
    rinv[t] = r;
    for (let i = 0; i < H; i++) y.data[o + i] = X[o + i]! * r * G[i]!;
  }
  return { y, cache: { x, gain, rinv } };
}

/**
 * dy: [T, H] gradient of the loss w.r.t. y -> dx: [T, H], dGain: [H].
 * dx[t, i] = r (g_i dy_ti - x_ti r² (Σ_j g_j dy_tj x_tj) / H); dGain_i = Σ_t dy_ti x_ti r_t.
 */
export function rmsNormBackward(cache: RmsNormCache, dy: Tensor): { dx: Tensor; dGain: Tensor } {
  const { x, gain, rinv } = cache;
  const [T, H] = x.shape as [number, number];
  if (dy.shape.length !== 2 || dy.shape[0] !== T || dy.shape[1] !== H) {
    throw new ShapeError(`rmsNormBackward: dy has shape [${dy.shape.join(', ')}], expected [${T}, ${H}]`);
  }
  const X = x.data;
  const G = gain.data;
  const D = dy.data;
  const dx = zeros([T, H]);
  const dGain = new Float64Array(H);
  for (let t = 0; t < T; t++) {
    const o = t * H;
    const r = rinv[t]!;
    let dot = 0;
    for (let i = 0; i < H; i++) {
      dot += G[i]! * D[o + i]! * X[o + i]!;
      dGain[i]! += D[o + i]! * X[o + i]! * r;
    }
    const c = (r * r * dot) / H;
    for (let i = 0; i < H; i++) dx.data[o + i] = r * (G[i]! * D[o + i]! - X[o + i]! * c);
  }
  return { dx, dGain: { shape: [H], data: Float32Array.from(dGain) } };
}
