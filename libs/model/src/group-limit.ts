/**
 * Node-limited routing (DeepSeek-V3 section 2.1.2; Megatron-Core's --moe-router-num-groups /
 * --moe-router-group-topk). The E routed experts form G equal groups of E/G consecutive ids
 * (group g = experts g·E/G .. (g+1)·E/G - 1); a placement puts each group on one node. A token
 * first keeps the M groups with the largest group score, then picks its top-k experts inside them,
 * so its tokens reach at most M nodes.
 *
 * Group score = the sum of the group's highest max(1, floor(k/M)) selection values (score + bias),
 * the rule of the paper ("the sum of the highest K_r/M affinity scores of the experts distributed
 * on each node") and of both reference implementations: DeepSeek-V3's Gate sums the top 2 of each
 * group with k = 8, M = 4; Megatron sums the top k // group_topk. Ties go to the lower group id.
 */

/** How many of a group's highest selection values make its score: max(1, floor(k/M)), at most the group's size. */
export function groupScoreWidth(topK: number, groupTopK: number, groupSize: number): number {
  return Math.min(groupSize, Math.max(1, Math.floor(topK / groupTopK)));
}

/**
 * Marks the experts a token may choose. select: [E] selection values of one token (read from
 * `offset`); allowed: [E] output, 1 where the expert's group is among the token's M best groups.
 * groups: G (E % G == 0); groupTopK: M (1 <= M <= G). scratch: [G] work space.
 * With M == G every expert is allowed.
 */
export function allowedExperts(
  select: ArrayLike<number>,
  offset: number,
  experts: number,
  groups: number,
  groupTopK: number,
  topK: number,
  allowed: Uint8Array,
  scratch: Float64Array,
): void {
  if (groupTopK >= groups) {
    allowed.fill(1, 0, experts);
    return;
  }
  const size = experts / groups;
  const width = groupScoreWidth(topK, groupTopK, size);
  const best = new Float64Array(width);
  for (let g = 0; g < groups; g++) {
    best.fill(-Infinity);
    for (let i = 0; i < size; i++) {
      // Insert into the sorted (descending) list of the group's `width` highest values.
      let v = select[offset + g * size + i]!;
      for (let w = 0; w < width; w++) {
        if (v > best[w]!) {
          const t = best[w]!;
          best[w] = v;
          v = t;
        }
      }
    }
    let sum = 0;
    for (let w = 0; w < width; w++) sum += best[w]!;
    scratch[g] = sum;
  }
  allowed.fill(0, 0, experts);
  const chosen = new Uint8Array(groups);
  for (let m = 0; m < groupTopK; m++) {
    let pick = -1;
    for (let g = 0; g < groups; g++) {
      if (!chosen[g] && (pick < 0 || scratch[g]! > scratch[pick]!)) pick = g;
    }
    chosen[pick] = 1;
    allowed.fill(1, pick * size, (pick + 1) * size);
  }
}
