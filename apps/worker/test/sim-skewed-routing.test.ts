import { describe, expect, it } from 'vitest';
import { seededExpertIds, skewedExpertIds } from '@moe/sim';
import { parseSimOptions } from '../src/backends/sim/sim-options';

describe('sim routing option', () => {
  it('defaults to uniform and accepts skewed; rejects others', () => {
    expect(parseSimOptions({ profile: 'H800', dilation: 1 }).routing).toBe('uniform');
    expect(parseSimOptions({ profile: 'H800', dilation: 1, routing: 'skewed' }).routing).toBe('skewed');
    expect(() => parseSimOptions({ profile: 'H800', dilation: 1, routing: 'hot' })).toThrow(/routing/);
  });

  it('skewed: every slot goes to rank 0 experts, k distinct per token', () => {
    const owner = [0, 0, 1, 1, 2, 2, 3, 3];
    const ids = skewedExpertIds(100, 2, owner, 5);
    for (let t = 0; t < 100; t++) {
      expect(new Set([ids[2 * t], ids[2 * t + 1]]).size).toBe(2);
      expect([ids[2 * t], ids[2 * t + 1]].every((e) => owner[e!] === 0)).toBe(true);
    }
  });

  it('skewed: spills to the next ranks only as far as top-k needs; finds the hot rank when unordered', () => {
    const owner = [1, 0, 2, 1, 0, 2];
    const ids = skewedExpertIds(50, 3, owner, 1);
    // rank 0 owns experts 1 and 4; the third slot comes from rank 1 (experts 0 and 3).
    for (let t = 0; t < 50; t++) {
      const picks = [...ids.subarray(3 * t, 3 * t + 3)];
      expect(new Set(picks).size).toBe(3);
      expect(picks.filter((e) => owner[e] === 0)).toHaveLength(2);
      expect(picks.every((e) => owner[e] === 0 || owner[e] === 1)).toBe(true);
    }
  });

  it('uniform routing is unchanged', () => {
    expect(seededExpertIds(4, 2, 8, 3)).toEqual(seededExpertIds(4, 2, 8, 3));
  });
});
