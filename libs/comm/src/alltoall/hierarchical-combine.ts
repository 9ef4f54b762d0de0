/**
 * The two verbs of the hierarchical all-to-all that bring rows back from the experts, each
 * reduced within the node so that one row per (token, node) crosses the inter-node link: the
 * forward combine (expert outputs weighted by the combine weights and summed) and the backward of
 * the dispatch (input gradients summed, the weight gradients beside them). The scheme, its
 * derivation and its summation order: hierarchical-handle.ts.
 */
import { decodeRowsShared, encodeRows } from '../codec/rows';
import type { CodecName } from '../codec/types';
import { keyString, type FrameKey } from '../transport/frame-key';
import type { OutgoingFrame, Transport } from '../transport/transport';
import { AllToAllShapeError } from './errors';
import { exchangeAmong } from './exchange-among';
import { addBytes, nodePeers, type HierarchicalBackwardHandle, type HierarchicalHandle } from './hierarchical-handle';
import type { HopTiming, LinkBytes, NodeLayout } from './node-layout';

export interface HierarchicalCombineOptions {
  codec: CodecName;
  timeoutMs: number;
  /** [T, cols] array to write the tokens' rows into (one per layer, filled chunk by chunk); allocated when absent. */
  into?: Float32Array;
}

/**
 * Forward combine: `outputs[o]` ([handle.received[o], cols], in the order received from origin o)
 * go back to their forwarders, which weight each by its slot's combine weight, sum them per token
 * and return one row per token to its origin; the origin adds its nodes' rows.
 * Keeps the outputs each forwarder received in the handle, for the backward's weight gradients.
 * @returns out: [T, cols], row t = Σ_s w_s · out_s over token t's slots (rows of tokens outside
 *   the layout untouched); bytes by link; the two hops' timings
 */
export async function hierarchicalCombine(
  transport: Transport,
  key: FrameKey,
  handle: HierarchicalHandle,
  outputs: Float32Array[],
  nl: NodeLayout,
  options: HierarchicalCombineOptions,
  clock: () => number = () => performance.now(),
): Promise<{ out: Float32Array; bytes: LinkBytes; hops: HopTiming[] }> {
  const what = `hierarchical combine ${keyString(key)} on rank ${transport.rank}`;
  const result = await reduceToOrigins(transport, key, handle, outputs, nl, { ...options, weights: handle.forwardedWeight }, what, clock);
  handle.forwardedOutputs = result.forwarded;
  return { out: result.out, bytes: result.bytes, hops: result.hops };
}

/**
 * Backward of a hierarchical dispatch: `inputGrads[o]` (the experts' input gradients, as
 * received from origin o by combineBackward) go back to their forwarders, which sum them per
 * token and return one row per token, with the weight gradients of its slots on the node.
 * @returns out: [T, cols], row t = Σ_s dL/dx_s over token t's slots; dWeights: [S] dL/dw_s of
 *   every slot in the layout (others untouched); bytes by link; the two hops' timings
 */
export async function hierarchicalDispatchBackward(
  transport: Transport,
  key: FrameKey,
  handle: HierarchicalBackwardHandle,
  inputGrads: Float32Array[],
  nl: NodeLayout,
  options: HierarchicalCombineOptions & { dWeightsInto?: Float32Array },
  clock: () => number = () => performance.now(),
): Promise<{ out: Float32Array; dWeights: Float32Array; bytes: LinkBytes; hops: HopTiming[] }> {
  const what = `hierarchical dispatch backward ${keyString(key)} on rank ${transport.rank}`;
  const { slotCount } = handle.forward;
  const dWeights = options.dWeightsInto ?? new Float32Array(slotCount);
  if (dWeights.length !== slotCount) throw new AllToAllShapeError(`${what}: dWeightsInto has ${dWeights.length} values for ${slotCount} slots`);
  const result = await reduceToOrigins(transport, key, handle.forward, inputGrads, nl, { ...options, attach: handle.forwardedDWeights, dWeights }, what, clock);
  return { out: result.out, dWeights, bytes: result.bytes, hops: result.hops };
}

/**
 * Hop 2 reversed, the reduction per token on the forwarder, hop 1 reversed, and the origin's
 * sum over nodes (float64, nodes ascending, rounded once).
 * @param o.weights [nodes] weight of each forwarded slot (absent: a plain sum)
 * @param o.attach [nodes] a float per forwarded slot to return beside the rows (Frame.weights),
 *   scattered at the origin into o.dWeights by slot
 */
async function reduceToOrigins(
  transport: Transport,
  key: FrameKey,
  handle: HierarchicalHandle,
  outputs: Float32Array[],
  nl: NodeLayout,
  o: HierarchicalCombineOptions & { weights?: Float32Array[]; attach?: Float32Array[]; dWeights?: Float32Array },
  what: string,
  clock: () => number,
): Promise<{ out: Float32Array; forwarded: Float32Array[]; bytes: LinkBytes; hops: HopTiming[] }> {
  const { rank, worldSize } = transport;
  const { cols } = handle;
  if (outputs.length !== worldSize) throw new AllToAllShapeError(`${what}: ${outputs.length} row lists for a world of ${worldSize}`);
  outputs.forEach((rows, origin) => {
    if (rows.length !== handle.received[origin]! * cols) throw new AllToAllShapeError(`${what}: rows for origin ${origin} have ${rows.length} values; it sent ${handle.received[origin]} rows of ${cols}`);
  });
  const out = o.into ?? new Float32Array(handle.sourceRows * cols);
  if (out.length !== handle.sourceRows * cols) throw new AllToAllShapeError(`${what}: into has ${out.length} values; ${handle.sourceRows} tokens of ${cols} need ${handle.sourceRows * cols}`);
  const me = nodePeers(rank, nl);
  const bytes: LinkBytes = { intra: 0, inter: 0 };

  // Hop 2 reversed: to each forwarder of this node, the rows of the origins it forwarded for.
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
    else back2.set(forwarder, { payload: encodeRows(rows, total, cols, o.codec) });
  }
  addBytes(bytes, back2, false);
  const hops: HopTiming[] = [{ link: 'intra', startMs: clock(), endMs: 0, bytes: bytes.intra }];
  const fromExperts = await exchangeAmong(transport, key, me.within, back2, o.timeoutMs);
  hops[0]!.endMs = clock();

  // Every returned row to its forwarded position, by origin node.
  const forwarded = handle.forwardedRow.map((rows) => new Float32Array(rows.length * cols));
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
    for (let i = 0; i < expected; i++) forwarded[pairs[2 * i]!]!.set(rows.subarray(i * cols, (i + 1) * cols), pairs[2 * i + 1]! * cols);
  }

  // The forwarder's reduction: one row per hop-1 row, its forwarded slots summed (weighted) in float64.
  const partials = forwarded.map((rows, n) => reducePerRow(rows, handle.forwardedRow[n]!, o.weights?.[n], handle.hop1Rows[n]!, cols));

  // Hop 1 reversed: every origin on another node gets one row per token, and the attached floats.
  const back1 = new Map<number, OutgoingFrame>();
  for (let n = 0; n < nl.nodes; n++) {
    if (n === me.node) continue;
    const frame: OutgoingFrame = { payload: encodeRows(partials[n]!, handle.hop1Rows[n]!, cols, o.codec) };
    if (o.attach) frame.weights = o.attach[n]!;
    back1.set(n * nl.nodeSize + me.local, frame);
  }
  addBytes(bytes, back1, true);
  const hop1Start = clock();
  const fromForwarders = await exchangeAmong(transport, key, me.across, back1, o.timeoutMs);
  hops.push({ link: 'inter', startMs: hop1Start, endMs: clock(), bytes: bytes.inter });

  // The origin: each token's rows from its nodes, added in node order.
  const nodeRows: Float32Array[] = [];
  for (let n = 0; n < nl.nodes; n++) {
    const tokens = handle.sentTokens[n]!;
    const slots = handle.returnSlots[n]!;
    let rows = partials[n]!;
    let attached = o.attach?.[n];
    if (n !== me.node) {
      const forwarder = n * nl.nodeSize + me.local;
      const frame = fromForwarders.get(forwarder)!;
      if (frame.payload.rows !== tokens.length || (tokens.length > 0 && frame.payload.cols !== cols)) {
        throw new AllToAllShapeError(`${what}: rank ${forwarder} returned ${frame.payload.rows} rows of ${frame.payload.cols}; this rank sent it ${tokens.length} tokens of ${cols}`);
      }
      rows = tokens.length > 0 ? decodeRowsShared(frame.payload) : new Float32Array(0);
      attached = o.attach ? (frame.weights ?? new Float32Array(0)) : undefined;
    }
    if (attached && o.dWeights) {
      if (attached.length !== slots.length) throw new AllToAllShapeError(`${what}: node ${n} returned ${attached.length} weight gradients for this rank's ${slots.length} slots there`);
      for (let i = 0; i < slots.length; i++) o.dWeights[slots[i]!] = attached[i]!;
    }
    nodeRows[n] = rows;
  }
  sumOverNodes(out, handle.sentTokens, nodeRows, cols);
  return { out, forwarded, bytes, hops };
}

/**
 * rows: [P, cols] forwarded slots; rowOf: [P] the hop-1 row of each (ascending); weights: [P] or
 * absent (1) -> [count, cols], row i = Σ_{p: rowOf[p] = i} weights[p] · rows[p], float64, rounded once.
 */
function reducePerRow(rows: Float32Array, rowOf: Int32Array, weights: Float32Array | undefined, count: number, cols: number): Float32Array {
  const out = new Float32Array(count * cols);
  const acc = new Float64Array(cols);
  let p = 0;
  while (p < rowOf.length) {
    const i = rowOf[p]!;
    acc.fill(0);
    for (; p < rowOf.length && rowOf[p] === i; p++) {
      const w = weights ? weights[p]! : 1;
      for (let c = 0; c < cols; c++) acc[c]! += w * rows[p * cols + c]!;
    }
    for (let c = 0; c < cols; c++) out[i * cols + c] = acc[c]!;
  }
  return out;
}

/** out[t] = Σ_n rows[n][i] over the nodes n whose tokens[n][i] = t, nodes ascending, in float64, rounded once. */
function sumOverNodes(out: Float32Array, tokens: Int32Array[], rows: Float32Array[], cols: number): void {
  const T = out.length / cols;
  const index = new Int32Array(T).fill(-1);
  const touched: number[] = [];
  for (const list of tokens) {
    for (const t of list) {
      if (!(t >= 0 && t < T)) throw new AllToAllShapeError(`token ${t} is outside the ${T} rows of the combined output`);
      if (index[t]! < 0) index[t] = touched.push(t) - 1;
    }
  }
  const acc = new Float64Array(touched.length * cols);
  tokens.forEach((list, n) => {
    const r = rows[n]!;
    for (let i = 0; i < list.length; i++) {
      const a = index[list[i]!]! * cols;
      for (let c = 0; c < cols; c++) acc[a + c]! += r[i * cols + c]!;
    }
  });
  touched.forEach((t, k) => out.set(acc.subarray(k * cols, (k + 1) * cols), t * cols));
}
