/** Rebalancing: the moving average of loads and the owner map EPLB gives for it. */
import { describe, expect, it } from 'vitest';
import { balancedOwner, ExpertLoadAverage, placementImbalance, rebalanceProblem, tokensPerRank, PlacementError } from '../src/index';

describe('ExpertLoadAverage', () => {
  it('takes the first sample as is, then avg = decay*avg + (1-decay)*counts, layer-major', () => {
    const avg = new ExpertLoadAverage(2, 2, 0.5);
    avg.add([4, 0, 2, 2]);
    expect(avg.loads()).toEqual([[4, 0], [2, 2]]);
    avg.add([0, 4, 2, 6]);
    expect(avg.loads()).toEqual([[2, 2], [2, 4]]);
  });

  it('refuses a sample of the wrong size and a decay outside [0, 1)', () => {
    expect(() => new ExpertLoadAverage(2, 2, 0.5).add([1, 2, 3])).toThrow('load sample has 3 counts, expected layers*experts = 2*2');
    expect(() => new ExpertLoadAverage(1, 1, 1)).toThrow(PlacementError);
  });
});

describe('balancedOwner', () => {
  it('moves the two hot experts of rank 0 apart, and the imbalance drops', () => {
    // 8 experts on 4 ranks, contiguous: rank 0 holds the two hot experts 0 and 1.
    const loads = [[40, 40, 5, 5, 5, 5, 5, 5], [10, 10, 5, 5, 5, 5, 5, 5]];
    const before = [0, 0, 1, 1, 2, 2, 3, 3];
    const { owner } = balancedOwner(loads, { gpus: 4, nodeSize: 0, groups: 1 });
    expect(owner[0]).not.toBe(owner[1]);
    expect(tokensPerRank(loads, before, 4)).toEqual([100, 20, 20, 20]);
    expect([...owner].sort()).toEqual(before); // still two experts per rank
    expect(placementImbalance(loads, owner, 4)).toBeLessThan(placementImbalance(loads, before, 4));
    expect(placementImbalance(loads, owner, 4)).toBeCloseTo(60 / 40, 9);
  });

  it('keeps every routing group on one node (hierarchical policy)', () => {
    // 8 experts in 2 groups of 4, 4 ranks in 2 nodes of 2; group 1 is hot.
    const loads = [[1, 2, 3, 4, 50, 60, 70, 80]];
    const { owner, plan } = balancedOwner(loads, { gpus: 4, nodeSize: 2, groups: 2 });
    expect(plan.policy).toBe('hierarchical');
    for (const group of [[0, 1, 2, 3], [4, 5, 6, 7]]) expect(new Set(group.map((e) => Math.floor(owner[e]! / 2))).size).toBe(1);
    // Within the hot group's node, 80+50 and 70+60 share the two ranks.
    const hotNodeRanks = tokensPerRank(loads, owner, 4).filter((x) => x > 100);
    expect(hotNodeRanks.sort()).toEqual([130, 130]);
  });

  it('says why a run cannot rebalance', () => {
    expect(rebalanceProblem(8, { gpus: 3, nodeSize: 0, groups: 1 })).toBe('rebalancing moves whole experts between ranks and needs the 8 experts to divide evenly over the 3 workers');
    expect(rebalanceProblem(8, { gpus: 4, nodeSize: 3, groups: 1 })).toBe('nodeSize=3 does not split the 4 workers into whole nodes');
    expect(rebalanceProblem(8, { gpus: 4, nodeSize: 2, groups: 2 })).toBeUndefined();
  });
});
