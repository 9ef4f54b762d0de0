/**
 * bfloat16: the upper 16 bits of an IEEE float32. Encoding rounds to nearest, ties to even;
 * NaN stays NaN (a quiet NaN with the sign kept); overflow past the largest bf16 becomes ±Inf,
 * as IEEE rounding says.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bits of one float32 value. */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  return bf16BitsOfF32Bits(u32[0]!);
}

/** bf16 bits from float32 bits `bits` (uint32). */
export function bf16BitsOfF32Bits(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) {
    return ((bits >>> 16) | 0x0040) & 0xffff; // NaN: keep the sign, force a quiet payload
  }
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The float32 value of bf16 bits `bits`. */
export function bf16BitsToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

const bitsOf = (values: Float32Array) => new Uint32Array(values.buffer, values.byteOffset, values.length);

/** Encodes `values` [n] into `out` [n] bf16 bits. */
export function encodeBf16(values: Float32Array, out: Uint16Array): void {
  if (out.length !== values.length) throw new RangeError(`bf16: out has ${out.length} values, input ${values.length}`);
  const bits = bitsOf(values);
  for (let i = 0; i < bits.length; i++) out[i] = bf16BitsOfF32Bits(bits[i]!);
}

/**
 * Encodes `count` rows of `cols` values picked from `values` into `out` [count * cols]: row i of
 * `out` is row `rowOf(i)` of `values` (the caller keeps it inside `values`).
 */
export function encodeBf16Rows(values: Float32Array, cols: number, count: number, rowOf: (i: number) => number, out: Uint16Array): void {
  if (out.length !== count * cols) throw new RangeError(`bf16: out has ${out.length} values for ${count} rows of ${cols}`);
  const bits = bitsOf(values);
  for (let i = 0; i < count; i++) {
    let from = rowOf(i) * cols;
    const end = (i + 1) * cols;
    for (let to = i * cols; to < end; to++, from++) out[to] = bf16BitsOfF32Bits(bits[from]!);
  }
}

/** Decodes bf16 bits `bits` [n] into `out` [n] float32. */
export function decodeBf16(bits: Uint16Array, out: Float32Array): void {
  if (out.length !== bits.length) throw new RangeError(`bf16: out has ${out.length} values, input ${bits.length}`);
  const o = bitsOf(out);
  for (let i = 0; i < bits.length; i++) o[i] = bits[i]! << 16;
}

/**
 * Decodes `count` rows of `cols` bf16 values `bits` into rows of `out`: row i goes to row
 * `rowTo(i)` (the caller keeps it inside `out`); other rows are left as they are.
 */
export function decodeBf16Rows(bits: Uint16Array, cols: number, count: number, rowTo: (i: number) => number, out: Float32Array): void {
  if (bits.length !== count * cols) throw new RangeError(`bf16: ${bits.length} values for ${count} rows of ${cols}`);
  const o = bitsOf(out);
  for (let i = 0; i < count; i++) {
    let to = rowTo(i) * cols;
    const end = (i + 1) * cols;
    for (let from = i * cols; from < end; from++, to++) o[to] = bits[from]! << 16;
  }
}
