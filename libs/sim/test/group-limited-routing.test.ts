/** Simulated node-limited routing: every token's experts lie in at most M groups. */
import { describe, expect, it } from 'vitest';
import { groupLimitedExpertIds } from '../src/index';

describe('groupLimitedExpertIds', () => {
  it.each([1, 2, 3])('16 experts in 4 groups, top-4, M=%i: each token within M groups, k distinct experts, every group used', (M) => {
    const tokens = 200;
    const ids = groupLimitedExpertIds(tokens, 4, 16, 4, M, 11);
    const used = new Set<number>();
    for (let t = 0; t < tokens; t++) {
      const mine = Array.from(ids.subarray(t * 4, t * 4 + 4));
      expect(new Set(mine).size).toBe(4);
      const groups = new Set(mine.map((e) => Math.floor(e / 4)));
      expect(groups.size).toBeLessThanOrEqual(M);
      groups.forEach((g) => used.add(g));
    }
    expect(used.size).toBe(4);
  });

  it('refuses a top-k that does not fit in M groups', () => {
    expect(() => groupLimitedExpertIds(1, 5, 16, 4, 1, 0)).toThrow('top_k=5 must fit in groupTopK=1 of 4 groups of 4 experts');
  });
});
