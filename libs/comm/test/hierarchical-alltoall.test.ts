/**
 * The hierarchical all-to-all delivers what the flat one delivers, sends each token across the
 * inter-node link at most once per destination node, and its combine returns every slot's row.
 */
import { describe, expect, it } from 'vitest';
import { allToAllStrategy, createInMemoryTransports, dispatchLayout, LayoutError, type FrameKey, type ReceivedRows, type Transport } from '../src/index';

const key: FrameKey = { step: 0, layer: 0, chunk: 0, phase: 'DISPATCH' };
const combineKey: FrameKey = { ...key, phase: 'COMBINE' };

/** Token t of rank r: a row of `cols` values that names both (so misrouted rows are visible). */
const tokenRow = (rank: number, t: number, cols: number) => Float32Array.from({ length: cols }, (_, c) => rank * 1000 + t * 10 + c);

/** Runs a dispatch on every rank; routes[r]: [tokens·k] expert ids of rank r's slots. */
async function run(mode: 'flat' | 'hierarchical', routes: number[][], owner: number[], nodeSize: number, k: number, cols: number) {
  const world = routes.length;
  // As the gRPC wire does, an empty frame arrives without its (empty) expert id list.
  const transports = createInMemoryTransports(world).map((t): Transport => {
    const receive = t.receive.bind(t);
    return Object.assign(Object.create(t) as Transport, {
      receive: async (source: number, k: FrameKey, timeoutMs: number) => {
        const frame = await receive(source, k, timeoutMs);
        return frame.payload.rows === 0 ? { source: frame.source, payload: frame.payload } : frame;
      },
    });
  });
  try {
    return await Promise.all(
      transports.map(async (t, r) => {
        const a2a = allToAllStrategy(mode, owner, world, nodeSize);
        const ids = Int32Array.from(routes[r]!);
        const tokens = ids.length / k;
        const source = new Float32Array(tokens * cols);
        for (let i = 0; i < tokens; i++) source.set(tokenRow(r, i, cols), i * cols);
        const layout = dispatchLayout(ids, owner, world);
        const d = await a2a.dispatch(t, key, layout, source, cols, { rowOfSlot: (s) => Math.floor(s / k), expertIds: ids, codec: 'f32', timeoutMs: 5000 });
        // The "experts": output = input row + 0.5 * expert id, so a row returned to a wrong slot shows.
        const outputs = d.received.map((rec) => Float32Array.from(rec.rows, (v, i) => v + 0.5 * rec.expertIds[Math.floor(i / cols)]!));
        const c = await a2a.combine(t, combineKey, d.handle, outputs, { codec: 'f32', timeoutMs: 5000 });
        return { received: d.received, dispatchBytes: d.bytes, out: c.out, combineBytes: c.bytes, dispatchHops: d.hops, combineHops: c.hops };
      }),
    );
  } finally {
    await Promise.all(transports.map((t) => t.close()));
  }
}

/** Rows received from each origin as sorted "expert:values" strings (order within an origin is not part of the contract). */
const asSets = (received: ReceivedRows[], cols: number) =>
  received.map((r) => Array.from({ length: r.count }, (_, i) => `${r.expertIds[i]}:${Array.from(r.rows.subarray(i * cols, (i + 1) * cols)).join(',')}`).sort());

describe('hierarchical all-to-all, hand-derived small case', () => {
  // 4 ranks in 2 nodes of 2, expert e on rank e, top-2, rows of 3 values (12 bytes in f32).
  const owner = [0, 1, 2, 3];
  const routes = [
    [2, 3, 0, 2, 1, 0], // rank 0: token 0 -> node 1 twice, token 1 -> node 0 and node 1, token 2 -> node 0 only
    [0, 1, 0, 1, 0, 1], // rank 1: every token stays on node 0
    [0, 1, 2, 3, 0, 3], // rank 2: token 0 -> node 0 twice, token 1 stays, token 2 -> node 0 and node 1
    [3, 2, 3, 2, 3, 2], // rank 3: stays
  ];

  it('rank 0 sends 2 rows across nodes (tokens 0 and 1, once each) where the flat dispatch sends 3', async () => {
    const flat = await run('flat', routes, owner, 2, 2, 3);
    const hier = await run('hierarchical', routes, owner, 2, 2, 3);
    expect(flat[0]!.dispatchBytes.inter).toBe(3 * 12);
    expect(hier[0]!.dispatchBytes.inter).toBe(2 * 12);
    // Rank 2 (token 0 to node 0 twice, token 2 once): flat 3 rows, hierarchical 2; ranks 1 and 3 send none.
    expect([flat[2]!.dispatchBytes.inter, hier[2]!.dispatchBytes.inter]).toEqual([3 * 12, 2 * 12]);
    expect([hier[1]!.dispatchBytes.inter, hier[3]!.dispatchBytes.inter]).toEqual([0, 0]);
  });

  it('reports its two hops in order, each with its link class and bytes; a flat all-to-all has none', async () => {
    const hier = await run('hierarchical', routes, owner, 2, 2, 3);
    const [first, second] = hier[0]!.dispatchHops;
    expect([first!.link, second!.link]).toEqual(['inter', 'intra']);
    expect([first!.bytes, second!.bytes]).toEqual([hier[0]!.dispatchBytes.inter, hier[0]!.dispatchBytes.intra]);
    expect(first!.endMs).toBeLessThanOrEqual(second!.startMs);
    expect(hier[0]!.combineHops.map((h) => h.link)).toEqual(['intra', 'inter']);
    expect((await run('flat', routes, owner, 2, 2, 3))[0]!.dispatchHops).toEqual([]);
  });

  it('the receivers get the same rows with the same experts, and every slot gets its own row back', async () => {
    const flat = await run('flat', routes, owner, 2, 2, 3);
    const hier = await run('hierarchical', routes, owner, 2, 2, 3);
    for (let r = 0; r < 4; r++) {
      expect(asSets(hier[r]!.received, 3)).toEqual(asSets(flat[r]!.received, 3));
      expect(Array.from(hier[r]!.out)).toEqual(Array.from(flat[r]!.out));
    }
  });
});

describe('hierarchical all-to-all, random routings', () => {
  it.each([
    [8, 4, 16, 4],
    [8, 2, 16, 3],
    [4, 2, 8, 2],
    [6, 3, 12, 2],
  ])('%i ranks in nodes of %i, %i experts, top-%i: same delivery as flat, inter-node rows = distinct (token, other node) pairs', async (world, nodeSize, experts, k) => {
    let seed = world * 7 + k;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const owner = Array.from({ length: experts }, (_, e) => Math.floor((e * world) / experts));
    const tokens = 9;
    const routes = Array.from({ length: world }, () =>
      Array.from({ length: tokens }).flatMap(() => {
        const chosen: number[] = [];
        while (chosen.length < k) {
          const e = rand(experts);
          if (!chosen.includes(e)) chosen.push(e);
        }
        return chosen;
      }),
    );
    const cols = 2;
    const flat = await run('flat', routes, owner, nodeSize, k, cols);
    const hier = await run('hierarchical', routes, owner, nodeSize, k, cols);
    for (let r = 0; r < world; r++) {
      expect(asSets(hier[r]!.received, cols)).toEqual(asSets(flat[r]!.received, cols));
      expect(Array.from(hier[r]!.out)).toEqual(Array.from(flat[r]!.out));
      const myNode = Math.floor(r / nodeSize);
      let pairs = 0;
      for (let t = 0; t < tokens; t++) {
        const nodes = new Set(routes[r]!.slice(t * k, (t + 1) * k).map((e) => Math.floor(owner[e]! / nodeSize)));
        nodes.delete(myNode);
        pairs += nodes.size;
      }
      expect(hier[r]!.dispatchBytes.inter).toBe(pairs * cols * 4);
      expect(hier[r]!.dispatchBytes.inter).toBeLessThanOrEqual(flat[r]!.dispatchBytes.inter);
    }
  });

  it('refuses a node size that does not split the world, naming both', () => {
    expect(() => allToAllStrategy('hierarchical', [0, 1, 2], 3, 2)).toThrow(LayoutError);
    expect(() => allToAllStrategy('hierarchical', [0, 1, 2], 3, 2)).toThrow('nodeSize=2 does not split the 3 ranks into whole nodes');
  });
});
