import { LayoutError } from './errors';
import type { ReplicaPlacement } from './replicas';

/**
 * Ranks grouped into nodes of `nodeSize` consecutive ranks (rank r: node floor(r / nodeSize),
 * local index r % nodeSize), and the expert copies each node holds. A target is one (rank,
 * expert) pair: with one copy per expert a node's targets are its experts; with redundant
 * experts an expert held by two ranks of a node is two targets there.
 */
export interface NodeLayout {
  nodeSize: number;
  nodes: number;
  /** [nodes][] expert of each of the node's targets, ascending (expert id, rank): bit b of a hop-1 set names the b-th. */
  nodeExperts: number[][];
  /** [nodes][] rank of each of the node's targets, parallel to nodeExperts. */
  nodeRanks: number[][];
  /** [W·E] position of target (rank r, expert e) at r·E + e in its node's lists; -1 where r holds no copy of e. */
  targetBit: Int32Array;
  /** E: logical experts. */
  experts: number;
}

/** Targets a node may hold in the hierarchical all-to-all: a token's choice among them travels as a 32-bit set. */
export const MAX_EXPERTS_PER_NODE = 32;

/**
 * @param placement [E] rank of each expert, or a placement with redundant experts (physical
 *   experts of one expert on one rank count once)
 * @throws LayoutError when the world is not whole nodes or a node holds more than 32 targets
 */
export function nodeLayout(placement: ArrayLike<number> | ReplicaPlacement, worldSize: number, nodeSize: number, experts?: number): NodeLayout {
  if (!Number.isInteger(nodeSize) || nodeSize < 1 || worldSize % nodeSize !== 0) {
    throw new LayoutError(`nodeSize=${nodeSize} does not split the ${worldSize} ranks into whole nodes; the hierarchical all-to-all needs worldSize % nodeSize == 0`);
  }
  const copies: [expert: number, rank: number][] =
    'physicalOwner' in placement
      ? Array.from({ length: placement.physicalToLogical.length }, (_, q) => [placement.physicalToLogical[q]!, placement.physicalOwner[q]!])
      : Array.from({ length: placement.length }, (_, e) => [e, placement[e]!]);
  const E = experts ?? ('physicalOwner' in placement ? Math.max(-1, ...copies.map(([e]) => e)) + 1 : placement.length);
  const nodes = worldSize / nodeSize;
  const nodeExperts: number[][] = Array.from({ length: nodes }, () => []);
  const nodeRanks: number[][] = Array.from({ length: nodes }, () => []);
  const targetBit = new Int32Array(worldSize * E).fill(-1);
  copies.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [e, owner] of copies) {
    if (!Number.isInteger(owner) || owner < 0 || owner >= worldSize) throw new LayoutError(`expert ${e} is owned by rank ${owner}, outside 0..${worldSize - 1}`);
    if (!(Number.isInteger(e) && e >= 0 && e < E)) throw new LayoutError(`a copy of expert ${e} is outside 0..${E - 1}`);
    if (targetBit[owner * E + e]! >= 0) continue;
    const n = Math.floor(owner / nodeSize);
    targetBit[owner * E + e] = nodeExperts[n]!.length;
    nodeExperts[n]!.push(e);
    nodeRanks[n]!.push(owner);
  }
  nodeExperts.forEach((list, n) => {
    if (list.length > MAX_EXPERTS_PER_NODE) {
      throw new LayoutError(`node ${n} holds ${list.length} experts; the hierarchical all-to-all carries a token's experts on a node as a 32-bit set (at most ${MAX_EXPERTS_PER_NODE})`);
    }
  });
  return { nodeSize, nodes, nodeExperts, nodeRanks, targetBit, experts: E };
}

/** Bytes this rank sent, by the class of link they crossed. */
export interface LinkBytes {
  /** To ranks of its own node (NVLink). */
  intra: number;
  /** To ranks of other nodes (InfiniBand). */
  inter: number;
}

/** One hop of a hierarchical all-to-all: which links it crossed, when (ms on the caller's clock), and the bytes this rank sent in it. */
export interface HopTiming {
  link: keyof LinkBytes;
  startMs: number;
  endMs: number;
  bytes: number;
}
