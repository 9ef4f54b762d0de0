import { decodeBf16, decodeBf16Rows, encodeBf16, encodeBf16Rows } from './bf16';
import { bytesOf, float32View, uint16View } from './endian';
import { decodeE4m3Blocks, encodeE4m3Blocks } from './fp8-e4m3';
import { CODEC_DTYPE, DTYPE_BYTES, fp8BlockSize, type CodecName, type EncodedTensor } from './types';
import { checkEncoded } from './validate';

/**
 * Bytes on the wire for a [rows, cols] payload in `codec`: data plus, for fp8, the float32 scales
 * (one per fp8BlockSize(cols) values). Frame headers and expert ids are not counted.
 */
export function encodedBytes(rows: number, cols: number, codec: CodecName): number {
  const n = rows * cols;
  const data = n * DTYPE_BYTES[CODEC_DTYPE[codec]];
  return codec === 'fp8' ? data + 4 * Math.ceil(n / fp8BlockSize(cols)) : data;
}

/**
 * Encodes `values` [rows, cols] (row-major float32) with `codec`.
 * f32 copies nothing: the result's `data` is a view of `values`, which must not change until sent.
 */
export function encodeRows(values: Float32Array, rows: number, cols: number, codec: CodecName): EncodedTensor {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new RangeError(`encodeRows: shape [${rows}, ${cols}] must be non-negative integers`);
  }
  if (values.length !== rows * cols) {
    throw new RangeError(`encodeRows: ${values.length} values for shape [${rows}, ${cols}] (needs ${rows * cols})`);
  }
  switch (codec) {
    case 'f32':
      return { dtype: 'F32', rows, cols, data: bytesOf(values) };
    case 'bf16': {
      const bits = new Uint16Array(values.length);
      encodeBf16(values, bits);
      return { dtype: 'BF16', rows, cols, data: bytesOf(bits) };
    }
    case 'fp8': {
      const blockSize = fp8BlockSize(cols);
      const data = new Uint8Array(values.length);
      const scales = new Float32Array(Math.ceil(values.length / blockSize));
      encodeE4m3Blocks(values, data, scales, blockSize);
      return { dtype: 'FP8_E4M3', rows, cols, data, scales: bytesOf(scales), blockSize };
    }
    default:
      throw new RangeError(`encodeRows: unknown codec ${String(codec)} (f32, bf16 or fp8)`);
  }
}

/**
 * Encodes `count` rows picked from `source` [*, cols]: row i of the result is row `rowOf(i)` of
 * `source`, as encodeRows would encode them packed. For f32 the result is a fresh packed copy (the
 * payload's own memory); bf16 encodes straight from `source`, with no packed float32 copy between
 * (an all-to-all does this for every peer, every step: the copy was one of the largest arrays it
 * allocated); fp8 packs, then encodes.
 * @param rowOf must return a row inside `source` (the caller checks: it knows what the row means)
 */
export function encodeRowsOf(source: Float32Array, cols: number, count: number, rowOf: (i: number) => number, codec: CodecName): EncodedTensor {
  if (codec === 'bf16') {
    const bits = new Uint16Array(count * cols);
    encodeBf16Rows(source, cols, count, rowOf, bits);
    return { dtype: 'BF16', rows: count, cols, data: bytesOf(bits) };
  }
  const packed = new Float32Array(count * cols);
  for (let i = 0; i < count; i++) {
    const at = rowOf(i) * cols;
    packed.set(source.subarray(at, at + cols), i * cols);
  }
  return encodeRows(packed, count, cols, codec);
}

/**
 * Decodes `t`'s rows into `out` [*, t.cols]: row i goes to row `rowTo(i)` of `out`; other rows of
 * `out` are left as they are. Saves the packed float32 array decodeRows makes (an all-to-all's
 * combine scatters every row it gets back into its slot). fp8 decodes packed, then scatters.
 * Throws TensorMessageError when the byte counts do not match the shape.
 * @param rowTo must return a row inside `out` (the caller checks)
 */
export function decodeRowsInto(t: EncodedTensor, out: Float32Array, rowTo: (i: number) => number): void {
  checkEncoded(t, 'decodeRowsInto');
  const { rows, cols } = t;
  if (t.dtype === 'BF16') {
    decodeBf16Rows(uint16View(t.data), cols, rows, rowTo, out);
    return;
  }
  const packed = t.dtype === 'F32' ? float32View(t.data) : decodeRows(t);
  for (let i = 0; i < rows; i++) out.set(packed.subarray(i * cols, (i + 1) * cols), rowTo(i) * cols);
}

/**
 * Decodes `t` into a fresh float32 array [rows, cols] (never a view of `t.data`).
 * Throws TensorMessageError when the byte counts do not match the shape.
 */
export function decodeRows(t: EncodedTensor): Float32Array {
  checkEncoded(t, 'decodeRows');
  const n = t.rows * t.cols;
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      out.set(float32View(t.data));
      break;
    case 'BF16':
      decodeBf16(uint16View(t.data), out);
      break;
    case 'FP8_E4M3':
      decodeE4m3Blocks(t.data, float32View(t.scales!), t.blockSize!, out);
      break;
  }
  return out;
}

/**
 * The float32 rows [rows, cols] of a payload the caller owns (a received frame): a view of
 * `t.data` when it is F32 and 4-byte aligned, otherwise decoded into a fresh array. Saves the
 * copy decodeRows makes; writing to the result may write to `t.data`.
 */
export function decodeRowsShared(t: EncodedTensor): Float32Array {
  if (t.dtype === 'F32' && t.data.byteOffset % 4 === 0) {
    checkEncoded(t, 'decodeRowsShared');
    return new Float32Array(t.data.buffer, t.data.byteOffset, t.rows * t.cols);
  }
  return decodeRows(t);
}

/**
 * `values` [rows, cols] as a receiver decodes them after `codec`'s encoding: the rounding a row
 * gets on the wire, written back in place (f32 leaves them as they are). Each row's result depends
 * on that row alone (fp8 blocks never span rows), so any grouping of rows into frames agrees.
 */
export function roundTripRows(values: Float32Array, cols: number, codec: CodecName): void {
  if (codec === 'f32' || values.length === 0) return;
  if (!Number.isInteger(cols) || cols <= 0 || values.length % cols !== 0) {
    throw new RangeError(`roundTripRows: ${values.length} values are not whole rows of ${cols}`);
  }
  values.set(decodeRows(encodeRows(values, values.length / cols, cols, codec)));
}
