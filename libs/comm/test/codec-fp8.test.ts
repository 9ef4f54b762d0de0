import { describe, expect, it } from 'vitest';
import { decodeRows, e4m3ToF32, encodeRows, f32ToE4m3, FP8_BLOCK_SIZE } from '../src/index';

describe('fp8 e4m3fn scalar conversion', () => {
  it('encodes known values', () => {
    expect(f32ToE4m3(1)).toBe(0x38);
    expect(f32ToE4m3(-1)).toBe(0xb8);
    expect(f32ToE4m3(448)).toBe(0x7e);
    expect(f32ToE4m3(240)).toBe(0x77);
    expect(f32ToE4m3(2 ** -6)).toBe(0x08); // smallest normal
    expect(f32ToE4m3(0.5)).toBe(0x30);
  });

  it('saturates finite overflow and infinities to ±448, never producing the NaN code', () => {
    expect(f32ToE4m3(449)).toBe(0x7e);
    expect(f32ToE4m3(464)).toBe(0x7e); // the midpoint to the would-be 480
    expect(f32ToE4m3(1e30)).toBe(0x7e);
    expect(f32ToE4m3(-1e30)).toBe(0xfe);
    expect(f32ToE4m3(Infinity)).toBe(0x7e);
    expect(f32ToE4m3(-Infinity)).toBe(0xfe);
  });

  it('encodes NaN as 0x7F and decodes 0x7F and 0xFF as NaN', () => {
    expect(f32ToE4m3(NaN)).toBe(0x7f);
    expect(e4m3ToF32(0x7f)).toBeNaN();
    expect(e4m3ToF32(0xff)).toBeNaN();
  });

  it('handles subnormals down to 2^-9, rounding ties to even', () => {
    expect(f32ToE4m3(2 ** -9)).toBe(0x01);
    expect(e4m3ToF32(0x01)).toBe(2 ** -9);
    expect(f32ToE4m3(7 * 2 ** -9)).toBe(0x07);
    expect(f32ToE4m3(2 ** -10)).toBe(0x00); // tie between 0 and 2^-9: even is 0
    expect(f32ToE4m3(1.5 * 2 ** -9)).toBe(0x02); // tie between 1 and 2: even is 2
    expect(f32ToE4m3(7.5 * 2 ** -9)).toBe(0x08); // rounds up into the smallest normal
    expect(f32ToE4m3(2 ** -11)).toBe(0x00);
  });

  it('rounds normal values to nearest, ties to even', () => {
    expect(f32ToE4m3(1.0625)).toBe(0x38); // between 1 (m=0) and 1.125 (m=1)
    expect(f32ToE4m3(1.1875)).toBe(0x3a); // between 1.125 (m=1) and 1.25 (m=2)
    expect(f32ToE4m3(1.07)).toBe(0x39);
    expect(f32ToE4m3(15.5)).toBe(0x58); // between 15 (0x57, odd) and 16 (0x58): the carry into the exponent
  });

  it('keeps the sign of zero', () => {
    expect(f32ToE4m3(0)).toBe(0x00);
    expect(f32ToE4m3(-0)).toBe(0x80);
    expect(Object.is(e4m3ToF32(0x80), -0)).toBe(true);
  });

  it('round-trips every non-NaN code exactly', () => {
    for (let b = 0; b < 256; b++) {
      if (b === 0x7f || b === 0xff) continue;
      expect(f32ToE4m3(e4m3ToF32(b))).toBe(b);
    }
  });
});

describe('fp8 block codec', () => {
  it('scales each block by amax / 448; blocks tile each row (block size divides the row length)', () => {
    const values = Float32Array.from({ length: 300 }, (_, i) => (i < 128 ? 1 : i < 256 ? -896 : 0.25) * ((i % 3) + 1) / 3);
    const t = encodeRows(values, 3, 100, 'fp8');
    expect(t.dtype).toBe('FP8_E4M3');
    expect(t.blockSize).toBe(100);
    expect(t.data.byteLength).toBe(300);
    const scales = new Float32Array(t.scales!.slice().buffer);
    expect(scales.length).toBe(3);
    expect(scales[0]).toBe(Math.fround(1 / 448));
    expect(scales[1]).toBe(Math.fround(896 / 448));
    expect(scales[2]).toBe(Math.fround(896 / 448));
    expect(encodeRows(new Float32Array(512), 2, 256, 'fp8').blockSize).toBe(FP8_BLOCK_SIZE);
    expect(encodeRows(new Float32Array(64), 2, 32, 'fp8').blockSize).toBe(32);
  });

  it('rounds a row the same whichever rows share its frame', () => {
    const rows = Float32Array.from({ length: 6 * 32 }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 5) - 2));
    const together = decodeRows(encodeRows(rows, 6, 32, 'fp8'));
    for (let r = 0; r < 6; r++) {
      const alone = decodeRows(encodeRows(rows.slice(r * 32, (r + 1) * 32), 1, 32, 'fp8'));
      expect(Array.from(together.subarray(r * 32, (r + 1) * 32))).toEqual(Array.from(alone));
    }
  });

  it('decodes a block of zeros to zeros (scale 0, no NaN), signs kept', () => {
    const values = new Float32Array(200);
    values[5] = -0;
    const decoded = decodeRows(encodeRows(values, 1, 200, 'fp8'));
    expect(decoded.every((v) => v === 0)).toBe(true);
    expect(Object.is(decoded[5], -0)).toBe(true);
  });

  it('keeps NaN a NaN and scales the block by its finite values', () => {
    const values = Float32Array.from([NaN, 2, -1, 0.5]);
    const decoded = decodeRows(encodeRows(values, 1, 4, 'fp8'));
    expect(decoded[0]).toBeNaN();
    expect(Array.from(decoded.subarray(1))).toEqual([2, -1, 0.5]);
  });

  it('saturates infinities to the block maximum', () => {
    const decoded = decodeRows(encodeRows(Float32Array.from([Infinity, -3, 1.5]), 1, 3, 'fp8'));
    expect(Array.from(decoded)).toEqual([3, -3, 1.5]);
    const onlyInf = decodeRows(encodeRows(Float32Array.from([-Infinity, 0]), 1, 2, 'fp8'));
    expect(Array.from(onlyInf)).toEqual([-448, 0]);
  });

  it('round-trips within 2^-4 relative, or a subnormal step of the block scale', () => {
    const n = 4096;
    const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 78.233) * 10 ** ((i % 9) - 4));
    const decoded = decodeRows(encodeRows(values, 32, 128, 'fp8'));
    for (let b = 0; b < n / FP8_BLOCK_SIZE; b++) {
      let amax = 0;
      for (let i = b * FP8_BLOCK_SIZE; i < (b + 1) * FP8_BLOCK_SIZE; i++) amax = Math.max(amax, Math.abs(values[i]!));
      const step = (amax / 448) * 2 ** -10;
      for (let i = b * FP8_BLOCK_SIZE; i < (b + 1) * FP8_BLOCK_SIZE; i++) {
        const bound = Math.max(Math.abs(values[i]!) * 2 ** -4, step) * (1 + 1e-6);
        expect(Math.abs(decoded[i]! - values[i]!)).toBeLessThanOrEqual(bound);
      }
    }
  });
});
