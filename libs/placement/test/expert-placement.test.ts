/** Placements with redundant experts: the maps, their checks, and EPLB's placement of the copies. */
import { describe, expect, it } from 'vitest';
import {
  asPlacement,
  balancedPlacement,
  checkPlacement,
  describePlacement,
  expectedTokensPerRank,
  hasRedundantExperts,
  holdersOf,
  placementImbalance,
  PlacementError,
  primaryOwner,
  rebalanceProblem,
  replicatedExperts,
  singleCopy,
} from '../src/index';

// 4 experts, 6 physical on 3 ranks: expert 0 on ranks 0 and 2, expert 1 twice on rank 1.
const p = { physicalToLogical: [0, 2, 1, 1, 0, 3], physicalOwner: [0, 0, 1, 1, 2, 2] };

describe('an expert placement', () => {
  it('an owner map is the placement with one copy each', () => {
    expect(singleCopy([1, 0, 1])).toEqual({ physicalToLogical: [0, 1, 2], physicalOwner: [1, 0, 1] });
    expect(asPlacement([1, 0, 1])).toEqual(singleCopy([1, 0, 1]));
    expect(asPlacement(p)).toBe(p);
    expect(hasRedundantExperts(singleCopy([0, 1]), 2)).toBe(false);
    expect(hasRedundantExperts(p, 4)).toBe(true);
  });

  it("first copies make the owner map; holders are distinct ranks; replicated experts are those on several ranks", () => {
    expect(primaryOwner(p, 4)).toEqual([0, 1, 0, 2]);
    expect(holdersOf(p, 4)).toEqual([[0, 2], [1], [0], [2]]);
    expect(replicatedExperts(p, 4)).toEqual([0]);
    expect(describePlacement(p, 3)).toBe("r0: e0 e2 | r1: e1 e1' | r2: e0' e3");
  });

  it('copies share their expert\'s load evenly in the planner\'s estimate', () => {
    expect(expectedTokensPerRank([[10, 6, 2, 4]], p, 3)).toEqual([5 + 2, 6, 5 + 4]);
    expect(placementImbalance([[10, 6, 2, 4]], p, 3)).toBeCloseTo(9 / (22 / 3), 12);
  });

  it('is refused with the entry that is wrong', () => {
    expect(() => checkPlacement({ physicalToLogical: [0, 1], physicalOwner: [0] }, 2, 2)).toThrow('placement: 2 physical experts but 1 owner ranks');
    expect(() => checkPlacement({ physicalToLogical: [0, 0, 1], physicalOwner: [0, 1, 1] }, 4, 2)).toThrow("placement: 3 physical experts cannot hold the model's 4 experts");
    expect(() => checkPlacement({ physicalToLogical: [0, 0, 2], physicalOwner: [0, 1, 1] }, 3, 2)).toThrow('placement: expert 1 has no physical copy');
    expect(() => checkPlacement({ physicalToLogical: [0, 1, 1], physicalOwner: [0, 1, 3] }, 2, 2)).toThrow('physical expert 2 is on rank 3, not a rank of this run (0..1)');
    expect(() => checkPlacement({ physicalToLogical: [0, 5], physicalOwner: [0, 1] }, 2, 2)).toThrow(PlacementError);
  });
});

describe('balancedPlacement', () => {
  it('copies the hot experts over several ranks: imbalance from 4 to 4/3 when rank 0 holds the only two hot experts', () => {
    // 8 experts on 4 ranks, all load on experts 0 and 1 (the sim's skewed routing with top-2).
    const loads = [[20, 20, 0, 0, 0, 0, 0, 0]];
    const { placement, plan } = balancedPlacement(loads, { gpus: 4, nodeSize: 2, groups: 1 }, 4);
    expect(plan.policy).toBe('global');
    expect(plan.logicalCount[0]!.slice(0, 2)).toEqual([3, 3]);
    expect(placement.physicalToLogical).toHaveLength(12);
    expect(holdersOf(placement, 8).slice(0, 2)).toEqual([[0, 2], [1, 3]]);
    expect(replicatedExperts(placement, 8)).toEqual([0, 1]);
    expect(placementImbalance(loads, singleCopy([0, 0, 1, 1, 2, 2, 3, 3]), 4)).toBe(4);
    expect(placementImbalance(loads, placement, 4)).toBeCloseTo(4 / 3, 12);
  });

  it("EPLB may put two copies of one expert on one GPU (its packing does not forbid it): then it counts once as a holder", () => {
    const loads = [[10, 10, 10, 10, 0, 0, 0, 0]];
    const { placement } = balancedPlacement(loads, { gpus: 4, nodeSize: 2, groups: 1 }, 4);
    expect(replicatedExperts(placement, 8)).toEqual([]);
    expect(placementImbalance(loads, placement, 4)).toBe(1);
  });

  it('hierarchical policy: a group and its copies stay on one node', () => {
    const loads = [[1, 2, 3, 4, 50, 60, 70, 80]];
    const { placement, plan } = balancedPlacement(loads, { gpus: 4, nodeSize: 2, groups: 2 }, 4);
    expect(plan.policy).toBe('hierarchical');
    const nodes = holdersOf(placement, 8).map((ranks) => new Set(ranks.map((r) => Math.floor(r / 2))));
    for (const group of [[0, 1, 2, 3], [4, 5, 6, 7]]) expect(new Set(group.flatMap((e) => [...nodes[e]!])).size).toBe(1);
    expect(placementImbalance(loads, placement, 4)).toBeLessThan(placementImbalance(loads, singleCopy([0, 0, 1, 1, 2, 2, 3, 3]), 4));
  });

  it('says why the copies cannot be placed', () => {
    expect(rebalanceProblem(8, { gpus: 4, nodeSize: 2, groups: 1 }, 2)).toBe('8 experts + 2 redundant = 10 physical experts do not divide evenly over the 4 workers (every rank holds as many)');
    expect(rebalanceProblem(8, { gpus: 4, nodeSize: 2, groups: 1 }, -1)).toBe('redundant experts=-1 must be an integer >= 0');
    expect(() => balancedPlacement([[1, 1, 1]], { gpus: 2, nodeSize: 0, groups: 1 }, 2)).toThrow(PlacementError);
  });
});
