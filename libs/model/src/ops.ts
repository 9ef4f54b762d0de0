/**
 * Dense float32 matrix products. Each output row is accumulated in float64 over the inner
 * dimension in ascending order (in groups of four) and rounded to float32 once, the same way
 * whatever the number of rows, so row i of the result depends only on row i of the left operand: applying a weight matrix to any subset of rows gives bitwise the
 * same rows as applying it to all of them. Distributed parity relies on this.
 */
import { matrixShape, type Tensor } from './tensor';
import { ShapeError } from './shape-error';

let scratch = new Float64Array(64);
function rowBuffer(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}

/**
 * out[m, n] = A[m, k] · B[k, n], B already in float64. Row i: acc[j] = Σ_p A[i, p]·B[p, j] in
 * float64, p ascending in groups of four ((a0·b0 + a1·b1) + a2·b2) + a3·b3 added to acc, then
 * rounded to float32. Row i reads only row i of A.
 */
function kernel(A: Float32Array, B: Float64Array, m: number, k: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  const acc = rowBuffer(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0, 0, n);
    const aRow = i * k;
    let p = 0;
    for (; p + 4 <= k; p += 4) {
      const a0 = A[aRow + p]!;
      const a1 = A[aRow + p + 1]!;
      const a2 = A[aRow + p + 2]!;
      const a3 = A[aRow + p + 3]!;
      const b0 = p * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      for (let j = 0; j < n; j++) acc[j]! += a0 * B[b0 + j]! + a1 * B[b1 + j]! + a2 * B[b2 + j]! + a3 * B[b3 + j]!;
    }
    for (; p < k; p++) {
      const a = A[aRow + p]!;
      const b0 = p * n;
      for (let j = 0; j < n; j++) acc[j]! += a * B[b0 + j]!;
    }
    const o = i * n;
    for (let j = 0; j < n; j++) out[o + j] = acc[j]!;
  }
  return out;
}

/** [r, c] row-major -> [c, r] row-major, into a new array of the given type. */
function transpose<T extends Float32Array | Float64Array>(X: Float32Array, r: number, c: number, out: T): T {
  for (let i = 0; i < r; i++) {
    const row = i * c;
    for (let j = 0; j < c; j++) out[j * r + i] = X[row + j]!;
  }
  return out;
}

/** a: [m, k], b: [k, n] -> a·b: [m, n]. Loop order i-k-j (streams rows of b); see `kernel`. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const [m, k] = matrixShape(a, 'matmul: a');
  const [kb, n] = matrixShape(b, 'matmul: b');
  if (k !== kb) throw new ShapeError(`matmul: a is [${m}, ${k}] and b is [${kb}, ${n}]: inner sizes ${k} and ${kb} differ`);
  return { shape: [m, n], data: kernel(a.data, Float64Array.from(b.data), m, k, n) };
}

/**
 * a: [k, m], b: [k, n] -> aᵀ·b: [m, n] (e.g. a weight gradient xᵀ·dy, summed over the k rows in
 * ascending order). Computed as transpose(a)·b with the same kernel.
 */
export function matmulTransA(a: Tensor, b: Tensor): Tensor {
  const [k, m] = matrixShape(a, 'matmulTransA: a');
  const [kb, n] = matrixShape(b, 'matmulTransA: b');
  if (k !== kb) throw new ShapeError(`matmulTransA: a is [${k}, ${m}] and b is [${kb}, ${n}]: row counts ${k} and ${kb} differ`);
  const at = transpose(a.data, k, m, new Float32Array(m * k));
  return { shape: [m, n], data: kernel(at, Float64Array.from(b.data), m, k, n) };
}

/**
 * a: [m, k], b: [n, k] -> a·bᵀ: [m, n], computed as a·transpose(b) with the same kernel, so row
 * i of the result depends only on row i of a.
 */
export function matmulTransB(a: Tensor, b: Tensor): Tensor {
  const [m, k] = matrixShape(a, 'matmulTransB: a');
  const [n, kb] = matrixShape(b, 'matmulTransB: b');
  if (k !== kb) throw new ShapeError(`matmulTransB: a is [${m}, ${k}] and b is [${n}, ${kb}]: column counts ${k} and ${kb} differ`);
  return { shape: [m, n], data: kernel(a.data, transpose(b.data, n, k, new Float64Array(k * n)), m, k, n) };
}

/** into += from, elementwise in float32 (same shapes required). */
export function addInPlace(into: Tensor, from: Tensor): void {
  if (into.data.length !== from.data.length) {
    throw new ShapeError(`addInPlace: [${into.shape.join(', ')}] and [${from.shape.join(', ')}] differ in size`);
  }
  const a = into.data;
  const b = from.data;
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}
