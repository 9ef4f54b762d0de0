/**
 * Redundant experts in the dispatch: every rank picks the same copy for a (source, token, expert)
 * (the node's copy first, then spread by token), the layout sends each slot to its copy's rank,
 * and flat and hierarchical all-to-alls deliver each row to the copy its source chose and back.
 */
import { describe, expect, it } from 'vitest';
import { allToAllStrategy, createInMemoryTransports, dispatchLayout, LayoutError, nodeLayout, ReplicaChooser, type FrameKey, type ReplicaPlacement } from '../src/index';

const key: FrameKey = { step: 0, layer: 0, chunk: 0, phase: 'DISPATCH' };

// 4 ranks in 2 nodes of 2; 4 experts, 6 physical: expert 0 on ranks 0 and 2 (one copy a node),
// expert 1 on ranks 0 and 1 (both on node 0), experts 2 and 3 once.
const placement: ReplicaPlacement = { physicalToLogical: [0, 1, 1, 2, 0, 3], physicalOwner: [0, 0, 1, 1, 2, 3] };

describe('ReplicaChooser', () => {
  const chooser = new ReplicaChooser(placement, 4, 4, 2);

  it("takes the copy on the source's node when there is one", () => {
    for (let t = 0; t < 6; t++) {
      expect(placement.physicalOwner[chooser.physicalOf(1, t, 0)]).toBe(0);
      expect(placement.physicalOwner[chooser.physicalOf(3, t, 0)]).toBe(2);
    }
  });

  it("spreads a rank's tokens over the copies in turn, ranks starting at different copies", () => {
    const ranks = (source: number) => [0, 1, 2, 3].map((t) => placement.physicalOwner[chooser.physicalOf(source, t, 1)]);
    expect(ranks(0)).toEqual([0, 1, 0, 1]);
    expect(ranks(1)).toEqual([1, 0, 1, 0]);
    // Node 1 holds no copy of expert 1: its sources choose among all of them.
    expect(ranks(2)).toEqual([0, 1, 0, 1]);
  });

  it('is a function of the placement: another chooser on the same placement answers alike, another node size differently', () => {
    const again = new ReplicaChooser({ physicalToLogical: Array.from(placement.physicalToLogical), physicalOwner: Array.from(placement.physicalOwner) }, 4, 4, 2);
    const ids = Int32Array.from([0, 1, 1, 2, 0, 3, -1, 1]);
    expect([...again.choose(ids, 3, 2, 5)]).toEqual([...chooser.choose(ids, 3, 2, 5)]);
    expect([...chooser.choose(ids, 3, 2, 0)].at(-2)).toBe(-1);
    const oneNode = new ReplicaChooser(placement, 4, 4, 0);
    expect([0, 1, 2, 3].map((t) => oneNode.physicalOf(3, t, 0))).toEqual([4, 0, 4, 0]);
  });

  it('refuses a placement with an expert lacking a copy, or a rank out of range', () => {
    expect(() => new ReplicaChooser({ physicalToLogical: [0, 0, 1], physicalOwner: [0, 1, 1] }, 3, 2, 0)).toThrow('replica placement: expert 2 has no physical copy');
    expect(() => new ReplicaChooser({ physicalToLogical: [0, 1], physicalOwner: [0, 2] }, 2, 2, 0)).toThrow(LayoutError);
  });
});

describe('dispatchLayout with slot ranks', () => {
  it("sends each slot to its copy's rank, not its expert's owner", () => {
    const chooser = new ReplicaChooser(placement, 4, 4, 2);
    const ids = Int32Array.from([1, 2, 1, 3, 1, 0]); // 3 tokens, top-2, from rank 0
    const slotRanks = chooser.ranksOf(chooser.choose(ids, 0, 2));
    const layout = dispatchLayout(ids, [0, 0, 1, 3], 4, undefined, slotRanks);
    expect(layout.slotsTo.map((s) => [...s])).toEqual([[0, 4, 5], [1, 2], [], [3]]);
  });
});

describe('nodeLayout with copies', () => {
  it("lists a node's (expert, rank) copies, an expert held twice on a node twice", () => {
    const nl = nodeLayout(placement, 4, 2);
    expect(nl.nodeExperts).toEqual([[0, 1, 1, 2], [0, 3]]);
    expect(nl.nodeRanks).toEqual([[0, 0, 1, 1], [2, 3]]);
    expect(nl.targetBit[1 * 4 + 1]).toBe(2); // rank 1's copy of expert 1: bit 2 of node 0
    expect(nl.targetBit[1 * 4 + 0]).toBe(-1); // rank 1 holds no copy of expert 0
  });
});

describe.each(['flat', 'hierarchical'] as const)('%s all-to-all with copies', (mode) => {
  it('every row reaches the copy its source chose, and the combine brings every slot its row back', async () => {
    const world = 4;
    const k = 2;
    const cols = 2;
    const routes = [
      [0, 1, 1, 3, 0, 2],
      [1, 0, 0, 3, 1, 2],
      [0, 1, 1, 0, 3, 2],
      [1, 3, 0, 1, 0, 2],
    ];
    const chooser = new ReplicaChooser(placement, 4, world, 2);
    const transports = createInMemoryTransports(world);
    try {
      const results = await Promise.all(
        transports.map(async (t, r) => {
          const a2a = allToAllStrategy(mode, placement, world, 2);
          const ids = Int32Array.from(routes[r]!);
          const physical = chooser.choose(ids, r, k);
          const layout = dispatchLayout(ids, [0, 0, 1, 3], world, undefined, chooser.ranksOf(physical));
          const source = Float32Array.from({ length: (ids.length / k) * cols }, (_, i) => r * 100 + i);
          const weights = Float32Array.from(ids, (_, s) => 1 + (s % k));
          const d = await a2a.dispatch(t, key, layout, source, cols, { rowOfSlot: (s) => Math.floor(s / k), expertIds: ids, weights, codec: 'f32', timeoutMs: 5000 });
          const outputs = d.received.map((rec) => rec.rows.map((v) => -v));
          const c = await a2a.combine(t, { ...key, phase: 'COMBINE' }, d.handle, outputs, { codec: 'f32', timeoutMs: 5000 });
          return { received: d.received, out: c.out, physical, source, form: a2a.form };
        }),
      );
      results.forEach(({ out, source, form }, r) => {
        for (let s = 0; s < routes[r]!.length; s++) {
          const token = Math.floor(s / k);
          const want = [...source.subarray(token * cols, (token + 1) * cols)].map((v) => -v);
          // Per slot (flat), or per token weighted and summed (hierarchical): weights 1 and 2.
          if (form === 'slots') expect([...out.subarray(s * cols, (s + 1) * cols)]).toEqual(want);
          else expect([...out.subarray(token * cols, (token + 1) * cols)]).toEqual(want.map((v) => 3 * v + 0)); // + 0: a sum starts from +0
        }
      });
      // What each rank received from each origin is exactly what that origin chose to send it.
      results.forEach(({ received }, dest) =>
        received.forEach((rows, origin) => {
          const chosen = routes[origin]!.flatMap((e, s) => (placement.physicalOwner[results[origin]!.physical[s]!] === dest ? [e] : []));
          expect([...rows.expertIds].sort()).toEqual(chosen.sort());
        }),
      );
    } finally {
      await Promise.all(transports.map((t) => t.close()));
    }
  });
});
