/**
 * Redundant experts in the dispatch: which copy of an expert each token's row goes to. The choice
 * is a pure function of (source rank, token, expert) and the placement, so every rank computes
 * the same one and a receiver never has to be told which copy it is:
 *
 *   1. the copies on the source rank's node, if it has any (the row stays on the fast links);
 *      all copies otherwise;
 *   2. among those, in ascending physical id, copy number (token + source) mod count: a rank's
 *      consecutive tokens take the copies in turn, and ranks start at different copies.
 *
 * Shapes: E logical experts, P physical experts (P >= E), W ranks, S = T*k slots (slot s = t*k + j).
 */
import { LayoutError } from './errors';

/** Where every physical expert lives: the same for every layer (structurally @moe/placement's ExpertPlacement). */
export interface ReplicaPlacement {
  /** [P] logical expert of each physical expert. */
  physicalToLogical: ArrayLike<number>;
  /** [P] rank holding each physical expert. */
  physicalOwner: ArrayLike<number>;
}

export class ReplicaChooser {
  /** [nodes][E] the physical experts a source on that node chooses among, ascending. */
  private readonly candidates: Int32Array[][];
  readonly experts: number;
  readonly physical: number;
  private readonly nodeSize: number;

  /**
   * @param nodeSize ranks per node (consecutive ranks); 0 or the world: one node
   * @throws LayoutError when the placement has an expert without a copy, or an id or rank out of range
   */
  constructor(
    readonly placement: ReplicaPlacement,
    experts: number,
    readonly worldSize: number,
    nodeSize: number,
  ) {
    const P = placement.physicalToLogical.length;
    if (placement.physicalOwner.length !== P) throw new LayoutError(`replica placement: ${P} physical experts but ${placement.physicalOwner.length} owner ranks`);
    const size = nodeSize > 0 ? nodeSize : worldSize;
    const nodes = Math.ceil(worldSize / size);
    const all = Array.from({ length: experts }, () => [] as number[]);
    for (let q = 0; q < P; q++) {
      const e = placement.physicalToLogical[q]!;
      const r = placement.physicalOwner[q]!;
      if (!(Number.isInteger(e) && e >= 0 && e < experts)) throw new LayoutError(`replica placement: physical expert ${q} is a copy of expert ${e}, outside 0..${experts - 1}`);
      if (!(Number.isInteger(r) && r >= 0 && r < worldSize)) throw new LayoutError(`replica placement: physical expert ${q} is on rank ${r}, outside 0..${worldSize - 1}`);
      all[e]!.push(q);
    }
    all.forEach((list, e) => {
      if (list.length === 0) throw new LayoutError(`replica placement: expert ${e} has no physical copy`);
    });
    this.candidates = Array.from({ length: nodes }, (_, n) =>
      all.map((list) => {
        const local = list.filter((q) => Math.floor(placement.physicalOwner[q]! / size) === n);
        return Int32Array.from(local.length > 0 ? local : list);
      }),
    );
    this.nodeSize = size;
    this.experts = experts;
    this.physical = P;
  }

  /** The physical expert serving `token` of rank `source` for logical `expert`. */
  physicalOf(source: number, token: number, expert: number): number {
    const list = this.candidates[Math.floor(source / this.nodeSize)]![expert]!;
    return list[(token + source) % list.length]!;
  }

  /**
   * [S] the physical expert of every slot of rank `source` (-1 where the slot's expert is -1).
   * @param expertIds [S] logical expert of each slot; topK: k
   * @param tokenOffset index of the slots' first token among the rank's tokens of the step (micro-batches after the first start later)
   */
  choose(expertIds: Int32Array, source: number, topK: number, tokenOffset = 0): Int32Array {
    const out = new Int32Array(expertIds.length);
    for (let s = 0; s < expertIds.length; s++) {
      const e = expertIds[s]!;
      if (e === -1) {
        out[s] = -1;
        continue;
      }
      if (!(e >= 0 && e < this.experts)) throw new LayoutError(`slot ${s}: expert id ${e} is outside 0..${this.experts - 1} (-1 for none)`);
      out[s] = this.physicalOf(source, tokenOffset + Math.floor(s / topK), e);
    }
    return out;
  }

  /** [S] the rank of each slot's physical expert (-1 stays -1). */
  ranksOf(physical: Int32Array): Int32Array {
    return physical.map((q) => (q < 0 ? -1 : this.placement.physicalOwner[q]!));
  }
}
