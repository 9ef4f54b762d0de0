/**
 * Expert load over a run's measured steps: per-layer, per-expert token counts, the tokens each
 * GPU (rank) processes under a placement, and the imbalance (max / mean tokens per GPU), the
 * figure EPLB-style balancing lowers. With redundant experts the tokens per GPU are the counts
 * the workers measured per physical expert (which copy each token took), summed by copy's rank.
 */

/** Redundant experts: where the copies were and the tokens each took. */
export interface PhysicalLoad {
  /** [P] logical expert of each physical expert, and [P] its rank. */
  physicalToLogical: readonly number[];
  physicalOwner: readonly number[];
  /** Per step, [layers·P] tokens routed to each physical expert (layer-major, summed over ranks). */
  stepCounts: readonly (readonly number[])[];
}

export interface ExpertLoadReport {
  /** Steps whose counts are summed. */
  steps: number;
  /** [layers][E] tokens routed to each expert, summed over the steps (a token counts once per chosen expert). */
  expertLoads: number[][];
  /** [E] rank holding each expert during these steps (with redundant experts: its first copy's). */
  owner: number[];
  /** Redundant experts: [P] logical expert and rank of each physical copy, and [layers][P] tokens each took. */
  physical?: { physicalToLogical: number[]; physicalOwner: number[]; loads: number[][] };
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
 * @param physical redundant experts: the copies and their measured counts (tokens per GPU come from them)
 */
export function expertLoadReport(stepCounts: readonly (readonly number[])[], layers: number, owner: readonly number[], workers: number, physical?: PhysicalLoad): ExpertLoadReport {
  const E = owner.length;
  const expertLoads = Array.from({ length: layers }, () => new Array<number>(E).fill(0));
  for (const counts of stepCounts) {
    if (counts.length !== layers * E) throw new RangeError(`expert counts of a step have ${counts.length} entries, expected layers*experts = ${layers}*${E}`);
    counts.forEach((c, i) => (expertLoads[Math.floor(i / E)]![i % E]! += c));
  }
  const P = physical?.physicalToLogical.length ?? 0;
  const physicalLoads = Array.from({ length: physical ? layers : 0 }, () => new Array<number>(P).fill(0));
  for (const counts of physical?.stepCounts ?? []) {
    if (counts.length !== layers * P) throw new RangeError(`physical expert counts of a step have ${counts.length} entries, expected layers*physical experts = ${layers}*${P}`);
    counts.forEach((c, i) => (physicalLoads[Math.floor(i / P)]![i % P]! += c));
  }
  const tokensPerGpu = expertLoads.map((row, l) => {
    const out = new Array<number>(workers).fill(0);
    if (physical) physicalLoads[l]!.forEach((c, q) => (out[physical.physicalOwner[q]!]! += c));
    else row.forEach((c, e) => (out[owner[e]!]! += c));
    return out;
  });
  const total = new Array<number>(workers).fill(0);
  for (const row of tokensPerGpu) row.forEach((c, r) => (total[r]! += c));
  return {
    steps: stepCounts.length,
    expertLoads,
    owner: [...owner],
    ...(physical ? { physical: { physicalToLogical: [...physical.physicalToLogical], physicalOwner: [...physical.physicalOwner], loads: physicalLoads } } : {}),
    tokensPerGpu,
    imbalance: tokensPerGpu.map(maxOverMean),
    overallImbalance: maxOverMean(total),
  };
}
