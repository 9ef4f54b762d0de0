/**
 * The routing of a `sim` step: every token picks k distinct experts uniformly at random from a
 * seeded generator, so all ranks' loads are near-uniform and a run is reproducible.
 */

/** mulberry32: a small, fast 32-bit generator; returns floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes integers into one 32-bit seed (FNV-1a over their 32-bit words). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    let v = p | 0;
    for (let i = 0; i < 4; i++) {
      h ^= v & 0xff;
      h = Math.imul(h, 0x01000193);
      v >>>= 8;
    }
  }
  return h >>> 0;
}

/**
 * Expert ids of `tokens` tokens, k per token: [tokens * k] (slot s = t*k + j), each token's k
 * distinct and uniform over [0, experts). Requires 1 <= k <= experts.
 */
export function seededExpertIds(tokens: number, k: number, experts: number, seed: number): Int32Array {
  if (!(k >= 1 && k <= experts)) throw new RangeError(`top_k=${k} must be in [1, experts=${experts}]`);
  const random = mulberry32(seed);
  const perm = Int32Array.from({ length: experts }, (_, i) => i);
  const ids = new Int32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    // Partial Fisher-Yates: the first k of a shuffled permutation (it stays a permutation).
    for (let j = 0; j < k; j++) {
      const pick = j + Math.floor(random() * (experts - j));
      const e = perm[pick]!;
      perm[pick] = perm[j]!;
      perm[j] = e;
      ids[t * k + j] = e;
    }
  }
  return ids;
}
