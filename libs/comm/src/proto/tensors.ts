import type { Tensor } from '@moe/model';
import type { NamedTensor, NamedTensorOut, TensorMsg, TensorMsgOut } from './types';

/** A malformed tensor message: the shape, dtype and byte count do not agree. */
export class TensorMessageError extends Error {
  override readonly name = 'TensorMessageError';
}

/** Float32 tensor `t` (any shape) as a wire `Tensor` of dtype F32. Copies nothing but the view. */
export function f32TensorMsg(t: Tensor): TensorMsg {
  return {
    shape: [...t.shape],
    dtype: 'F32',
    data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  };
}

/** Int32 vector [n] as a wire `Tensor` of dtype I32. */
export function i32TensorMsg(values: Int32Array): TensorMsg {
  return {
    shape: [values.length],
    dtype: 'I32',
    data: Buffer.from(values.buffer, values.byteOffset, values.byteLength),
  };
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Copies `bytes` into a fresh, aligned ArrayBuffer (a received Buffer may sit at any offset). */
function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

/** Decodes a wire F32 tensor; `what` names it in errors (e.g. "dense_params[3] layers.0.router"). */
export function tensorFromMsg(msg: TensorMsgOut | null | undefined, what: string): Tensor {
  if (!msg) throw new TensorMessageError(`${what}: tensor is missing`);
  if (msg.dtype !== 'F32') throw new TensorMessageError(`${what}: dtype ${msg.dtype} where F32 was expected`);
  const shape = msg.shape.map(Number);
  const expected = elementCount(shape) * 4;
  if (msg.data.byteLength !== expected) {
    throw new TensorMessageError(
      `${what}: shape [${shape.join(', ')}] needs ${expected} bytes of F32 but ${msg.data.byteLength} arrived`,
    );
  }
  return { shape, data: new Float32Array(alignedCopy(msg.data)) };
}

/** Decodes a wire I32 vector; `what` names it in errors. */
export function int32FromMsg(msg: TensorMsgOut | null | undefined, what: string): Int32Array {
  if (!msg) throw new TensorMessageError(`${what}: tensor is missing`);
  if (msg.dtype !== 'I32') throw new TensorMessageError(`${what}: dtype ${msg.dtype} where I32 was expected`);
  const count = elementCount(msg.shape.map(Number));
  if (msg.data.byteLength !== count * 4) {
    throw new TensorMessageError(
      `${what}: shape [${msg.shape.join(', ')}] needs ${count * 4} bytes of I32 but ${msg.data.byteLength} arrived`,
    );
  }
  return new Int32Array(alignedCopy(msg.data));
}

export function namedTensorMsg(name: string, t: Tensor): NamedTensor {
  return { name, tensor: f32TensorMsg(t) };
}

/** Named wire tensors as a name -> Tensor map; duplicate names are an error. */
export function namedTensorsFromMsg(list: readonly NamedTensorOut[], what: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [i, item] of list.entries()) {
    const label = `${what}[${i}] ${item.name}`;
    if (out.has(item.name)) throw new TensorMessageError(`${label}: duplicate name`);
    out.set(item.name, tensorFromMsg(item.tensor, label));
  }
  return out;
}
