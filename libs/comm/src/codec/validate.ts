import { TensorMessageError } from '../proto/tensors';
import { DTYPE_BYTES, type EncodedTensor } from './types';

/** Largest value count a payload may claim (2^31 - 1: typed arrays and sane frames stay below). */
export const MAX_PAYLOAD_VALUES = 2 ** 31 - 1;

/**
 * Checks that `t`'s byte counts agree with its shape and dtype; `what` names it in the error.
 * Throws TensorMessageError naming the field, the byte count that arrived and the one needed.
 */
export function checkEncoded(t: EncodedTensor, what: string): void {
  const shape = `${t.dtype} [${t.rows}, ${t.cols}]`;
  if (!(t.dtype in DTYPE_BYTES)) {
    throw new TensorMessageError(`${what}: dtype ${String(t.dtype)} is not a row dtype (F32, BF16 or FP8_E4M3)`);
  }
  if (!Number.isSafeInteger(t.rows) || !Number.isSafeInteger(t.cols) || t.rows < 0 || t.cols < 0) {
    throw new TensorMessageError(`${what}: shape [${t.rows}, ${t.cols}] must be non-negative integers`);
  }
  const n = t.rows * t.cols;
  if (n > MAX_PAYLOAD_VALUES) throw new TensorMessageError(`${what}: ${shape} holds ${n} values, more than ${MAX_PAYLOAD_VALUES}`);
  const needed = n * DTYPE_BYTES[t.dtype];
  if (t.data.byteLength !== needed) {
    throw new TensorMessageError(`${what}: ${shape} needs ${needed} bytes of data but has ${t.data.byteLength}`);
  }
  const scaleBytes = t.scales?.byteLength ?? 0;
  if (t.dtype === 'FP8_E4M3') {
    const block = t.blockSize ?? 0;
    if (!Number.isSafeInteger(block) || block <= 0) {
      throw new TensorMessageError(`${what}: ${shape} has block_size ${block}; FP8_E4M3 needs a positive block size`);
    }
    const neededScales = 4 * Math.ceil(n / block);
    if (scaleBytes !== neededScales) {
      throw new TensorMessageError(
        `${what}: ${shape} with block_size ${block} needs ${neededScales} bytes of scales but has ${scaleBytes}`,
      );
    }
  } else if (scaleBytes !== 0) {
    throw new TensorMessageError(`${what}: ${shape} carries ${scaleBytes} bytes of scales; only FP8_E4M3 has scales`);
  }
}

/** What checkEncoded checks, as a yes or no without building a message (for a check on every frame). */
export function encodedWellFormed(t: EncodedTensor): boolean {
  const bytes = DTYPE_BYTES[t.dtype];
  if (bytes === undefined || !Number.isSafeInteger(t.rows) || !Number.isSafeInteger(t.cols) || t.rows < 0 || t.cols < 0) return false;
  const n = t.rows * t.cols;
  if (n > MAX_PAYLOAD_VALUES || t.data.byteLength !== n * bytes) return false;
  const scaleBytes = t.scales?.byteLength ?? 0;
  if (t.dtype !== 'FP8_E4M3') return scaleBytes === 0;
  const block = t.blockSize ?? 0;
  return Number.isSafeInteger(block) && block > 0 && scaleBytes === 4 * Math.ceil(n / block);
}
