/**
 * The hierarchical all-to-all (DeepSeek-V3 section 3.2.2): what its four verbs hand each other,
 * and the helpers they share. Ranks form nodes of `nodeSize` consecutive ranks; the rank with
 * local index j on node n is the "forwarder" on node n of every origin with local index j.
 *
 * Forward (x_s = h[t] for each slot s of token t; y[t] = Σ_s w_s · out_s):
 *   dispatch  hop 1 (inter): origin -> forwarder of node n: h[t] ONCE per (token, node) that has
 *             experts of t, with t's expert set on n (a bit per expert) and the combine weight w_s
 *             of each of those experts (Frame.weights);
 *             hop 2 (intra): forwarder -> experts' ranks: one row per (token, expert).
 *   combine   hop 2 reversed (intra): experts' ranks -> forwarder: out_s per (token, expert);
 *             the forwarder keeps them and sums p_n[t] = Σ_{s on n} w_s · out_s;
 *             hop 1 reversed (inter): ONE row p_n[t] per (token, node) back; the origin adds
 *             y[t] = Σ_n p_n[t].
 *
 * Backward, with g = dL/dy (dL/d out_s = w_s · g[t], dL/d w_s = <out_s, g[t]>, dL/dh[t] = Σ_s dL/dx_s):
 *   combineBackward  hop 1 (inter): g[t] ONCE per (token, node), in the forward's hop-1 order (no
 *             ids, no weights: the forwarder knows both from the forward);
 *             the forwarder computes dL/d w_s = <out_s, g[t]> from the outputs it kept and
 *             scales w_s · g[t] for each expert;
 *             hop 2 (intra): w_s · g[t] per (token, expert) to the experts' ranks, which receive
 *             exactly the rows a flat backward would bring them.
 *   dispatchBackward hop 2 reversed (intra): dL/dx_s per (token, expert) to the forwarder, which
 *             sums q_n[t] = Σ_{s on n} dL/dx_s;
 *             hop 1 reversed (inter): ONE row q_n[t] per (token, node), with the weight
 *             gradients of t's slots on n beside it (Frame.weights); the origin adds Σ_n q_n[t].
 * Why this is the cheapest: every all-to-all sends one row per (token, other node) across the
 * inter-node link, the least any scheme sends there (a node's share of a token has to cross once);
 * the only extra traffic is one float32 per slot each way, the weight and its gradient. The dot
 * products need out_s and g[t] in one place: the forwarder has both (g arrives there once, the
 * outputs passed through it), where the origin would need every out_s (one row per slot across)
 * and an expert's rank would need w_s and the dot's result sent back separately.
 *
 * Order of the float sums, chosen so a token whose experts all live on one node gets what the
 * single-process reference computes: each partial sum in float64 over the node's slots in
 * ascending expert id (the reference sums in slot order; products of two float32 are exact in
 * float64, so the order moves a result only when the float64 sum rounds differently, in the last
 * bit of 53) and rounded to float32 once; the origin adds the nodes' partial sums in ascending node
 * order in float64 and rounds once. A token spread over several nodes is rounded once per node
 * first: parity with the reference holds within float32 tolerance, no longer bit for bit. The
 * weight gradients are float64 dot products in column order, as the reference computes them.
 *
 * Every hop shares the all-to-all's key: hop 1 talks only to other nodes' ranks, hop 2 only to
 * this node's, so no pair of ranks exchanges two frames for one key.
 */
import type { FrameKey } from '../transport/frame-key';
import type { OutgoingFrame } from '../transport/transport';
import type { LinkBytes, NodeLayout } from './node-layout';

/** What a hierarchical dispatch hands its combine and the backward; each rank holds all three roles. */
export interface HierarchicalHandle {
  key: FrameKey;
  cols: number;
  slotCount: number;
  /** T: rows of the dispatch's source, and of the combined output. */
  sourceRows: number;
  // Origin side.
  /** [nodes] this rank's slots for node n's experts, by (token, expert id): the order of node n's weights. */
  returnSlots: Int32Array[];
  /** [nodes] the tokens (source rows) sent to node n, one each, in hop-1 order; node n returns a row for each. */
  sentTokens: Int32Array[];
  // Forwarder side, for the origin with this rank's local index on node n.
  /** [nodes] the hop-1 row (index in that origin's sentTokens) of each slot forwarded, in forwarding order. */
  forwardedRow: Int32Array[];
  /** [nodes] the combine weight of each forwarded slot. */
  forwardedWeight: Float32Array[];
  /** [nodes] rows received in hop 1 (this rank's own for its node): node n gets one reduced row back for each. */
  hop1Rows: number[];
  /** By destination rank of this node: [2·rows] (origin node, forwarded position) of each hop-2 row sent there. */
  fanout: Map<number, Int32Array>;
  /** Set by the combine: [nodes] [forwarded, cols] the expert output of each forwarded slot, for the weight gradients. */
  forwardedOutputs?: Float32Array[];
  // Expert side.
  /** By forwarding rank of this node: the origin ranks of its hop-2 rows, in order, one block each: [origin, rows]. */
  blocks: Map<number, [number, number][]>;
  /** [worldSize] rows received from each origin (as a flat dispatch's handle). */
  received: number[];
  /** [worldSize] the expert id of each row received from each origin. */
  receivedIds: Int32Array[];
}

/** What a hierarchical combineBackward hands dispatchBackward. */
export interface HierarchicalBackwardHandle {
  forward: HierarchicalHandle;
  /** Forwarder side: [nodes] dL/dw of each forwarded slot, returned beside the input gradients. */
  forwardedDWeights: Float32Array[];
}

export const nodePeers = (rank: number, nl: NodeLayout) => {
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

/** Adds the payload bytes (data and scales; ids and weights travel beside, as in a flat all-to-all) of `frames` to one link class. */
export function addBytes(bytes: LinkBytes, frames: ReadonlyMap<number, OutgoingFrame>, interNode: boolean): void {
  for (const f of frames.values()) {
    const b = f.payload.data.byteLength + (f.payload.scales?.byteLength ?? 0);
    if (interNode) bytes.inter += b;
    else bytes.intra += b;
  }
}

/** Set bits of a hop-1 expert set. */
export function bitCount(set: number): number {
  let n = 0;
  for (let v = set >>> 0; v !== 0; v &= v - 1) n++;
  return n;
}
