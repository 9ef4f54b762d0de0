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

/**
 * Fully skewed routing: every token's k slots go to experts of the hottest rank (rank 0, or the
 * lowest rank owning experts). When that rank owns fewer than k experts, each token takes all of
 * them and its remaining slots spill to the next ranks' experts (whole ranks, in rank order, only
 * as many as needed), since top-k picks distinct experts. Draws are uniform within each group.
 * `expertOwner[e]` is expert e's rank. Same layout as seededExpertIds.
 */
export function skewedExpertIds(tokens: number, k: number, expertOwner: readonly number[], seed: number): Int32Array {
  const experts = expertOwner.length;
  if (!(k >= 1 && k <= experts)) throw new RangeError(`top_k=${k} must be in [1, experts=${experts}]`);
  const byRank = [...expertOwner.keys()].sort((a, b) => expertOwner[a]! - expertOwner[b]! || a - b);
  const hot = byRank.filter((e) => expertOwner[e] === expertOwner[byRank[0]!]);
  const hotK = Math.min(k, hot.length);
  const spillK = k - hotK;
  // The spill group: the next whole ranks' experts until they cover the slots left.
  let n = hot.length;
  while (n - hot.length < spillK) {
    const rank = expertOwner[byRank[n]!]!;
    while (n < experts && expertOwner[byRank[n]!] === rank) n++;
  }
  const spill = byRank.slice(hot.length, n);
  const hotIds = seededExpertIds(tokens, hotK, hot.length, seed);
  const spillIds = spillK > 0 ? seededExpertIds(tokens, spillK, spill.length, mixSeed(seed, 1)) : new Int32Array(0);
  const ids = new Int32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < hotK; j++) ids[t * k + j] = hot[hotIds[t * hotK + j]!]!;
    for (let j = 0; j < spillK; j++) ids[t * k + hotK + j] = spill[spillIds[t * spillK + j]!]!;
  }
  return ids;
}

/**
 * Node-limited routing of simulated tokens: the E experts form `groups` equal groups of
 * consecutive ids; every token draws `groupTopK` distinct groups uniformly, then its k distinct
 * experts uniformly among those groups' experts. Same layout as seededExpertIds. Requires
 * groups to divide experts, 1 <= groupTopK <= groups and k <= groupTopK · experts / groups.
 */
export function groupLimitedExpertIds(tokens: number, k: number, experts: number, groups: number, groupTopK: number, seed: number): Int32Array {
  if (!(groups >= 1 && experts % groups === 0)) throw new RangeError(`groups=${groups} must divide experts=${experts}`);
  const size = experts / groups;
  if (!(groupTopK >= 1 && groupTopK <= groups && k >= 1 && k <= groupTopK * size)) {
    throw new RangeError(`top_k=${k} must fit in groupTopK=${groupTopK} of ${groups} groups of ${size} experts`);
  }
  const chosenGroups = seededExpertIds(tokens, groupTopK, groups, mixSeed(seed, 2));
  const within = seededExpertIds(tokens, k, groupTopK * size, seed);
  const ids = new Int32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < k; j++) {
      const pick = within[t * k + j]!; // index into the token's groups' experts, group by group
      ids[t * k + j] = chosenGroups[t * groupTopK + Math.floor(pick / size)]! * size + (pick % size);
    }
  }
  return ids;
}
