import { Buffer } from 'node:buffer';
import type { TensorMsg, TensorMsgOut } from '../proto/types';
import { TensorMessageError } from '../proto/tensors';
import { DTYPE_BYTES, type EncodedTensor, type RowDType } from './types';
import { checkEncoded } from './validate';

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** `t` as a wire Tensor of shape [rows, cols]; the byte fields are views of `t`'s (no copy). */
export function toTensorMsg(t: EncodedTensor): TensorMsg {
  const msg: TensorMsg = { shape: [t.rows, t.cols], dtype: t.dtype, data: asBuffer(t.data) };
  if (t.dtype === 'FP8_E4M3') {
    msg.scales = asBuffer(t.scales ?? new Uint8Array(0));
    msg.blockSize = t.blockSize ?? 0;
  }
  return msg;
}

/**
 * A received wire Tensor as an EncodedTensor (views, no copy). A shape [rows, cols] is taken as is;
 * a flat [n] (allowed for ALLREDUCE) reads as [1, n]. Throws TensorMessageError naming what does
 * not match: the dtype, the shape, or a byte count against what the shape needs. `what` names the
 * tensor in that message.
 */
export function fromTensorMsg(m: TensorMsgOut | null | undefined, what = 'tensor'): EncodedTensor {
  if (!m) throw new TensorMessageError(`${what}: tensor is missing`);
  const dtype = m.dtype as string;
  if (!(dtype in DTYPE_BYTES)) {
    throw new TensorMessageError(`${what}: dtype ${dtype} is not a row dtype (F32, BF16 or FP8_E4M3)`);
  }
  const shape = m.shape.map(Number);
  let rows: number;
  let cols: number;
  if (shape.length === 2) [rows, cols] = shape as [number, number];
  else if (shape.length === 1) [rows, cols] = [1, shape[0]!];
  else throw new TensorMessageError(`${what}: shape [${shape.join(', ')}] has ${shape.length} dims; rows need [rows, cols] or [n]`);
  const t: EncodedTensor = { dtype: dtype as RowDType, rows, cols, data: m.data };
  if (dtype === 'FP8_E4M3') {
    t.scales = m.scales;
    t.blockSize = m.blockSize;
  } else if (m.scales.byteLength > 0) {
    t.scales = m.scales;
  }
  checkEncoded(t, what);
  return t;
}
