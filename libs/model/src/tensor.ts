/**
 * The one array type of this lib: a dense float32 tensor, row-major (the last axis varies
 * fastest). A tensor of shape [] holds one value; a dimension of 0 is allowed (an expert that
 * receives no tokens gets an [0, H] input).
 */
import { ShapeError } from './shape-error';

export { ShapeError };

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Number of elements of `shape` (1 for []); throws ShapeError on a negative or fractional dim. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`shape [${shape.join(', ')}] has dimension ${d}; dimensions are integers >= 0`);
    n *= d;
  }
  return n;
}

/** A tensor of `shape` filled with 0. */
export function zeros(shape: readonly number[]): Tensor {
  return { shape: [...shape], data: new Float32Array(sizeOf(shape)) };
}

/**
 * A tensor of `shape` over `data` (row-major). A Float32Array is used as is (not copied); a
 * plain array is converted. Throws ShapeError when data.length is not the shape's size.
 */
export function tensorFrom(shape: readonly number[], data: Float32Array | readonly number[]): Tensor {
  const n = sizeOf(shape);
  if (data.length !== n) throw new ShapeError(`shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  return { shape: [...shape], data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

/** A deep copy of `t` (new shape array, new data). */
export function cloneTensor(t: Tensor): Tensor {
  return { shape: [...t.shape], data: new Float32Array(t.data) };
}

/** `t` as [rows, cols]; throws ShapeError naming `what` unless t is 2-D (and cols matches when given). */
export function matrixShape(t: Tensor, what: string, cols?: number): [number, number] {
  if (t.shape.length !== 2) throw new ShapeError(`${what} must be 2-D, got shape [${t.shape.join(', ')}]`);
  const [r, c] = t.shape as [number, number];
  if (cols !== undefined && c !== cols) throw new ShapeError(`${what} has ${c} columns (shape [${r}, ${c}]), expected ${cols}`);
  if (t.data.length !== r * c) throw new ShapeError(`${what} has shape [${r}, ${c}] but ${t.data.length} values`);
  return [r, c];
}

/** Throws ShapeError naming `what` unless `t` has exactly `shape`. */
export function expectShape(t: Tensor, shape: readonly number[], what: string): void {
  const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!same) throw new ShapeError(`${what} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  if (t.data.length !== sizeOf(shape)) throw new ShapeError(`${what} has shape [${shape.join(', ')}] but ${t.data.length} values`);
}
