import { LayoutError } from './errors';

/**
 * Ranks grouped into nodes of `nodeSize` consecutive ranks (rank r: node floor(r / nodeSize),
 * local index r % nodeSize), and the experts each node holds.
 */
export interface NodeLayout {
  nodeSize: number;
  nodes: number;
  /** [nodes][] experts owned by the ranks of each node, ascending id. */
  nodeExperts: number[][];
  /** [E] position of expert e in its node's list: the bit that names it in a hop-1 expert set. */
  bitOf: Int32Array;
  /** [E] node of expert e. */
  nodeOf: Int32Array;
  /** [E] rank owning expert e. */
  owner: Int32Array;
}

/** Experts a node may hold in the hierarchical all-to-all: a token's choice among them travels as a 32-bit set. */
export const MAX_EXPERTS_PER_NODE = 32;

/**
 * @param expertOwner [E] rank of each expert
 * @throws LayoutError when the world is not whole nodes or a node holds more than 32 experts
 */
export function nodeLayout(expertOwner: ArrayLike<number>, worldSize: number, nodeSize: number): NodeLayout {
  if (!Number.isInteger(nodeSize) || nodeSize < 1 || worldSize % nodeSize !== 0) {
    throw new LayoutError(`nodeSize=${nodeSize} does not split the ${worldSize} ranks into whole nodes; the hierarchical all-to-all needs worldSize % nodeSize == 0`);
  }
  const nodes = worldSize / nodeSize;
  const nodeExperts: number[][] = Array.from({ length: nodes }, () => []);
  const E = expertOwner.length;
  const bitOf = new Int32Array(E);
  const nodeOf = new Int32Array(E);
  for (let e = 0; e < E; e++) {
    const owner = expertOwner[e]!;
    if (!Number.isInteger(owner) || owner < 0 || owner >= worldSize) throw new LayoutError(`expert ${e} is owned by rank ${owner}, outside 0..${worldSize - 1}`);
    const n = Math.floor(owner / nodeSize);
    nodeOf[e] = n;
    bitOf[e] = nodeExperts[n]!.length;
    nodeExperts[n]!.push(e);
  }
  nodeExperts.forEach((list, n) => {
    if (list.length > MAX_EXPERTS_PER_NODE) {
      throw new LayoutError(`node ${n} holds ${list.length} experts; the hierarchical all-to-all carries a token's experts on a node as a 32-bit set (at most ${MAX_EXPERTS_PER_NODE})`);
    }
  });
  return { nodeSize, nodes, nodeExperts, bitOf, nodeOf, owner: Int32Array.from(expertOwner) };
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
