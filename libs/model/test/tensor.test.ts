/** Tensors and matrix products: shapes are checked, products are right, rows are independent. */
import { describe, expect, it } from 'vitest';
import { cloneTensor, gatherRows, matmul, matmulTransA, matmulTransB, Rng, ShapeError, tensorFrom, zeros, type Tensor } from '../src/index';
import { randomTensor } from './support/gradcheck';

/** Plain triple loop in float64: the product the kernels must match (to float32 rounding). */
function naive(a: Tensor, b: Tensor): Float64Array {
  const [m, k] = a.shape as [number, number];
  const n = b.shape[1]!;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[i * n + j]! += a.data[i * k + p]! * b.data[p * n + j]!;
  return out;
}

function transpose(t: Tensor): Tensor {
  const [r, c] = t.shape as [number, number];
  const out = zeros([c, r]);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out.data[j * r + i] = t.data[i * c + j]!;
  return out;
}

function expectClose(actual: Float32Array, expected: Float64Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(expected[i]!)));
}

describe('tensors', () => {
  it('zeros has the size of its shape; a scalar shape [] holds one value', () => {
    expect(zeros([3, 4]).data.length).toBe(12);
    expect(zeros([]).data.length).toBe(1);
    expect(zeros([0, 5]).data.length).toBe(0);
  });

  it('tensorFrom refuses data of the wrong size, naming both numbers', () => {
    expect(() => tensorFrom([2, 3], [1, 2, 3])).toThrow(ShapeError);
    expect(() => tensorFrom([2, 3], [1, 2, 3])).toThrow(/\[2, 3\] needs 6 values, got 3/);
    expect(tensorFrom([2, 2], [1, 2, 3, 4]).data).toEqual(Float32Array.from([1, 2, 3, 4]));
  });

  it('cloneTensor copies the data', () => {
    const t = tensorFrom([2], [1, 2]);
    const c = cloneTensor(t);
    c.data[0] = 9;
    expect(t.data[0]).toBe(1);
    expect(c.shape).toEqual([2]);
  });
});

describe('matmul', () => {
  const rng = new Rng(11);
  const a = randomTensor([7, 13], rng);
  const b = randomTensor([13, 5], rng);

  it('a·b, aᵀ·b and a·bᵀ equal the plain triple loop', () => {
    expectClose(matmul(a, b).data, naive(a, b));
    expectClose(matmulTransA(transpose(a), b).data, naive(a, b));
    expectClose(matmulTransB(a, transpose(b)).data, naive(a, b));
    expect(matmul(a, b).shape).toEqual([7, 5]);
  });

  it('refuses mismatched inner sizes, naming the shapes', () => {
    expect(() => matmul(a, a)).toThrow(/a is \[7, 13\] and b is \[7, 13\]: inner sizes 13 and 7 differ/);
    expect(() => matmulTransA(a, b)).toThrow(ShapeError);
    expect(() => matmulTransB(a, b)).toThrow(ShapeError);
  });

  it('handles zero rows', () => {
    expect(matmul(zeros([0, 13]), b).shape).toEqual([0, 5]);
    expect(matmulTransA(zeros([0, 4]), zeros([0, 3])).data).toEqual(new Float32Array(12));
  });

  it('row i of the product depends only on row i of a: a gathered subset of rows gives bitwise the same rows', () => {
    const x = randomTensor([64, 33], rng);
    const w = randomTensor([33, 17], rng);
    const wT = transpose(w);
    const rows = [5, 0, 63, 17, 17, 40];
    const sub = gatherRows(x, rows);
    for (const [all, part] of [
      [matmul(x, w), matmul(sub, w)],
      [matmulTransB(x, wT), matmulTransB(sub, wT)],
    ] as const) {
      expect(part.data).toEqual(gatherRows(all, rows).data);
    }
    // A single row alone, too.
    expect(matmul(gatherRows(x, [9]), w).data).toEqual(gatherRows(matmul(x, w), [9]).data);
  });
});

describe('Rng', () => {
  it('is deterministic from its seed and stays in range', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Rng(43).next()).not.toBe(new Rng(42).next());
    const ints = Array.from({ length: 1000 }, () => a.int(7));
    expect(new Set(ints)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6]));
  });

  it('normal() has mean 0 and variance 1', () => {
    const rng = new Rng(3);
    const n = 20_000;
    const z = Array.from({ length: n }, () => rng.normal());
    const mean = z.reduce((s, v) => s + v, 0) / n;
    const variance = z.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.04);
  });

  it('derived streams differ by key and repeat for the same key', () => {
    expect(Rng.derive(1, 'a', 2).next()).toBe(Rng.derive(1, 'a', 2).next());
    expect(Rng.derive(1, 'a', 2).next()).not.toBe(Rng.derive(1, 'a', 3).next());
    expect(Rng.derive(1, 'a').next()).not.toBe(Rng.derive(1, 'b').next());
  });
});
