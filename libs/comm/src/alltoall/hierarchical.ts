/**
 * The hierarchical all-to-all (DeepSeek-V3 section 3.2.2). Ranks form nodes of `nodeSize`
 * consecutive ranks. A dispatch takes two hops:
 *
 *   hop 1 (inter-node): rank o sends, to the rank with its own local index on every other node n,
 *     each of its source rows that has at least one slot for an expert on node n, ONCE, with the
 *     set of node n's experts it goes to (bit b = the b-th expert of node n, ascending id; with
 *     redundant experts, the b-th (expert, rank) copy: the source chose the copy, NodeLayout);
 *   hop 2 (intra-node): every rank forwards the rows it holds for its node (its own and those it
 *     received in hop 1) to the ranks of its node owning the experts, one row per (row, expert),
 *     tagged with the origin's node.
 *
 * The receivers get exactly what a flat dispatch delivers: rows by origin rank, with their expert
 * ids, in token order (a token's rows for one rank in ascending expert id rather than in slot
 * order, which no expert computation depends on). The combine retraces both hops in reverse, each
 * row back to the slot it serves. With forward dispatch rows (one per token) a token crosses the
 * inter-node link at most once per destination node; rows that differ per slot (the backward's
 * output gradients) cross once per slot.
 *
 * Both hops share the all-to-all's key: hop 1 talks only to other nodes' ranks, hop 2 only to this
 * node's, so no pair of ranks exchanges two frames for one key.
 */
import { decodeRowsShared, encodedBytes, encodeRows } from '../codec/rows';
import { keyString, type FrameKey } from '../transport/frame-key';
import type { OutgoingFrame, Transport } from '../transport/transport';
import type { DispatchOptions, ReceivedRows } from './dispatch';
import { AllToAllShapeError } from './errors';
import { exchangeAmong } from './exchange-among';
import type { DispatchLayout } from './layout';
import type { HopTiming, LinkBytes, NodeLayout } from './node-layout';

/** What the hierarchical combine needs to retrace a dispatch's two hops. */
export interface HierarchicalHandle {
  key: FrameKey;
  cols: number;
  slotCount: number;
  /** [nodes] this rank's slots, in the order node n's forwarder returns their rows. */
  returnSlots: Int32Array[];
  /** [nodes] rows this rank forwards for the origin with its local index on node n (return rows of that origin). */
  returnCounts: number[];
  /** By destination rank of this node: [2·rows] (origin node, return position) of each hop-2 row sent there. */
  fanout: Map<number, Int32Array>;
  /** By forwarding rank of this node: the origin ranks of its hop-2 rows, in order, one block each: [origin, rows]. */
  blocks: Map<number, [number, number][]>;
  /** [worldSize] rows received from each origin (as a flat dispatch's handle). */
  received: number[];
}

const nodePeers = (rank: number, nl: NodeLayout) => {
  const node = Math.floor(rank / nl.nodeSize);
  const local = rank % nl.nodeSize;
  return {
    node,
    local,
    /** Same local index, other nodes. */
    across: Array.from({ length: nl.nodes }, (_, n) => n * nl.nodeSize + local).filter((p) => p !== rank),
    /** Same node, other ranks. */
    within: Array.from({ length: nl.nodeSize }, (_, j) => node * nl.nodeSize + j).filter((p) => p !== rank),
  };
};

function addBytes(bytes: LinkBytes, frames: ReadonlyMap<number, OutgoingFrame>, interNode: boolean): void {
  for (const f of frames.values()) {
    const b = f.payload.data.byteLength + (f.payload.scales?.byteLength ?? 0);
    if (interNode) bytes.inter += b;
    else bytes.intra += b;
  }
}

/**
 * Hierarchical dispatch; arguments as `dispatch` (layout by final destination rank, rows picked by
 * options.rowOfSlot, options.expertIds required), plus the node layout.
 * @returns received: [worldSize] rows by origin rank; handle: for hierarchicalCombine; bytes by link class
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
  const ids = options.expertIds;
  if (!ids) throw new AllToAllShapeError(`${what}: needs the slots' expert ids`);
  if (nl.nodes * nl.nodeSize !== worldSize) throw new AllToAllShapeError(`${what}: ${nl.nodes} nodes of ${nl.nodeSize} for a world of ${worldSize}`);
  const E = nl.experts;
  const me = nodePeers(rank, nl);
  const bytes: LinkBytes = { intra: 0, inter: 0 };

  // Hop 1: per node, this rank's distinct rows with the set of that node's experts they go to.
  const returnSlots: Int32Array[] = [];
  const hop1 = new Map<number, OutgoingFrame>();
  let ownRows: Float32Array = new Float32Array(0);
  let ownSets: Int32Array = new Int32Array(0);
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
    const token = options.tokenOfSlot ?? row;
    slots.sort((a, b) => token(a) - token(b) || bitOf.get(a)! - bitOf.get(b)!);
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
    const rows = new Float32Array(rowList.length * cols);
    rowList.forEach((r, i) => rows.set(source.subarray(r * cols, (r + 1) * cols), i * cols));
    if (n === me.node) {
      ownRows = rows;
      ownSets = Int32Array.from(sets);
    } else {
      hop1.set(n * nl.nodeSize + me.local, { payload: encodeRows(rows, rowList.length, cols, options.codec), expertIds: Int32Array.from(sets) });
    }
  }
  addBytes(bytes, hop1, true);
  const hops: HopTiming[] = [{ link: 'inter', startMs: clock(), endMs: 0, bytes: bytes.inter }];
  const fromOrigins = await exchangeAmong(transport, key, me.across, hop1, options.timeoutMs);
  hops[0]!.endMs = clock();

  // Hop 2: fan every row this rank holds for its node out to the ranks owning its experts.
  const perDest = new Map<number, { rows: Float32Array[]; codes: number[]; pairs: number[] }>();
  for (let j = 0; j < nl.nodeSize; j++) perDest.set(me.node * nl.nodeSize + j, { rows: [], codes: [], pairs: [] });
  const returnCounts: number[] = [];
  for (let n = 0; n < nl.nodes; n++) {
    const origin = n * nl.nodeSize + me.local;
    let rows = ownRows;
    let sets = ownSets;
    if (n !== me.node) {
      const frame = fromOrigins.get(origin)!;
      const count = frame.payload.rows;
      if (count > 0 && frame.payload.cols !== cols) throw new AllToAllShapeError(`${what}: rank ${origin} sent rows of ${frame.payload.cols} values; rows here have ${cols}`);
      // An empty frame may come without its (empty) id list: the wire drops empty fields.
      sets = frame.expertIds ?? new Int32Array(0);
      if (sets.length !== count) throw new AllToAllShapeError(`${what}: rank ${origin} sent ${count} rows without one expert set each`);
      rows = count > 0 ? decodeRowsShared(frame.payload) : new Float32Array(0);
    }
    let position = 0;
    for (let i = 0; i < sets.length; i++) {
      const set = sets[i]!;
      for (let b = 0; b < 32; b++) {
        if (!((set >>> b) & 1)) continue;
        const e = nl.nodeExperts[me.node]![b];
        if (e === undefined) throw new AllToAllShapeError(`${what}: rank ${origin} names expert bit ${b}; node ${me.node} holds ${nl.nodeExperts[me.node]!.length} experts`);
        const dest = perDest.get(nl.nodeRanks[me.node]![b]!)!;
        dest.rows.push(rows.subarray(i * cols, (i + 1) * cols));
        dest.codes.push(n * E + e);
        dest.pairs.push(n, position++);
      }
    }
    returnCounts[n] = position;
  }
  const hop2 = new Map<number, OutgoingFrame>();
  const fanout = new Map<number, Int32Array>();
  const local = new Map<number, { rows: Float32Array; codes: Int32Array }>();
  for (const [dest, d] of perDest) {
    const rows = new Float32Array(d.rows.length * cols);
    d.rows.forEach((r, i) => rows.set(r, i * cols));
    fanout.set(dest, Int32Array.from(d.pairs));
    if (dest === rank) local.set(rank, { rows, codes: Int32Array.from(d.codes) });
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
    let rows: Float32Array;
    let codes: Int32Array;
    if (forwarder === rank) ({ rows, codes } = local.get(rank)!);
    else {
      const frame = fromForwarders.get(forwarder)!;
      if (frame.payload.rows > 0 && frame.payload.cols !== cols) throw new AllToAllShapeError(`${what}: rank ${forwarder} forwarded rows of ${frame.payload.cols} values; rows here have ${cols}`);
      codes = frame.expertIds ?? new Int32Array(0);
      if (codes.length !== frame.payload.rows) throw new AllToAllShapeError(`${what}: rank ${forwarder} forwarded ${frame.payload.rows} rows with ${codes.length} expert ids`);
      rows = frame.payload.rows > 0 ? decodeRowsShared(frame.payload) : new Float32Array(0);
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
  const handle: HierarchicalHandle = { key, cols, slotCount: layout.slotCount, returnSlots, returnCounts, fanout, blocks, received: received.map((r) => r.count) };
  return { received, handle, bytes, hops };
}

/**
 * The reverse of a hierarchical dispatch: `outputs[o]` ([handle.received[o], cols], in the order
 * received from origin o) go back to the forwarders (hop 2 reversed), which return each origin
 * its rows (hop 1 reversed); the rows coming back to this rank are scattered into their slots.
 * @returns [S, cols] in slot order (rows of slots outside the layout untouched), and bytes by link
 */
export async function hierarchicalCombine(
  transport: Transport,
  key: FrameKey,
  handle: HierarchicalHandle,
  outputs: Float32Array[],
  nl: NodeLayout,
  options: { codec: DispatchOptions['codec']; timeoutMs: number; into?: Float32Array },
  clock: () => number = () => performance.now(),
): Promise<{ out: Float32Array; bytes: LinkBytes; hops: HopTiming[] }> {
  const { rank, worldSize } = transport;
  const { cols } = handle;
  const what = `hierarchical combine ${keyString(key)} on rank ${rank}`;
  if (outputs.length !== worldSize) throw new AllToAllShapeError(`${what}: ${outputs.length} outputs for a world of ${worldSize}`);
  outputs.forEach((rows, o) => {
    if (rows.length !== handle.received[o]! * cols) throw new AllToAllShapeError(`${what}: outputs[${o}] has ${rows.length} values; origin ${o} sent ${handle.received[o]} rows of ${cols}`);
  });
  const me = nodePeers(rank, nl);
  const bytes: LinkBytes = { intra: 0, inter: 0 };

  // Hop 2 reversed: to each forwarder of this node, the outputs of the origins it forwarded for.
  const back2 = new Map<number, OutgoingFrame>();
  let ownBack: Float32Array = new Float32Array(0);
  for (const [forwarder, list] of handle.blocks) {
    const total = list.reduce((sum, [, n]) => sum + n, 0);
    const rows = new Float32Array(total * cols);
    let at = 0;
    for (const [origin] of list) {
      rows.set(outputs[origin]!, at);
      at += outputs[origin]!.length;
    }
    if (forwarder === rank) ownBack = rows;
    else back2.set(forwarder, { payload: encodeRows(rows, total, cols, options.codec) });
  }
  addBytes(bytes, back2, false);
  const hops: HopTiming[] = [{ link: 'intra', startMs: clock(), endMs: 0, bytes: bytes.intra }];
  const fromExperts = await exchangeAmong(transport, key, me.within, back2, options.timeoutMs);
  hops[0]!.endMs = clock();

  // Each returned row goes to its origin's return position.
  const returns = handle.returnCounts.map((n) => new Float32Array(n * cols));
  for (const [dest, pairs] of handle.fanout) {
    const expected = pairs.length / 2;
    let rows = ownBack;
    if (dest !== rank) {
      const frame = fromExperts.get(dest)!;
      if (frame.payload.rows !== expected || (expected > 0 && frame.payload.cols !== cols)) {
        throw new AllToAllShapeError(`${what}: rank ${dest} sent back ${frame.payload.rows} rows of ${frame.payload.cols}; this rank forwarded it ${expected} of ${cols}`);
      }
      rows = expected > 0 ? decodeRowsShared(frame.payload) : new Float32Array(0);
    } else if (rows.length !== expected * cols) {
      throw new AllToAllShapeError(`${what}: ${rows.length / cols} own rows back for ${expected} forwarded`);
    }
    for (let i = 0; i < expected; i++) returns[pairs[2 * i]!]!.set(rows.subarray(i * cols, (i + 1) * cols), pairs[2 * i + 1]! * cols);
  }

  // Hop 1 reversed: every origin on another node gets its rows back, in its return order.
  const back1 = new Map<number, OutgoingFrame>();
  for (let n = 0; n < nl.nodes; n++) {
    if (n === me.node) continue;
    back1.set(n * nl.nodeSize + me.local, { payload: encodeRows(returns[n]!, handle.returnCounts[n]!, cols, options.codec) });
  }
  addBytes(bytes, back1, true);
  const hop1Start = clock();
  const fromForwarders = await exchangeAmong(transport, key, me.across, back1, options.timeoutMs);
  hops.push({ link: 'inter', startMs: hop1Start, endMs: clock(), bytes: bytes.inter });

  const out = options.into ?? new Float32Array(handle.slotCount * cols);
  if (out.length !== handle.slotCount * cols) throw new AllToAllShapeError(`${what}: into has ${out.length} values; ${handle.slotCount} slots of ${cols} need ${handle.slotCount * cols}`);
  for (let n = 0; n < nl.nodes; n++) {
    const slots = handle.returnSlots[n]!;
    let rows: Float32Array = returns[n]!;
    if (n !== me.node) {
      const forwarder = n * nl.nodeSize + me.local;
      const frame = fromForwarders.get(forwarder)!;
      if (frame.payload.rows !== slots.length || (slots.length > 0 && frame.payload.cols !== cols)) {
        throw new AllToAllShapeError(`${what}: rank ${forwarder} returned ${frame.payload.rows} rows; this rank sent it ${slots.length} slots`);
      }
      rows = slots.length > 0 ? decodeRowsShared(frame.payload) : new Float32Array(0);
    }
    for (let i = 0; i < slots.length; i++) out.set(rows.subarray(i * cols, (i + 1) * cols), slots[i]! * cols);
  }
  return { out, bytes, hops };
}

/** Bytes a flat all-to-all frame list costs by link class (frames to this rank excluded). */
export function flatLinkBytes(rowsTo: ArrayLike<number>, rank: number, nodeSize: number, cols: number, codec: DispatchOptions['codec']): LinkBytes {
  const bytes: LinkBytes = { intra: 0, inter: 0 };
  for (let d = 0; d < rowsTo.length; d++) {
    if (d === rank) continue;
    const b = encodedBytes(rowsTo[d]!, cols, codec);
    if (Math.floor(d / nodeSize) === Math.floor(rank / nodeSize)) bytes.intra += b;
    else bytes.inter += b;
  }
  return bytes;
}
