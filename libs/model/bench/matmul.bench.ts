/**
 * Matmul micro-benchmark (not a test): GFLOP/s of matmul, matmulTransA and matmulTransB on
 * square sizes and on the expert shapes of TINY_MODEL. Run from the repo root:
 *   npx tsx libs/model/bench/matmul.bench.ts
 */
import { matmul, matmulTransA, matmulTransB, Rng, zeros, type Tensor } from '../src/index';

function random(shape: [number, number], rng: Rng): Tensor {
  const t = zeros(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal();
  return t;
}

/** Median GFLOP/s of `fn` (2·m·k·n flops per call) over repeats lasting about `budgetMs` in total. */
function measure(fn: () => void, flops: number, budgetMs = 400): number {
  fn();
  const start = performance.now();
  fn();
  const once = Math.max(performance.now() - start, 1e-3);
  const reps = Math.max(1, Math.floor(budgetMs / 5 / once));
  const rates: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    rates.push((flops * reps) / ((performance.now() - t0) / 1000) / 1e9);
  }
  return rates.sort((a, b) => a - b)[2]!;
}

const rng = new Rng(1);
const shapes: [string, number, number, number][] = [
  ['128^3', 128, 128, 128],
  ['256^3', 256, 256, 256],
  ['512^3', 512, 512, 512],
  ['expert 512x32x32', 512, 32, 32],
];
console.log('shape                 matmul  transA  transB   (GFLOP/s, median of 5)');
for (const [name, m, k, n] of shapes) {
  const a = random([m, k], rng);
  const b = random([k, n], rng);
  const aT = random([k, m], rng);
  const bT = random([n, k], rng);
  const flops = 2 * m * k * n;
  const g1 = measure(() => matmul(a, b), flops);
  const g2 = measure(() => matmulTransA(aT, b), flops);
  const g3 = measure(() => matmulTransB(a, bT), flops);
  console.log(`${name.padEnd(20)} ${g1.toFixed(2).padStart(7)} ${g2.toFixed(2).padStart(7)} ${g3.toFixed(2).padStart(7)}`);
}
