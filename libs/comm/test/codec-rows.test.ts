import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { decodeRows, encodedBytes, encodeRows, fromTensorMsg, TensorMessageError, toTensorMsg, type CodecName, type TensorMsgOut } from '../src/index';

const rows = 5;
const cols = 200;
const values = Float32Array.from({ length: rows * cols }, (_, i) => (i % 17) - 8.5);

describe('row codecs', () => {
  it('counts the bytes each codec puts on the wire (data plus fp8 scales)', () => {
    expect(encodedBytes(3, 5, 'f32')).toBe(60);
    expect(encodedBytes(3, 5, 'bf16')).toBe(30);
    expect(encodedBytes(3, 100, 'fp8')).toBe(300 + 4 * 3);
    expect(encodedBytes(0, 64, 'fp8')).toBe(0);
    for (const codec of ['f32', 'bf16', 'fp8'] as CodecName[]) {
      const t = encodeRows(values, rows, cols, codec);
      expect(t.data.byteLength + (t.scales?.byteLength ?? 0)).toBe(encodedBytes(rows, cols, codec));
    }
  });

  it('round-trips f32 exactly and returns a fresh array', () => {
    const encoded = encodeRows(values, rows, cols, 'f32');
    const decoded = decodeRows(encoded);
    expect(decoded).toEqual(values);
    decoded[0] = 1234;
    expect(values[0]).not.toBe(1234);
  });

  it('decodes data at an unaligned offset', () => {
    const encoded = encodeRows(values, rows, cols, 'f32');
    const shifted = new Uint8Array(encoded.data.byteLength + 1).subarray(1);
    shifted.set(encoded.data);
    expect(decodeRows({ ...encoded, data: shifted })).toEqual(values);
  });

  it('encodes empty rows', () => {
    for (const codec of ['f32', 'bf16', 'fp8'] as CodecName[]) {
      const t = encodeRows(new Float32Array(0), 0, 64, codec);
      expect(decodeRows(t).length).toBe(0);
    }
  });

  it('refuses a value count that does not match the shape', () => {
    expect(() => encodeRows(values, rows, cols + 1, 'f32')).toThrow(/1000 values for shape \[5, 201\]/);
  });

  it('round-trips through the wire Tensor message for every codec', () => {
    for (const codec of ['f32', 'bf16', 'fp8'] as CodecName[]) {
      const t = encodeRows(values, rows, cols, codec);
      const msg = toTensorMsg(t) as TensorMsgOut;
      expect(msg.shape).toEqual([rows, cols]);
      const back = fromTensorMsg({ ...msg, scales: msg.scales ?? Buffer.alloc(0), blockSize: msg.blockSize ?? 0 } as TensorMsgOut);
      expect(decodeRows(back)).toEqual(decodeRows(t));
    }
  });

  it('refuses tensor messages whose sizes do not match the shape, naming what mismatched', () => {
    const msg = (over: Partial<TensorMsgOut>): TensorMsgOut =>
      ({ shape: [2, 3], dtype: 'F32', data: Buffer.alloc(24), scales: Buffer.alloc(0), blockSize: 0, ...over }) as TensorMsgOut;
    expect(() => fromTensorMsg(msg({ data: Buffer.alloc(20) }), 'payload')).toThrow(TensorMessageError);
    expect(() => fromTensorMsg(msg({ data: Buffer.alloc(20) }), 'payload')).toThrow('payload: F32 [2, 3] needs 24 bytes of data but has 20');
    expect(() => fromTensorMsg(msg({ dtype: 'I32' }))).toThrow(/dtype I32 is not a row dtype/);
    expect(() => fromTensorMsg(msg({ shape: [1, 2, 3] }))).toThrow(/has 3 dims/);
    expect(() => fromTensorMsg(msg({ dtype: 'FP8_E4M3', data: Buffer.alloc(6), blockSize: 128 }))).toThrow(
      /block_size 128 needs 4 bytes of scales but has 0/,
    );
    expect(() => fromTensorMsg(msg({ dtype: 'FP8_E4M3', data: Buffer.alloc(6), scales: Buffer.alloc(4) }))).toThrow(/block_size 0/);
    expect(() => fromTensorMsg(msg({ scales: Buffer.alloc(4) }))).toThrow(/carries 4 bytes of scales/);
    expect(fromTensorMsg(msg({ shape: [6] })).rows).toBe(1);
  });
});
