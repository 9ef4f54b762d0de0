import { isCommKind, type Direction, type Op, type OpKind, type ScheduleSpec } from '../ops';

/**
 * The op list of one training step over `spec.layers` MoE layers, the all-to-alls either waited
 * for (`overlap` false: naive) or pipelined in `spec.chunks` chunks behind compute (`overlap` true).
 *
 * - naive: per layer, dispatch everything and wait, run the experts, combine everything and
 *   wait, then the shared experts; the backward mirrors it. Compute waits for every all-to-all.
 * - overlapped: the shared experts run while chunk 0 is dispatched; chunk c's experts run while
 *   chunk c+1 is dispatched and chunk c-1 combined; the backward all-to-alls overlap the same way.
 *   All chunks' dispatches are issued together, in chunk order: the links carry them first in,
 *   first out (a real NIC queues sends back to back), so chunk 0 arrives first and the later ones
 *   pipeline behind it instead of each paying a full round trip after the previous one.
 */
export function buildLayeredStep(spec: ScheduleSpec, overlap: boolean): Op[] {
  const chunks = overlap ? spec.chunks : 1;
  const ops: Op[] = [];
  const add = (kind: OpKind, direction: Direction, layer: number, chunk: number, deps: number[]): number => {
    const id = ops.length;
    ops.push({ id, kind, stream: isCommKind(kind) ? 'comm' : 'compute', direction, layer, chunk, microBatch: 0, deps });
    return id;
  };

  let upstream = add('begin', 'forward', -1, -1, []);
  for (let layer = 0; layer < spec.layers; layer++) {
    const route = add('route', 'forward', layer, -1, [upstream]);
    const dispatches: number[] = [];
    for (let c = 0; c < chunks; c++) {
      dispatches.push(add('dispatch', 'forward', layer, c, [route]));
    }
    let shared = overlap ? add('shared', 'forward', layer, -1, [route]) : -1;
    const combines: number[] = [];
    for (let c = 0; c < chunks; c++) {
      const experts = add('experts', 'forward', layer, c, [dispatches[c]!]);
      combines.push(add('combine', 'forward', layer, c, [experts]));
    }
    if (!overlap) shared = add('shared', 'forward', layer, -1, [combines[chunks - 1]!]);
    upstream = add('post', 'forward', layer, -1, [...combines, shared]);
  }

  upstream = add('loss', 'backward', -1, -1, [upstream]);
  for (let layer = spec.layers - 1; layer >= 0; layer--) {
    const postBackward = add('post_bwd', 'backward', layer, -1, [upstream]);
    const combineBackwards: number[] = [];
    for (let c = 0; c < chunks; c++) {
      combineBackwards.push(add('combine_bwd', 'backward', layer, c, [postBackward]));
    }
    let sharedBackward = overlap ? add('shared_bwd', 'backward', layer, -1, [postBackward]) : -1;
    const dispatchBackwards: number[] = [];
    for (let c = 0; c < chunks; c++) {
      const expertsBackward = add('experts_bwd', 'backward', layer, c, [combineBackwards[c]!]);
      dispatchBackwards.push(add('dispatch_bwd', 'backward', layer, c, [expertsBackward]));
    }
    if (!overlap) sharedBackward = add('shared_bwd', 'backward', layer, -1, [dispatchBackwards[chunks - 1]!]);
    upstream = add('route_bwd', 'backward', layer, -1, [...dispatchBackwards, sharedBackward]);
  }

  const grads = add('grads', 'update', -1, -1, [upstream]);
  const allReduce = add('allreduce', 'update', -1, -1, [grads]);
  add('update', 'update', -1, -1, [allReduce]);
  return ops;
}
