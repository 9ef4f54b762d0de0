/**
 * Finite-difference gradient checks for float32 code: central differences in float64 of a
 * scalar loss, perturbing one float32 element at a time (the step actually taken, after float32
 * rounding, is what divides the difference).
 */
import { expect } from 'vitest';
import { Rng, zeros, type Tensor } from '../../src/index';

/** A [shape] tensor of N(0, scale²) values from `rng`. */
export function randomTensor(shape: number[], rng: Rng, scale = 1): Tensor {
  const t = zeros(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * scale;
  return t;
}

/** Σ_i a[i]·r[i] in float64: a scalar loss whose gradient w.r.t. a is r. */
export function dot(a: ArrayLike<number>, r: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * r[i]!;
  return s;
}

/**
 * Checks `analytic` (dLoss/dTarget, same size as target.data) against central differences of
 * loss() w.r.t. `target.data` at up to `samples` indices (all when the tensor is small).
 * Passes when |analytic - numeric| <= rtol·max(|a|, |n|) + atol·(largest |analytic| entry).
 */
export function expectGradient(
  name: string,
  target: Float32Array,
  analytic: ArrayLike<number>,
  loss: () => number,
  options: { eps?: number; rtol?: number; atol?: number; samples?: number; rng?: Rng } = {},
): void {
  const { eps = 1e-2, rtol = 5e-3, atol = 5e-4, samples = 24 } = options;
  expect(analytic.length, `${name}: gradient size`).toBe(target.length);
  let scale = 0;
  for (let i = 0; i < analytic.length; i++) scale = Math.max(scale, Math.abs(analytic[i]!));
  const rng = options.rng ?? new Rng(target.length);
  const indices =
    target.length <= samples ? Array.from({ length: target.length }, (_, i) => i) : Array.from({ length: samples }, () => rng.int(target.length));
  for (const i of indices) {
    const orig = target[i]!;
    target[i] = orig + eps;
    const up = target[i]!;
    const lossUp = loss();
    target[i] = orig - eps;
    const down = target[i]!;
    const lossDown = loss();
    target[i] = orig;
    const numeric = (lossUp - lossDown) / (up - down);
    const a = analytic[i]!;
    const tolerance = rtol * Math.max(Math.abs(a), Math.abs(numeric)) + atol * scale;
    expect(Math.abs(a - numeric), `${name}[${i}]: analytic ${a}, numeric ${numeric}`).toBeLessThanOrEqual(tolerance);
  }
  expect(scale, `${name}: gradient is not all zero`).toBeGreaterThan(0);
}
