/** EPLB: EPLB's own published example, hand-derived cases, and the invariants of any plan. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { balancedPacking, gpuLoads, imbalance, rebalanceExperts, replicateExperts, type EplbOptions, type EplbPlan } from '../src/eplb';
import { PlacementError } from '../src/errors';

// deepseek-ai/EPLB README: 2 layers of 12 experts, 4 groups, 16 replicas on 2 nodes of 4 GPUs.
const README_WEIGHT = [
  [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
];
const README_PHY2LOG = [
  [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
  [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
];

/** Checks what every plan must satisfy; `groupsOnNodes` adds the hierarchical policy's promise. */
function expectValidPlan(weight: number[][], o: EplbOptions, plan: EplbPlan, groupsOnNodes: boolean) {
  const experts = weight[0]!.length;
  const perGpu = o.replicas / o.gpus;
  const gpusPerNode = o.gpus / o.nodes;
  plan.physicalToLogical.forEach((row, l) => {
    expect(row).toHaveLength(o.replicas);
    const counts = new Array<number>(experts).fill(0);
    for (const e of row) counts[e]!++;
    expect(counts).toEqual(plan.logicalCount[l]);
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(1);
    // logicalToPhysical lists exactly the physical experts of each logical one.
    plan.logicalToPhysical[l]!.forEach((slots, e) => {
      const real = slots.filter((p) => p >= 0);
      expect(real).toHaveLength(counts[e]!);
      for (const p of real) expect(row[p]).toBe(e);
    });
    if (groupsOnNodes) {
      const groupSize = experts / o.groups;
      const nodeOf = new Map<number, Set<number>>();
      row.forEach((e, p) => {
        const g = Math.floor(e / groupSize);
        const node = Math.floor(Math.floor(p / perGpu) / gpusPerNode);
        nodeOf.set(g, (nodeOf.get(g) ?? new Set()).add(node));
      });
      for (const nodes of nodeOf.values()) expect(nodes.size).toBe(1);
    }
  });
}

describe('rebalanceExperts reproduces EPLB', () => {
  const options = { replicas: 16, groups: 4, nodes: 2, gpus: 8 };

  it("EPLB's published example: the same physical-to-logical map, hierarchical policy", () => {
    const plan = rebalanceExperts(README_WEIGHT, options);
    expect(plan.policy).toBe('hierarchical');
    expect(plan.physicalToLogical).toEqual(README_PHY2LOG);
    expectValidPlan(README_WEIGHT, options, plan, true);
    // Layer 0: experts 1, 4, 5, 10 are the hot ones and get a second replica.
    expect(plan.logicalCount[0]).toEqual([1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1]);
    expect(plan.logicalToPhysical[0]![5]).toEqual([0, 2]);
  });

  it('groups that do not divide over the nodes fall back to the global policy', () => {
    const o = { replicas: 16, groups: 3, nodes: 2, gpus: 8 };
    const plan = rebalanceExperts(README_WEIGHT, o);
    expect(plan.policy).toBe('global');
    expectValidPlan(README_WEIGHT, o, plan, false);
  });
});

describe('EPLB pieces, by hand', () => {
  it('replicateExperts gives every extra replica to the highest load per replica', () => {
    // 100 -> 50 -> 33.3 -> 25 stay above 1: the hot expert takes all 4 extras.
    expect(replicateExperts([100, 1, 1, 1], 8)).toEqual({ physToLog: [0, 1, 2, 3, 0, 0, 0, 0], rank: [0, 0, 0, 0, 1, 2, 3, 4], count: [5, 1, 1, 1] });
    // 9/2 = 4.5 < 6: the second extra goes to expert 1.
    expect(replicateExperts([9, 6, 1], 5).count).toEqual([2, 2, 1]);
  });

  it('balancedPacking puts the heaviest item first into the lightest pack with room', () => {
    // By weight 8, 7, 6, 5, 1, 1: 8 -> p0; 7 -> p1; 6 -> p1 (7 < 8) = 13; 5 -> p0 = 13; 1 -> p0 (tie: the first); 1 -> p1.
    const { packIndex, rankInPack } = balancedPacking([1, 8, 6, 7, 5, 1], 2);
    expect(packIndex).toEqual([0, 0, 1, 1, 0, 1]);
    expect(rankInPack).toEqual([2, 0, 1, 0, 1, 2]);
  });

  it('one hot expert: replicas cut the max/mean load per GPU from 3.88 to 1.55', () => {
    const weight = [[100, 1, 1, 1]];
    const flat = rebalanceExperts(weight, { replicas: 4, groups: 1, nodes: 1, gpus: 4 });
    const redundant = rebalanceExperts(weight, { replicas: 8, groups: 1, nodes: 1, gpus: 4 });
    expect(imbalance(gpuLoads(weight, flat, 4)[0]!)).toBeCloseTo(100 / 25.75, 6);
    expect(gpuLoads(weight, redundant, 4)[0]).toEqual([40, 21, 21, 21]);
    expect(imbalance(gpuLoads(weight, redundant, 4)[0]!)).toBeCloseTo(40 / 25.75, 6);
  });
});

describe('every plan is a valid placement', () => {
  it('for random loads and shapes, both policies', () => {
    const shape = fc
      .record({ groupsPerNode: fc.integer({ min: 1, max: 3 }), nodes: fc.integer({ min: 1, max: 3 }), groupSize: fc.integer({ min: 1, max: 3 }), gpusPerNode: fc.integer({ min: 1, max: 3 }), extraPerGpu: fc.integer({ min: 0, max: 2 }) })
      .filter((s) => s.groupsPerNode * s.groupSize % s.gpusPerNode === 0);
    fc.assert(
      fc.property(shape, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 1_000_000 }), (s, layers, seed) => {
        const groups = s.groupsPerNode * s.nodes;
        const experts = groups * s.groupSize;
        const gpus = s.gpusPerNode * s.nodes;
        const replicas = experts + gpus * s.extraPerGpu;
        let x = seed;
        const weight = Array.from({ length: layers }, () => Array.from({ length: experts }, () => (x = (x * 1103515245 + 12345) % 2 ** 31) % 200));
        const o = { replicas, groups, nodes: s.nodes, gpus };
        expectValidPlan(weight, o, rebalanceExperts(weight, o), true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('rebalanceExperts refuses what cannot work, with the numbers', () => {
  it.each([
    [{ replicas: 12, groups: 4, nodes: 2, gpus: 8 }, 'replicas=12 is not a multiple of gpus=8'],
    [{ replicas: 16, groups: 4, nodes: 3, gpus: 8 }, 'gpus=8 is not a multiple of nodes=3'],
    [{ replicas: 8, groups: 4, nodes: 2, gpus: 8 }, 'replicas=8 cannot hold the 12 logical experts'],
    [{ replicas: 16, groups: 5, nodes: 1, gpus: 8 }, 'groups=5 does not divide the 12 experts'],
  ])('%j', (options, message) => {
    expect(() => rebalanceExperts(README_WEIGHT, options)).toThrow(PlacementError);
    expect(() => rebalanceExperts(README_WEIGHT, options)).toThrow(message);
  });

  it('a negative load', () => {
    expect(() => rebalanceExperts([[1, -2]], { replicas: 2, groups: 1, nodes: 1, gpus: 1 })).toThrow('load of layer 0 expert 1 is -2');
  });
});
