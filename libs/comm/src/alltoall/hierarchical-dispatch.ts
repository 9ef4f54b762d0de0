/**
 * The two verbs of the hierarchical all-to-all that carry token rows out to the experts: the
 * forward dispatch (h once per token and node, then fanned out within the node) and the backward
 * of the combine (dL/dy once per token and node, scaled per expert by the forwarder, which also
 * computes the weight gradients). The scheme, its derivation and its summation order:
 * hierarchical-handle.ts.
 */
import { decodeRowsShared, encodeRows } from '../codec/rows';
import type { CodecName } from '../codec/types';
import { keyString, type FrameKey } from '../transport/frame-key';
import type { IncomingFrame, OutgoingFrame, Transport } from '../transport/transport';
import type { DispatchOptions, ReceivedRows } from './dispatch';
import { AllToAllShapeError } from './errors';
import { exchangeAmong } from './exchange-among';
import { addBytes, bitCount, nodePeers, type HierarchicalBackwardHandle, type HierarchicalHandle } from './hierarchical-handle';
import type { DispatchLayout } from './layout';
import type { HopTiming, LinkBytes, NodeLayout } from './node-layout';

/** Rows of an incoming hop frame after checking them against what this rank expects. */
function rowsOf(frame: IncomingFrame, expected: number | undefined, cols: number, what: string, from: string): Float32Array {
  const { rows, cols: frameCols } = frame.payload;
  if ((expected !== undefined && rows !== expected) || (rows > 0 && frameCols !== cols)) {
    throw new AllToAllShapeError(`${what}: ${from} sent ${rows} rows of ${frameCols} values; expected ${expected ?? rows} of ${cols}`);
  }
  return rows > 0 ? decodeRowsShared(frame.payload) : new Float32Array(0);
}

/** [rows.length, cols] rows of `source` picked by `rows`. */
function gather(source: Float32Array, rows: ArrayLike<number>, cols: number): Float32Array {
  const out = new Float32Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) out.set(source.subarray(rows[i]! * cols, (rows[i]! + 1) * cols), i * cols);
  return out;
}

/**
 * Hierarchical dispatch; arguments as `dispatch` (layout by final destination rank, rows picked by
 * options.rowOfSlot: the token), plus the node layout. options.expertIds and options.weights (the
 * combine weight of every slot, carried to the forwarders that reduce the combine) are required.
 * @returns received: [worldSize] rows by origin rank (a token's rows for one rank in ascending
 *   expert id); handle: for the combine and the backward; bytes by link class; the two hops' timings
 */
export async function hierarchicalDispatch(
  transport: Transport,
  key: FrameKey,
  layout: DispatchLayout,
  source: Float32Array,
  cols: number,
  nl: NodeLayout,
  options: DispatchOptions,
  clock: () => number = () => performance.now(),
): Promise<{ received: ReceivedRows[]; handle: HierarchicalHandle; bytes: LinkBytes; hops: HopTiming[] }> {
  const { rank, worldSize } = transport;
  const what = `hierarchical dispatch ${keyString(key)} on rank ${rank}`;
  const { expertIds: ids, weights } = options;
  if (!ids) throw new AllToAllShapeError(`${what}: needs the slots' expert ids`);
  if (!weights || weights.length < layout.slotCount) throw new AllToAllShapeError(`${what}: needs a combine weight for each of the ${layout.slotCount} slots, got ${weights?.length ?? 0}`);
  if (nl.nodes * nl.nodeSize !== worldSize) throw new AllToAllShapeError(`${what}: ${nl.nodes} nodes of ${nl.nodeSize} for a world of ${worldSize}`);
  const E = nl.experts;
  const me = nodePeers(rank, nl);
  const bytes: LinkBytes = { intra: 0, inter: 0 };

  // Hop 1: per node, this rank's distinct tokens with the set of that node's experts and their weights.
  const returnSlots: Int32Array[] = [];
  const sentTokens: Int32Array[] = [];
  const hop1 = new Map<number, OutgoingFrame>();
  let own: { rows: Float32Array; sets: Int32Array; weights: Float32Array } = { rows: new Float32Array(0), sets: new Int32Array(0), weights: new Float32Array(0) };
  for (let n = 0; n < nl.nodes; n++) {
    const slots: number[] = [];
    // The bit of each slot's target (its destination rank's copy of its expert) in node n's list.
    const bitOf = new Map<number, number>();
    for (let j = 0; j < nl.nodeSize; j++) {
      const dest = n * nl.nodeSize + j;
      for (const s of layout.slotsTo[dest]!) {
        const bit = nl.targetBit[dest * E + ids[s]!]!;
        if (!(bit >= 0)) throw new AllToAllShapeError(`${what}: slot ${s} goes to rank ${dest} for expert ${ids[s]}, which that rank does not hold`);
        bitOf.set(s, bit);
        slots.push(s);
      }
    }
    const row = (s: number) => options.rowOfSlot(s);
    slots.sort((a, b) => row(a) - row(b) || bitOf.get(a)! - bitOf.get(b)!);
    returnSlots[n] = Int32Array.from(slots);
    const rowList: number[] = [];
    const sets: number[] = [];
    for (const s of slots) {
      const r = row(s);
      if (!(r >= 0 && r * cols < source.length)) throw new AllToAllShapeError(`${what}: slot ${s} maps to row ${r}, outside the ${source.length / cols} source rows`);
      const bit = 1 << bitOf.get(s)!;
      if (rowList.length > 0 && rowList[rowList.length - 1] === r) {
        if (sets[sets.length - 1]! & bit) throw new AllToAllShapeError(`${what}: row ${r} goes to expert ${ids[s]} twice`);
        sets[sets.length - 1]! |= bit;
      } else {
        rowList.push(r);
        sets.push(bit);
      }
    }
    sentTokens[n] = Int32Array.from(rowList);
    const rows = gather(source, rowList, cols);
    // Sorted by (token, expert bit): the weights run row by row, one per set bit, ascending.
    const nodeWeights = Float32Array.from(slots, (s) => weights[s]!);
    if (n === me.node) own = { rows, sets: Int32Array.from(sets), weights: nodeWeights };
    else hop1.set(n * nl.nodeSize + me.local, { payload: encodeRows(rows, rowList.length, cols, options.codec), expertIds: Int32Array.from(sets), weights: nodeWeights });
  }
  addBytes(bytes, hop1, true);
  const hops: HopTiming[] = [{ link: 'inter', startMs: clock(), endMs: 0, bytes: bytes.inter }];
  const fromOrigins = await exchangeAmong(transport, key, me.across, hop1, options.timeoutMs);
  hops[0]!.endMs = clock();

  // Hop 2: fan every row this rank holds for its node out to the ranks owning its experts.
  const perDest = new Map<number, { rows: Float32Array[]; codes: number[]; pairs: number[] }>();
  for (let j = 0; j < nl.nodeSize; j++) perDest.set(me.node * nl.nodeSize + j, { rows: [], codes: [], pairs: [] });
  const forwardedRow: Int32Array[] = [];
  const forwardedWeight: Float32Array[] = [];
  const hop1Rows: number[] = [];
  for (let n = 0; n < nl.nodes; n++) {
    const origin = n * nl.nodeSize + me.local;
    let { rows, sets, weights: setWeights } = own;
    if (n !== me.node) {
      const frame = fromOrigins.get(origin)!;
      rows = rowsOf(frame, undefined, cols, what, `rank ${origin}`);
      // An empty frame may come without its (empty) id and weight lists: the wire drops empty fields.
      sets = frame.expertIds ?? new Int32Array(0);
      setWeights = frame.weights ?? new Float32Array(0);
      if (sets.length !== frame.payload.rows) throw new AllToAllShapeError(`${what}: rank ${origin} sent ${frame.payload.rows} rows without one expert set each`);
      const expected = sets.reduce((sum, set) => sum + bitCount(set), 0);
      if (setWeights.length !== expected) throw new AllToAllShapeError(`${what}: rank ${origin} sent ${setWeights.length} weights for the ${expected} experts its rows' sets name`);
    }
    const rowOf: number[] = [];
    for (let i = 0; i < sets.length; i++) {
      const set = sets[i]!;
      for (let b = 0; b < 32; b++) {
        if (!((set >>> b) & 1)) continue;
        const e = nl.nodeExperts[me.node]![b];
        if (e === undefined) throw new AllToAllShapeError(`${what}: rank ${origin} names expert bit ${b}; node ${me.node} holds ${nl.nodeExperts[me.node]!.length} experts`);
        const dest = perDest.get(nl.nodeRanks[me.node]![b]!)!;
        dest.rows.push(rows.subarray(i * cols, (i + 1) * cols));
        dest.codes.push(n * E + e);
        dest.pairs.push(n, rowOf.length);
        rowOf.push(i);
      }
    }
    forwardedRow[n] = Int32Array.from(rowOf);
    forwardedWeight[n] = setWeights;
    hop1Rows[n] = sets.length;
  }
  const hop2 = new Map<number, OutgoingFrame>();
  const fanout = new Map<number, Int32Array>();
  let ownHop2: { rows: Float32Array; codes: Int32Array } = { rows: new Float32Array(0), codes: new Int32Array(0) };
  for (const [dest, d] of perDest) {
    const rows = new Float32Array(d.rows.length * cols);
    d.rows.forEach((r, i) => rows.set(r, i * cols));
    fanout.set(dest, Int32Array.from(d.pairs));
    if (dest === rank) ownHop2 = { rows, codes: Int32Array.from(d.codes) };
    else hop2.set(dest, { payload: encodeRows(rows, d.rows.length, cols, options.codec), expertIds: Int32Array.from(d.codes) });
  }
  addBytes(bytes, hop2, false);
  const hop2Start = clock();
  const fromForwarders = await exchangeAmong(transport, key, me.within, hop2, options.timeoutMs);
  hops.push({ link: 'intra', startMs: hop2Start, endMs: clock(), bytes: bytes.intra });

  // Rows by origin: each origin's rows come from the one rank of this node with its local index.
  const byOrigin: { rows: Float32Array[]; ids: number[] }[] = Array.from({ length: worldSize }, () => ({ rows: [], ids: [] }));
  const blocks = new Map<number, [number, number][]>();
  for (let j = 0; j < nl.nodeSize; j++) {
    const forwarder = me.node * nl.nodeSize + j;
    let { rows, codes } = ownHop2;
    if (forwarder !== rank) {
      const frame = fromForwarders.get(forwarder)!;
      rows = rowsOf(frame, undefined, cols, what, `forwarder ${forwarder}`);
      codes = frame.expertIds ?? new Int32Array(0);
      if (codes.length !== frame.payload.rows) throw new AllToAllShapeError(`${what}: rank ${forwarder} forwarded ${frame.payload.rows} rows with ${codes.length} expert ids`);
    }
    const list: [number, number][] = [];
    for (let i = 0; i < codes.length; i++) {
      const originNode = Math.floor(codes[i]! / E);
      const e = codes[i]! % E;
      const origin = originNode * nl.nodeSize + j;
      if (originNode >= nl.nodes || nl.targetBit[rank * E + e]! < 0) throw new AllToAllShapeError(`${what}: rank ${forwarder} forwarded a row for expert ${e} of node ${originNode}, not held here`);
      const last = list[list.length - 1];
      if (last && last[0] === origin) last[1]++;
      else {
        if (list.some(([o]) => o === origin)) throw new AllToAllShapeError(`${what}: rank ${forwarder} interleaved the rows of origin ${origin}`);
        list.push([origin, 1]);
      }
      byOrigin[origin]!.rows.push(rows.subarray(i * cols, (i + 1) * cols));
      byOrigin[origin]!.ids.push(e);
    }
    blocks.set(forwarder, list);
  }
  const received = byOrigin.map((o, origin): ReceivedRows => {
    const rows = new Float32Array(o.rows.length * cols);
    o.rows.forEach((r, i) => rows.set(r, i * cols));
    return { source: origin, rows, expertIds: Int32Array.from(o.ids), count: o.rows.length };
  });
  const handle: HierarchicalHandle = {
    key,
    cols,
    slotCount: layout.slotCount,
    sourceRows: source.length / cols,
    returnSlots,
    sentTokens,
    forwardedRow,
    forwardedWeight,
    hop1Rows,
    fanout,
    blocks,
    received: received.map((r) => r.count),
    receivedIds: received.map((r) => r.expertIds),
  };
  return { received, handle, bytes, hops };
}

/**
 * Backward of a hierarchical combine: `grads` [T, cols], the gradient of every token's combined
 * output (rows indexed as the forward dispatch's source), crosses to each node once per token;
 * the forwarder there computes the gradient of each slot's combine weight (<out_s, g[t]>, float64
 * in column order) and sends w_s · g[t] to each expert's rank.
 * @param handle the forward dispatch's, after its combine (which kept the expert outputs)
 * @returns received: [worldSize] by origin, as the forward dispatch delivered (same rows, same
 *   expert ids), the rows now the gradients of the expert outputs; handle for dispatchBackward
 */
export async function hierarchicalCombineBackward(
  transport: Transport,
  key: FrameKey,
  handle: HierarchicalHandle,
  grads: Float32Array,
  nl: NodeLayout,
  options: { codec: CodecName; timeoutMs: number },
  clock: () => number = () => performance.now(),
): Promise<{ received: ReceivedRows[]; handle: HierarchicalBackwardHandle; bytes: LinkBytes; hops: HopTiming[] }> {
  const { rank, worldSize } = transport;
  const { cols } = handle;
  const what = `hierarchical combine backward ${keyString(key)} on rank ${rank}`;
  const outputs = handle.forwardedOutputs;
  if (!outputs) throw new AllToAllShapeError(`${what}: the forward combine of this dispatch has not run (it keeps the expert outputs the weight gradients need)`);
  const me = nodePeers(rank, nl);
  const bytes: LinkBytes = { intra: 0, inter: 0 };

  // Hop 1: each token's gradient once to every node holding experts of it, in the forward's order.
  const hop1 = new Map<number, OutgoingFrame>();
  for (let n = 0; n < nl.nodes; n++) {
    const tokens = handle.sentTokens[n]!;
    for (const t of tokens) if ((t + 1) * cols > grads.length) throw new AllToAllShapeError(`${what}: token ${t} is outside the ${grads.length / cols} gradient rows`);
    if (n !== me.node) hop1.set(n * nl.nodeSize + me.local, { payload: encodeRows(gather(grads, tokens, cols), tokens.length, cols, options.codec) });
  }
  addBytes(bytes, hop1, true);
  const hops: HopTiming[] = [{ link: 'inter', startMs: clock(), endMs: 0, bytes: bytes.inter }];
  const fromOrigins = await exchangeAmong(transport, key, me.across, hop1, options.timeoutMs);
  hops[0]!.endMs = clock();

  // Forwarder: weight gradients and per-expert rows w_s · g[t].
  const scaled: Float32Array[] = [];
  const forwardedDWeights: Float32Array[] = [];
  for (let n = 0; n < nl.nodes; n++) {
    const origin = n * nl.nodeSize + me.local;
    const rowOf = handle.forwardedRow[n]!;
    const g = n === me.node ? gather(grads, handle.sentTokens[n]!, cols) : rowsOf(fromOrigins.get(origin)!, handle.hop1Rows[n], cols, what, `rank ${origin}`);
    const w = handle.forwardedWeight[n]!;
    const out = outputs[n]!;
    const rows = new Float32Array(rowOf.length * cols);
    const dWeights = new Float32Array(rowOf.length);
    for (let p = 0; p < rowOf.length; p++) {
      const gi = rowOf[p]! * cols;
      let dot = 0;
      for (let c = 0; c < cols; c++) {
        dot += g[gi + c]! * out[p * cols + c]!;
        rows[p * cols + c] = w[p]! * g[gi + c]!;
      }
      dWeights[p] = dot;
    }
    scaled[n] = rows;
    forwardedDWeights[n] = dWeights;
  }

  // Hop 2: the scaled rows to the experts' ranks, in the forward's order (they keep its expert ids).
  const hop2 = new Map<number, OutgoingFrame>();
  let ownHop2 = new Float32Array(0);
  for (const [dest, pairs] of handle.fanout) {
    const count = pairs.length / 2;
    const rows = new Float32Array(count * cols);
    for (let i = 0; i < count; i++) rows.set(scaled[pairs[2 * i]!]!.subarray(pairs[2 * i + 1]! * cols, (pairs[2 * i + 1]! + 1) * cols), i * cols);
    if (dest === rank) ownHop2 = rows;
    else hop2.set(dest, { payload: encodeRows(rows, count, cols, options.codec) });
  }
  addBytes(bytes, hop2, false);
  const hop2Start = clock();
  const fromForwarders = await exchangeAmong(transport, key, me.within, hop2, options.timeoutMs);
  hops.push({ link: 'intra', startMs: hop2Start, endMs: clock(), bytes: bytes.intra });

  // Rows by origin, in the blocks the forward's rows came in.
  const received: ReceivedRows[] = Array.from({ length: worldSize }, (_, o) => ({
    source: o,
    rows: new Float32Array(handle.received[o]! * cols),
    expertIds: handle.receivedIds[o]!,
    count: handle.received[o]!,
  }));
  const filled = new Array<number>(worldSize).fill(0);
  for (const [forwarder, list] of handle.blocks) {
    const expected = list.reduce((sum, [, n]) => sum + n, 0);
    const rows = forwarder === rank ? ownHop2 : rowsOf(fromForwarders.get(forwarder)!, expected, cols, what, `forwarder ${forwarder}`);
    let at = 0;
    for (const [origin, n] of list) {
      received[origin]!.rows.set(rows.subarray(at * cols, (at + n) * cols), filled[origin]! * cols);
      filled[origin]! += n;
      at += n;
    }
  }
  return { received, handle: { forward: handle, forwardedDWeights }, bytes, hops };
}
