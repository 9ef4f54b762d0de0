/**
 * A fingerprint of tensor values: FNV-1a 64 over the float32 bytes (little-endian, as laid out
 * in memory) of every tensor in order, shapes not included. Two replicas agree iff their bytes do.
 */
import type { Tensor } from './tensor';

const PRIME_LO = 0x1b3; // FNV-64 prime = 2^40 + 0x1b3

/** 16 hex digits: FNV-1a 64 of the concatenated float32 bytes of `tensors`. */
export function checksumTensors(tensors: readonly Tensor[]): string {
  // 64-bit state as two uint32 halves (offset basis 0xcbf29ce484222325).
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const t of tensors) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    for (let i = 0; i < bytes.length; i++) {
      lo = (lo ^ bytes[i]!) >>> 0;
      // (hi:lo) * (2^40 + 0x1b3) mod 2^64
      const prod = lo * PRIME_LO; // < 2^41, exact
      const carry = Math.floor(prod / 4294967296);
      hi = (Math.imul(hi, PRIME_LO) + carry + (lo << 8)) >>> 0;
      lo = prod >>> 0;
    }
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}
