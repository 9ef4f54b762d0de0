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

/** Encodes `values` [n] into `out` [n] bf16 bits. */
export function encodeBf16(values: Float32Array, out: Uint16Array): void {
  if (out.length !== values.length) throw new RangeError(`bf16: out has ${out.length} values, input ${values.length}`);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) out[i] = bf16BitsOfF32Bits(bits[i]!);
}

/** Decodes bf16 bits `bits` [n] into `out` [n] float32. */
export function decodeBf16(bits: Uint16Array, out: Float32Array): void {
  if (out.length !== bits.length) throw new RangeError(`bf16: out has ${out.length} values, input ${bits.length}`);
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) o[i] = bits[i]! << 16;
}
