/**
 * Expert load over a run's measured steps: per-layer, per-expert token counts, the tokens each
 * GPU (rank) processes under a placement, and the imbalance (max / mean tokens per GPU), the
 * figure EPLB-style balancing lowers.
 */

export interface ExpertLoadReport {
  /** Steps whose counts are summed. */
  steps: number;
  /** [layers][E] tokens routed to each expert, summed over the steps (a token counts once per chosen expert). */
  expertLoads: number[][];
  /** [E] rank holding each expert during these steps. */
  owner: number[];
  /** [layers][W] tokens each rank's experts processed. */
  tokensPerGpu: number[][];
  /** [layers] max / mean of tokensPerGpu (1: perfectly even). */
  imbalance: number[];
  /** max / mean of the tokens per GPU summed over layers. */
  overallImbalance: number;
}

const maxOverMean = (xs: readonly number[]) => {
  const total = xs.reduce((a, b) => a + b, 0);
  return total === 0 ? 1 : Math.max(...xs) / (total / xs.length);
};

/**
 * @param stepCounts per step, [layers·E] counts (layer-major, as RunStep replies carry them, summed over ranks)
 * @param owner [E] rank of each expert; workers: W
 */
export function expertLoadReport(stepCounts: readonly (readonly number[])[], layers: number, owner: readonly number[], workers: number): ExpertLoadReport {
  const E = owner.length;
  const expertLoads = Array.from({ length: layers }, () => new Array<number>(E).fill(0));
  for (const counts of stepCounts) {
    if (counts.length !== layers * E) throw new RangeError(`expert counts of a step have ${counts.length} entries, expected layers*experts = ${layers}*${E}`);
    counts.forEach((c, i) => (expertLoads[Math.floor(i / E)]![i % E]! += c));
  }
  const tokensPerGpu = expertLoads.map((row) => {
    const out = new Array<number>(workers).fill(0);
    row.forEach((c, e) => (out[owner[e]!]! += c));
    return out;
  });
  const total = new Array<number>(workers).fill(0);
  for (const row of tokensPerGpu) row.forEach((c, r) => (total[r]! += c));
  return { steps: stepCounts.length, expertLoads, owner: [...owner], tokensPerGpu, imbalance: tokensPerGpu.map(maxOverMean), overallImbalance: maxOverMean(total) };
}
