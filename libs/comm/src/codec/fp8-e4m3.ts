/**
 * OCP fp8 e4m3fn: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits; no infinities,
 * NaN is S.1111.111 (0x7F / 0xFF). Largest finite 448 (0x7E), smallest normal 2^-6,
 * smallest subnormal 2^-9.
 *
 * Encoding rounds to nearest, ties to even, and saturates: finite values past 448, and ±Inf,
 * become ±448 (CUDA's __NV_SATFINITE); NaN becomes 0x7F; -0 stays -0 (0x80).
 */

export const E4M3_MAX = 448;
export const E4M3_NAN = 0x7f;
const MAX_CODE = 0x7e;
const MIN_NORMAL = 2 ** -6;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** e4m3fn byte of float32 bits `bits` (uint32); the value is rounded from float32. */
export function e4m3OfF32Bits(bits: number): number {
  const sign = (bits >>> 24) & 0x80;
  const abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return E4M3_NAN;
  if (abs >= 0x43e00000) return sign | MAX_CODE; // |x| >= 448, or Inf
  if (abs < 0x3c800000) {
    // |x| < 2^-6: subnormal in e4m3, m * 2^-9 with m in 0..8 (8 is the smallest normal, code 0x08)
    u32[0] = abs;
    const y = f32[0]! * 512; // exact
    const floor = Math.floor(y);
    const frac = y - floor;
    const m = frac > 0.5 || (frac === 0.5 && (floor & 1) === 1) ? floor + 1 : floor;
    return sign | m;
  }
  // normal: keep 3 of the 23 mantissa bits, round to nearest even, rebias 127 -> 7
  const rounded = abs + 0x7ffff + ((abs >>> 20) & 1);
  const code = (rounded >>> 20) - (120 << 3);
  return sign | Math.min(code, MAX_CODE);
}

/** e4m3fn byte of one value (first rounded to float32). */
export function f32ToE4m3(value: number): number {
  f32[0] = value;
  return e4m3OfF32Bits(u32[0]!);
}

/** Float value of every e4m3fn byte: [256], NaN at 0x7F and 0xFF. */
export const E4M3_VALUES: Float64Array = (() => {
  const table = new Float64Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    const e = (b >>> 3) & 0xf;
    const m = b & 7;
    if (e === 15 && m === 7) table[b] = NaN;
    else if (e === 0) table[b] = sign * m * 2 ** -9;
    else table[b] = sign * (1 + m / 8) * 2 ** (e - 7);
  }
  return table;
})();

/** The value of one e4m3fn byte. */
export function e4m3ToF32(byte: number): number {
  return E4M3_VALUES[byte & 0xff]!;
}

/**
 * Encodes `values` [n] as e4m3fn bytes `out` [n] with one scale per `blockSize` consecutive values,
 * written to `scales` [ceil(n / blockSize)]: scale = amax / 448 over the block's finite values, so the
 * block's largest magnitude maps to ±448. A block of zeros gets scale 0 (it decodes to zeros, never NaN);
 * a block holding only zeros and infinities gets scale 1, so the infinities decode as ±448.
 */
export function encodeE4m3Blocks(values: Float32Array, out: Uint8Array, scales: Float32Array, blockSize: number): void {
  const n = values.length;
  const blocks = Math.ceil(n / blockSize);
  if (out.length !== n) throw new RangeError(`fp8: out has ${out.length} bytes, input ${n} values`);
  if (scales.length !== blocks) throw new RangeError(`fp8: ${scales.length} scales for ${blocks} blocks of ${blockSize}`);
  const scaled = new Float32Array(blockSize);
  const scaledBits = new Uint32Array(scaled.buffer);
  for (let b = 0; b < blocks; b++) {
    const begin = b * blockSize;
    const end = Math.min(n, begin + blockSize);
    let amax = 0;
    let infinite = false;
    for (let i = begin; i < end; i++) {
      const a = Math.abs(values[i]!);
      if (a === Infinity) infinite = true;
      else if (a > amax) amax = a; // NaN compares false: skipped
    }
    let scale = Math.fround(amax / E4M3_MAX);
    if (scale === 0 && infinite) scale = 1;
    scales[b] = scale;
    for (let i = begin; i < end; i++) {
      const v = values[i]!;
      // the quotient rounded once to float32, then to e4m3; a zero scale only happens for a
      // block of zeros (and NaNs), which keep their value and sign: no 0 / 0
      scaled[i - begin] = scale === 0 ? v : v / scale;
    }
    for (let i = begin; i < end; i++) out[i] = e4m3OfF32Bits(scaledBits[i - begin]!);
  }
}

/** Decodes e4m3fn bytes `bytes` [n] with per-block `scales` into `out` [n] float32. */
export function decodeE4m3Blocks(bytes: Uint8Array, scales: Float32Array, blockSize: number, out: Float32Array): void {
  const n = bytes.length;
  if (out.length !== n) throw new RangeError(`fp8: out has ${out.length} values, input ${n} bytes`);
  const blocks = Math.ceil(n / blockSize);
  if (scales.length !== blocks) throw new RangeError(`fp8: ${scales.length} scales for ${blocks} blocks of ${blockSize}`);
  for (let b = 0; b < blocks; b++) {
    const scale = scales[b]!;
    const end = Math.min(n, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) out[i] = E4M3_VALUES[bytes[i]!]! * scale;
  }
}
