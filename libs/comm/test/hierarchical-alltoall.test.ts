/**
 * The hierarchical all-to-all delivers what the flat one delivers, sends each token across the
 * inter-node link at most once per destination node in every one of its four all-to-alls (both
 * directions, forward and backward), and its combine, reduced within the node, returns what the
 * token's rank would compute from the flat combine's per-slot rows: Σ_s w_s · out_s, and in the
 * backward Σ_s dL/dx_s with dL/dw_s = <out_s, g>.
 */
import { describe, expect, it } from 'vitest';
import { allToAllStrategy, createInMemoryTransports, dispatchLayout, LayoutError, type FrameKey, type Phase, type ReceivedRows, type Transport } from '../src/index';

const keyOf = (phase: Phase): FrameKey => ({ step: 0, layer: 0, chunk: 0, phase });

/** Token t of rank r: a row of `cols` values that names both (so misrouted rows are visible). */
const tokenRow = (rank: number, t: number, cols: number) => Float32Array.from({ length: cols }, (_, c) => rank * 1000 + t * 10 + c);
/** Combine weight of slot s of rank r: distinct per slot, not a round number. */
const weightOf = (rank: number, s: number) => 0.3 + 0.07 * (s % 5) + 0.011 * rank;
/** dL/dy of token t on rank r. */
const gradRow = (rank: number, t: number, cols: number) => Float32Array.from({ length: cols }, (_, c) => ((rank + 1) * (t + 2) * (c + 3)) % 7 - 3.25);

/** "Experts": forward out = in + 0.5·e; backward dL/dx = dL/dout · (1 + e); so a row sent to a wrong expert or slot shows. */
const expertForward = (received: ReceivedRows[], cols: number) => received.map((r) => Float32Array.from(r.rows, (v, i) => v + 0.5 * r.expertIds[Math.floor(i / cols)]!));
const expertBackward = (received: ReceivedRows[], cols: number) => received.map((r) => Float32Array.from(r.rows, (v, i) => v * (1 + r.expertIds[Math.floor(i / cols)]!)));

/** As the gRPC wire does, an empty frame arrives without its (empty) expert id and weight lists. */
function wireLike(world: number): Transport[] {
  return createInMemoryTransports(world).map((t): Transport => {
    const receive = t.receive.bind(t);
    return Object.assign(Object.create(t) as Transport, {
      receive: async (source: number, k: FrameKey, timeoutMs: number) => {
        const frame = await receive(source, k, timeoutMs);
        return frame.payload.rows === 0 ? { source: frame.source, payload: frame.payload } : frame;
      },
    });
  });
}

/**
 * Runs the four all-to-alls on every rank; routes[r]: [tokens·k] expert ids of rank r's slots.
 * The flat one is given per-slot rows (w·g backward, as a backend computes them); the
 * hierarchical one per-token rows (g).
 */
async function run(mode: 'flat' | 'hierarchical', routes: number[][], owner: number[], nodeSize: number, k: number, cols: number) {
  const world = routes.length;
  const transports = wireLike(world);
  try {
    return await Promise.all(
      transports.map(async (t, r) => {
        const a2a = allToAllStrategy(mode, owner, world, nodeSize);
        const ids = Int32Array.from(routes[r]!);
        const tokens = ids.length / k;
        const weights = Float32Array.from(ids, (_, s) => weightOf(r, s));
        const source = new Float32Array(tokens * cols);
        const g = new Float32Array(tokens * cols);
        for (let i = 0; i < tokens; i++) {
          source.set(tokenRow(r, i, cols), i * cols);
          g.set(gradRow(r, i, cols), i * cols);
        }
        const layout = dispatchLayout(ids, owner, world);
        const opts = { codec: 'f32' as const, timeoutMs: 5000 };
        const d = await a2a.dispatch(t, keyOf('DISPATCH'), layout, source, cols, { ...opts, rowOfSlot: (s) => Math.floor(s / k), expertIds: ids, weights });
        const c = await a2a.combine(t, keyOf('COMBINE'), d.handle, expertForward(d.received, cols), opts);
        const grads = a2a.form === 'tokens' ? g : Float32Array.from({ length: ids.length * cols }, (_, i) => weights[Math.floor(i / cols)]! * g[Math.floor(i / cols / k) * cols + (i % cols)]!);
        const cb = await a2a.combineBackward(t, keyOf('COMBINE_BACKWARD'), d.handle, grads, { ...opts, expertIds: ids });
        const dWeights = new Float32Array(ids.length);
        const db = await a2a.dispatchBackward(t, keyOf('DISPATCH_BACKWARD'), cb.handle, expertBackward(cb.received, cols), { ...opts, dWeightsInto: dWeights });
        return { ids, weights, g, received: d.received, out: c.out, backwardReceived: cb.received, dIn: db.out, dWeights, bytes: [d.bytes, c.bytes, cb.bytes, db.bytes], dispatchHops: d.hops, combineHops: c.hops };
      }),
    );
  } finally {
    await Promise.all(transports.map((t) => t.close()));
  }
}

/** Rows received from each origin as sorted "expert:values" strings (order within an origin is not part of the contract). */
const asSets = (received: ReceivedRows[], cols: number) =>
  received.map((r) => Array.from({ length: r.count }, (_, i) => `${r.expertIds[i]}:${Array.from(r.rows.subarray(i * cols, (i + 1) * cols)).join(',')}`).sort());

type Run = Awaited<ReturnType<typeof run>>[number];

/** What the token's rank computes from the flat run's per-slot rows: y, Σ dL/dx and dL/dw, in float64. */
function fromSlots(flat: Run, k: number, cols: number) {
  const T = flat.ids.length / k;
  const y = new Float64Array(T * cols);
  const dIn = new Float64Array(T * cols);
  const dWeights = new Float64Array(T * k);
  for (let s = 0; s < T * k; s++) {
    const t = Math.floor(s / k);
    for (let c = 0; c < cols; c++) {
      y[t * cols + c]! += flat.weights[s]! * flat.out[s * cols + c]!;
      dIn[t * cols + c]! += flat.dIn[s * cols + c]!;
      dWeights[s]! += flat.out[s * cols + c]! * flat.g[t * cols + c]!;
    }
  }
  return { y, dIn, dWeights };
}

/** Largest |a - b| / max(1, |b|). */
const worst = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a, (v, i) => Math.abs(v - b[i]!) / Math.max(1, Math.abs(b[i]!))).reduce((m, d) => Math.max(m, d), 0);

/** [rank] distinct (token, node other than the rank's) pairs of its routing: rows it sends across, one per pair. */
function pairsOf(routes: number[][], owner: number[], nodeSize: number, k: number): number[] {
  return routes.map((ids, r) => {
    let pairs = 0;
    for (let t = 0; t < ids.length / k; t++) {
      const nodes = new Set(ids.slice(t * k, (t + 1) * k).map((e) => Math.floor(owner[e]! / nodeSize)));
      nodes.delete(Math.floor(r / nodeSize));
      pairs += nodes.size;
    }
    return pairs;
  });
}

describe('hierarchical all-to-all, hand-derived small case', () => {
  // 4 ranks in 2 nodes of 2, expert e on rank e, top-2, rows of 3 values (12 bytes in f32).
  const owner = [0, 1, 2, 3];
  const routes = [
    [2, 3, 0, 2, 1, 0], // rank 0: token 0 -> node 1 twice, token 1 -> node 0 and node 1, token 2 -> node 0 only
    [0, 1, 0, 1, 0, 1], // rank 1: every token stays on node 0
    [0, 1, 2, 3, 0, 3], // rank 2: token 0 -> node 0 twice, token 1 stays, token 2 -> node 0 and node 1
    [3, 2, 3, 2, 3, 2], // rank 3: stays
  ];
  const row = 12;

  it('each of the four all-to-alls sends one row per (token, other node) across: 2 rows each way where the flat one sends 3', async () => {
    const flat = await run('flat', routes, owner, 2, 2, 3);
    const hier = await run('hierarchical', routes, owner, 2, 2, 3);
    // [dispatch, combine, combine backward, dispatch backward] inter-node bytes of each rank.
    const inter = (runs: Run[], r: number) => runs[r]!.bytes.map((b) => b.inter);
    // Out of node 0: rank 0's tokens 0 and 1 (to node 1) go out once each; rank 2's tokens 0 and 2
    // come back once each (token 0 had 2 experts on node 0: the flat combine returns 2 rows for it).
    expect(inter(hier, 0)).toEqual([2 * row, 2 * row, 2 * row, 2 * row]);
    expect(inter(flat, 0)).toEqual([3 * row, 2 * row, 3 * row, 2 * row]);
    expect(inter(flat, 1)).toEqual([0, 1 * row, 0, 1 * row]); // expert 1 serves rank 2's token 0
    expect(inter(hier, 1)).toEqual([0, 0, 0, 0]); // rank 1 forwards for rank 3, whose tokens stay home
    // Out of node 1, the mirror image: rank 2 sends its tokens 0 and 2 and returns rank 0's tokens 0 and 1.
    expect(inter(hier, 2)).toEqual([2 * row, 2 * row, 2 * row, 2 * row]);
    expect(inter(flat, 2)).toEqual([3 * row, 2 * row, 3 * row, 2 * row]);
    expect([inter(flat, 3), inter(hier, 3)]).toEqual([
      [0, 1 * row, 0, 1 * row],
      [0, 0, 0, 0],
    ]);
  });

  it('reports its two hops in order, each with its link class and bytes; a flat all-to-all has none', async () => {
    const hier = await run('hierarchical', routes, owner, 2, 2, 3);
    const [first, second] = hier[0]!.dispatchHops;
    expect([first!.link, second!.link]).toEqual(['inter', 'intra']);
    expect([first!.bytes, second!.bytes]).toEqual([hier[0]!.bytes[0]!.inter, hier[0]!.bytes[0]!.intra]);
    expect(first!.endMs).toBeLessThanOrEqual(second!.startMs);
    expect(hier[0]!.combineHops.map((h) => h.link)).toEqual(['intra', 'inter']);
    expect((await run('flat', routes, owner, 2, 2, 3))[0]!.dispatchHops).toEqual([]);
  });

  it('the experts get the same rows both ways, and each token gets the weighted sum of its outputs and its gradients', async () => {
    const flat = await run('flat', routes, owner, 2, 2, 3);
    const hier = await run('hierarchical', routes, owner, 2, 2, 3);
    for (let r = 0; r < 4; r++) {
      expect(asSets(hier[r]!.received, 3)).toEqual(asSets(flat[r]!.received, 3));
      expect(asSets(hier[r]!.backwardReceived, 3)).toEqual(asSets(flat[r]!.backwardReceived, 3));
      const want = fromSlots(flat[r]!, 2, 3);
      expect(worst(hier[r]!.out, want.y)).toBeLessThan(1e-6);
      expect(worst(hier[r]!.dIn, want.dIn)).toBeLessThan(1e-6);
      expect(worst(hier[r]!.dWeights, want.dWeights)).toBeLessThan(1e-6);
    }
  });

  it('a token whose experts share one node gets exactly the float64 sum rounded once', async () => {
    const flat = await run('flat', routes, owner, 2, 2, 3);
    const hier = await run('hierarchical', routes, owner, 2, 2, 3);
    // Rank 1: all its tokens on node 0; rank 0's token 0 wholly on node 1.
    expect(Array.from(hier[1]!.out)).toEqual(Array.from(Float32Array.from(fromSlots(flat[1]!, 2, 3).y)));
    expect(Array.from(hier[0]!.out.subarray(0, 3))).toEqual(Array.from(Float32Array.from(fromSlots(flat[0]!, 2, 3).y.subarray(0, 3))));
    expect(Array.from(hier[0]!.dWeights)).toEqual(Array.from(Float32Array.from(fromSlots(flat[0]!, 2, 3).dWeights)));
  });
});

describe('hierarchical all-to-all, random routings', () => {
  it.each([
    [8, 4, 16, 4],
    [8, 2, 16, 3],
    [4, 2, 8, 2],
    [6, 3, 12, 2],
  ])('%i ranks in nodes of %i, %i experts, top-%i: same delivery and sums as flat, one row per (token, other node) each way', async (world, nodeSize, experts, k) => {
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
    const pairs = pairsOf(routes, owner, nodeSize, k);
    for (let r = 0; r < world; r++) {
      expect(asSets(hier[r]!.received, cols)).toEqual(asSets(flat[r]!.received, cols));
      expect(asSets(hier[r]!.backwardReceived, cols)).toEqual(asSets(flat[r]!.backwardReceived, cols));
      const want = fromSlots(flat[r]!, k, cols);
      expect(worst(hier[r]!.out, want.y)).toBeLessThan(1e-6);
      expect(worst(hier[r]!.dIn, want.dIn)).toBeLessThan(1e-6);
      expect(worst(hier[r]!.dWeights, want.dWeights)).toBeLessThan(1e-6);
      // Outbound (dispatch, combine backward): this rank's own pairs.
      expect([hier[r]!.bytes[0]!.inter, hier[r]!.bytes[2]!.inter]).toEqual([pairs[r]! * cols * 4, pairs[r]! * cols * 4]);
      for (const i of [0, 2]) expect(hier[r]!.bytes[i]!.inter).toBeLessThanOrEqual(flat[r]!.bytes[i]!.inter);
    }
    // Return (combine, dispatch backward): a forwarder returns one row per pair of the origins it
    // serves (not of its own), so over the cluster as many rows come back across as went out.
    const total = (runs: Run[], i: number) => runs.reduce((sum, h) => sum + h.bytes[i]!.inter, 0);
    const allPairs = pairs.reduce((a, b) => a + b, 0) * cols * 4;
    expect([0, 1, 2, 3].map((i) => total(hier, i))).toEqual([allPairs, allPairs, allPairs, allPairs]);
    for (let i = 0; i < 4; i++) expect(total(hier, i)).toBeLessThanOrEqual(total(flat, i));
  });

  it('refuses a node size that does not split the world, naming both', () => {
    expect(() => allToAllStrategy('hierarchical', [0, 1, 2], 3, 2)).toThrow(LayoutError);
    expect(() => allToAllStrategy('hierarchical', [0, 1, 2], 3, 2)).toThrow('nodeSize=2 does not split the 3 ranks into whole nodes');
  });

  it('refuses a dispatch without combine weights: the combine could not be reduced on the way back', async () => {
    const [t] = wireLike(1);
    const a2a = allToAllStrategy('hierarchical', [0], 1, 1);
    const ids = Int32Array.from([0]);
    await expect(a2a.dispatch(t!, keyOf('DISPATCH'), dispatchLayout(ids, [0], 1), new Float32Array(2), 2, { rowOfSlot: () => 0, expertIds: ids, codec: 'f32', timeoutMs: 1000 })).rejects.toThrow(
      'needs a combine weight for each of the 1 slots, got 0',
    );
    await t!.close();
  });
});
