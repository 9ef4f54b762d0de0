/**
 * A small deterministic random generator: mulberry32 for uniforms, Box-Muller for normals.
 * Streams are derived from a seed and keys (`Rng.derive(seed, 'layers.0.router')`), so adding a
 * tensor or a step never shifts the numbers of another.
 */

/** 32-bit finalizer (murmur3 fmix32): a well-mixed uint32 of `h`. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uint32 hash of a key: FNV-1a over the UTF-16 code units of a string, or the integer bits of a number. */
function keyHash(key: number | string): number {
  if (typeof key === 'number') {
    const lo = key >>> 0;
    const hi = Math.floor(key / 4294967296) >>> 0;
    return fmix32(lo ^ fmix32(hi + 0x9e3779b9));
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return fmix32(h >>> 0);
}

/** A uint32 seed from a base seed and a list of keys; order matters. */
export function deriveSeed(seed: number, ...keys: (number | string)[]): number {
  let h = keyHash(seed);
  for (const k of keys) h = fmix32((h ^ keyHash(k)) + 0x6d2b79f5);
  return h;
}

export class Rng {
  private state: number;
  private spare: number | undefined;

  /** `seed`: any finite number; its integer part (mod 2^32) seeds the stream. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Rng seed must be finite, got ${seed}`);
    this.state = fmix32(Math.trunc(seed) >>> 0) ;
  }

  /** A generator for the stream named by (seed, ...keys). */
  static derive(seed: number, ...keys: (number | string)[]): Rng {
    return new Rng(deriveSeed(seed, ...keys));
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal N(0, 1) (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return z;
    }
    const u1 = 1 - this.next(); // (0, 1]
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Uniform integer in [0, n); n a positive integer <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    return Math.floor(this.next() * n);
  }
}
