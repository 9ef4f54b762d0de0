import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, decodeRows, encodeRows, f32ToBf16Bits } from '../src/index';

const f32OfBits = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0]!;

describe('bf16 codec', () => {
  it('encodes exact values to their upper 16 bits', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(0)).toBe(0x0000);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
  });

  it('rounds to nearest, ties to even', () => {
    expect(f32ToBf16Bits(f32OfBits(0x3f808000))).toBe(0x3f80); // tie, 0x3f80 is even
    expect(f32ToBf16Bits(f32OfBits(0x3f818000))).toBe(0x3f82); // tie, 0x3f82 is even
    expect(f32ToBf16Bits(f32OfBits(0x3f808001))).toBe(0x3f81); // just above the tie
    expect(f32ToBf16Bits(f32OfBits(0x3f807fff))).toBe(0x3f80); // just below
  });

  it('rounds past the largest bf16 to infinity, as IEEE rounding does', () => {
    expect(f32ToBf16Bits(f32OfBits(0x7f7fffff))).toBe(0x7f80);
    expect(f32ToBf16Bits(f32OfBits(0x7f7f7fff))).toBe(0x7f7f);
  });

  it('keeps NaN a NaN, even when rounding would carry it into infinity', () => {
    expect(bf16BitsToF32(f32ToBf16Bits(NaN))).toBeNaN();
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(f32OfBits(0x7f800001))))).toBe(true);
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(f32OfBits(0xffffffff))))).toBe(true);
  });

  it('keeps the sign of zero and float32 subnormals', () => {
    expect(Object.is(bf16BitsToF32(f32ToBf16Bits(-0)), -0)).toBe(true);
    const tiny = f32OfBits(0x00010000); // a float32 subnormal bf16 holds exactly
    expect(bf16BitsToF32(f32ToBf16Bits(tiny))).toBe(tiny);
  });

  it('round-trips rows within half a bf16 ulp (relative 2^-8)', () => {
    const rows = 16;
    const cols = 33;
    const values = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 7) - 3));
    const encoded = encodeRows(values, rows, cols, 'bf16');
    expect(encoded.dtype).toBe('BF16');
    expect(encoded.data.byteLength).toBe(rows * cols * 2);
    const decoded = decodeRows(encoded);
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(decoded[i]! - values[i]!)).toBeLessThanOrEqual(Math.abs(values[i]!) * 2 ** -8);
    }
  });
});
