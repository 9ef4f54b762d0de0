import { isCommKind, type Direction, type Op, type OpKind } from '../ops';

/** An op list under construction: `add` appends an op and returns its id. */
export class OpList {
  readonly ops: Op[] = [];

  add(kind: OpKind, direction: Direction, layer: number, chunk: number, microBatch: number, deps: number[]): number {
    const id = this.ops.length;
    this.ops.push({ id, kind, stream: isCommKind(kind) ? 'comm' : 'compute', direction, layer, chunk, microBatch, deps });
    return id;
  }
}

/** How a pass waits on its all-to-alls. */
export interface PassShape {
  /** Chunks per layer (1 when not chunked). */
  chunks: number;
  /**
   * false (naive): the shared expert waits for the last combine, the shared backward for the last
   * dispatch-backward. true: they run while the all-to-alls are in flight.
   */
  overlap: boolean;
  /**
   * Split each chunk's expert backward (zero-bubble style): `experts_dgrad` computes the input
   * gradients that `dispatch_bwd` sends back, and `experts_wgrad` the weight gradients after it,
   * while those travel. Absent: one `experts_bwd` computes both.
   */
  deferWeights?: boolean;
}
