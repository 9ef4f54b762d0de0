/**
 * Wire codecs of token rows: how a [rows, cols] float32 array travels between ranks.
 * - `f32`: IEEE float32, 4 bytes a value, exact.
 * - `bf16`: bfloat16 (the upper half of a float32, rounded to nearest even), 2 bytes a value.
 * - `fp8`: OCP e4m3fn, 1 byte a value, plus one float32 scale per block of `block_size`
 *   consecutive values of the row-major array; scale = amax(block) / 448, and a value decodes as
 *   e4m3(byte) * scale. A decoder takes any block_size (the last block may be shorter); this
 *   encoder picks `fp8BlockSize(cols)`, a divisor of the row length, so a block never spans two
 *   rows and a row's rounding does not depend on which rows share its frame.
 */
import { CODEC_WIRE, type CodecName } from '@moe/schedule';

export type { CodecName };

/** The wire dtype of each codec (proto `DType`). */
export type RowDType = 'F32' | 'BF16' | 'FP8_E4M3';

export const CODEC_DTYPE: Readonly<Record<CodecName, RowDType>> = CODEC_WIRE;

/** Most values per float32 scale in the fp8 codec. */
export const FP8_BLOCK_SIZE = 128;

/**
 * The fp8 block size for rows of `cols` values: the largest divisor of `cols` not above
 * FP8_BLOCK_SIZE (cols itself up to 128; 128 for multiples of 128; FP8_BLOCK_SIZE when cols is 0).
 * Blocks then tile each row exactly, so encoding a frame equals encoding each of its rows alone.
 */
export function fp8BlockSize(cols: number): number {
  if (cols <= 0) return FP8_BLOCK_SIZE;
  for (let b = Math.min(cols, FP8_BLOCK_SIZE); b > 1; b--) if (cols % b === 0) return b;
  return 1;
}

/** Bytes per value of each wire dtype (without the fp8 scales). */
export const DTYPE_BYTES: Record<RowDType, number> = { F32: 4, BF16: 2, FP8_E4M3: 1 };

/**
 * A [rows, cols] array as it travels: `data` holds rows * cols values of `dtype`, little-endian,
 * row-major; FP8_E4M3 adds `scales` (float32 LE, one per `blockSize` values, last block shorter).
 * `data` and `scales` may be views at any byte offset (e.g. slices of a received message).
 */
export interface EncodedTensor {
  dtype: RowDType;
  rows: number;
  cols: number;
  data: Uint8Array;
  scales?: Uint8Array;
  blockSize?: number;
}
