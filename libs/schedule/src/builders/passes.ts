import type { OpList, PassShape } from './op-list';

/**
 * The pieces of a step, one micro-batch's layer at a time. Every piece appends its ops to `list`
 * and returns the id the next piece waits on. Frame keys carry the micro-batch, so two
 * micro-batches' all-to-alls may be in flight at once without mixing.
 */

/** Ids of one forward layer's ops that another micro-batch's work is interleaved between. */
export interface ForwardLayerOps {
  route: number;
  dispatches: number[];
  shared: number;
}

/** Forward, part 1: norm + router, every chunk's dispatch issued at once (FIFO on the links), and (overlapped) the shared expert while they travel. */
export function forwardRoute(list: OpList, mb: number, layer: number, shape: PassShape, upstream: number): ForwardLayerOps {
  const route = list.add('route', 'forward', layer, -1, mb, [upstream]);
  const dispatches: number[] = [];
  for (let c = 0; c < shape.chunks; c++) dispatches.push(list.add('dispatch', 'forward', layer, c, mb, [route]));
  const shared = shape.overlap ? list.add('shared', 'forward', layer, -1, mb, [route]) : -1;
  return { route, dispatches, shared };
}

/**
 * Forward, part 2: chunk c's experts once it arrived, its combine issued at once; (naive) the
 * shared expert after the last combine; then `post`. `whileCombining` appends other work (of
 * another micro-batch) between the combines and the `post` that waits for them.
 */
export function forwardExperts(list: OpList, mb: number, layer: number, shape: PassShape, f: ForwardLayerOps, whileCombining?: () => void): number {
  const combines: number[] = [];
  for (let c = 0; c < shape.chunks; c++) {
    const experts = list.add('experts', 'forward', layer, c, mb, [f.dispatches[c]!]);
    combines.push(list.add('combine', 'forward', layer, c, mb, [experts]));
  }
  whileCombining?.();
  const shared = shape.overlap ? f.shared : list.add('shared', 'forward', layer, -1, mb, [combines.at(-1)!]);
  return list.add('post', 'forward', layer, -1, mb, [...combines, shared]);
}

/** Ids of one backward layer's ops that another micro-batch's work is interleaved between. */
export interface BackwardLayerOps {
  postBackward: number;
  combineBackwards: number[];
  sharedBackward: number;
}

/** Backward, part 1: `post` backward, every chunk's output gradients issued at once, and (overlapped) the shared expert's backward while they travel. */
export function backwardPost(list: OpList, mb: number, layer: number, shape: PassShape, upstream: number): BackwardLayerOps {
  const postBackward = list.add('post_bwd', 'backward', layer, -1, mb, [upstream]);
  const combineBackwards: number[] = [];
  for (let c = 0; c < shape.chunks; c++) combineBackwards.push(list.add('combine_bwd', 'backward', layer, c, mb, [postBackward]));
  const sharedBackward = shape.overlap ? list.add('shared_bwd', 'backward', layer, -1, mb, [postBackward]) : -1;
  return { postBackward, combineBackwards, sharedBackward };
}

/**
 * Backward, part 2: chunk c's expert backward once its gradients arrived, its input gradients
 * sent back at once. With `deferWeights` the weight gradients of every chunk follow, computed
 * while those input gradients travel. Returns the dispatch-backward ids.
 */
export function backwardExperts(list: OpList, mb: number, layer: number, shape: PassShape, b: Pick<BackwardLayerOps, 'combineBackwards'>): number[] {
  const dispatchBackwards: number[] = [];
  const inputGrads: number[] = [];
  for (let c = 0; c < shape.chunks; c++) {
    const expertsBackward = list.add(shape.deferWeights ? 'experts_dgrad' : 'experts_bwd', 'backward', layer, c, mb, [b.combineBackwards[c]!]);
    inputGrads.push(expertsBackward);
    dispatchBackwards.push(list.add('dispatch_bwd', 'backward', layer, c, mb, [expertsBackward]));
  }
  if (shape.deferWeights) inputGrads.forEach((dgrad, c) => list.add('experts_wgrad', 'backward', layer, c, mb, [dgrad]));
  return dispatchBackwards;
}

/** Backward, part 3: (naive) the shared backward after the last input gradients arrived; then router + norm backward. */
export function backwardRoute(list: OpList, mb: number, layer: number, shape: PassShape, b: BackwardLayerOps, dispatchBackwards: number[]): number {
  const shared = b.sharedBackward >= 0 ? b.sharedBackward : list.add('shared_bwd', 'backward', layer, -1, mb, [dispatchBackwards.at(-1)!]);
  return list.add('route_bwd', 'backward', layer, -1, mb, [...dispatchBackwards, shared]);
}

/** A whole forward of micro-batch `mb`: embed, every layer, then the loss (and the head's backward). Returns the loss op. */
export function forwardPass(list: OpList, mb: number, layers: number, shape: PassShape): number {
  let upstream = list.add('begin', 'forward', -1, -1, mb, []);
  for (let layer = 0; layer < layers; layer++) upstream = forwardExperts(list, mb, layer, shape, forwardRoute(list, mb, layer, shape, upstream));
  return list.add('loss', 'backward', -1, -1, mb, [upstream]);
}

/** A whole backward of micro-batch `mb` from its loss op, top layer down. Returns the last route backward. */
export function backwardPass(list: OpList, mb: number, layers: number, shape: PassShape, loss: number): number {
  let upstream = loss;
  for (let layer = layers - 1; layer >= 0; layer--) {
    const b = backwardPost(list, mb, layer, shape, upstream);
    upstream = backwardRoute(list, mb, layer, shape, b, backwardExperts(list, mb, layer, shape, b));
  }
  return upstream;
}

/**
 * Once per step, after every micro-batch's backward (and every deferred weight gradient, which
 * nothing else waits for): gather the dense gradients, all-reduce them, update.
 */
export function updatePhase(list: OpList, backwards: number[]): void {
  const weightGrads = list.ops.filter((op) => op.kind === 'experts_wgrad').map((op) => op.id);
  const grads = list.add('grads', 'update', -1, -1, -1, [...backwards, ...weightGrads]);
  const allReduce = list.add('allreduce', 'update', -1, -1, -1, [grads]);
  list.add('update', 'update', -1, -1, -1, [allReduce]);
}
