import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { decodeRows, decodeRowsInto, encodedBytes, encodeRows, encodeRowsOf, fromTensorMsg, TensorMessageError, toTensorMsg, type CodecName, type TensorMsgOut } from '../src/index';

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

describe('picked rows (an all-to-all packs each peer its rows, and scatters the rows it gets back)', () => {
  const f32OfBits = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0]!;
  // every sign, NaN with the sign bit set, infinities, the bf16 rounding's tie and overflow cases
  const edges = [0x80000000, 0xffffffff, 0x7f800001, 0xff800000, 0x7f800000, 0xff7fffff, 0x7f7fffff, 0x3f808000, 0xbf818000, 0x00010000].map(f32OfBits);
  const source = Float32Array.from({ length: 7 * cols }, (_, i) => (i < edges.length ? edges[i]! : Math.sin(i) * 10 ** ((i % 9) - 4)));
  const picks = [6, 0, 3, 3, 1];
  const packed = new Float32Array(picks.length * cols);
  picks.forEach((row, i) => packed.set(source.subarray(row * cols, (row + 1) * cols), i * cols));

  it('encodes the rows it picks as packing them first and encoding would, for every codec', () => {
    for (const codec of ['f32', 'bf16', 'fp8'] as CodecName[]) {
      const picked = encodeRowsOf(source, cols, picks.length, (i) => picks[i]!, codec);
      const reference = encodeRows(packed, picks.length, cols, codec);
      expect({ ...picked, data: Buffer.from(picked.data), scales: picked.scales && Buffer.from(picked.scales) }).toEqual({
        ...reference,
        data: Buffer.from(reference.data),
        scales: reference.scales && Buffer.from(reference.scales),
      });
    }
    // row 0 (picked second) starts with the edge cases: their bf16 bits, as IEEE rounding gives them
    const bits = new Uint16Array(encodeRowsOf(source, cols, picks.length, (i) => picks[i]!, 'bf16').data.buffer);
    expect(Array.from(bits.subarray(cols, cols + edges.length), (b) => b.toString(16))).toEqual(['8000', 'ffff', '7fc0', 'ff80', '7f80', 'ff80', '7f80', '3f80', 'bf82', '1']);
  });

  it('decodes each row into its place and leaves the other rows as they were, for every codec', () => {
    const places = [4, 0, 2, 6, 5];
    for (const codec of ['f32', 'bf16', 'fp8'] as CodecName[]) {
      const t = encodeRows(packed, picks.length, cols, codec);
      const out = new Float32Array(8 * cols).fill(-7);
      decodeRowsInto(t, out, (i) => places[i]!);
      const decoded = decodeRows(t);
      const expected = new Float32Array(8 * cols).fill(-7);
      places.forEach((row, i) => expected.set(decoded.subarray(i * cols, (i + 1) * cols), row * cols));
      expect(out).toEqual(expected);
    }
    // f32 data at an odd byte offset (a frame's body inside a read buffer)
    const t = encodeRows(packed, picks.length, cols, 'f32');
    const shifted = new Uint8Array(t.data.byteLength + 1).subarray(1);
    shifted.set(t.data);
    const out = new Float32Array(8 * cols);
    decodeRowsInto({ ...t, data: shifted }, out, (i) => places[i]!);
    expect(out.subarray(4 * cols, 5 * cols)).toEqual(source.subarray(6 * cols, 7 * cols));
  });

  it('refuses a payload whose bytes do not match its shape, as decodeRows does', () => {
    const t = encodeRows(packed, picks.length, cols, 'bf16');
    expect(() => decodeRowsInto({ ...t, rows: 6 }, new Float32Array(8 * cols), (i) => i)).toThrow(TensorMessageError);
  });
});
