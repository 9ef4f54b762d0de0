import type { Op, ScheduleSpec } from '../ops';
import type { ScheduleBuilder } from '../registry';
import { OpList, type PassShape } from './op-list';
import { backwardExperts, backwardPass, backwardPost, backwardRoute, forwardExperts, forwardPass, forwardRoute, updatePhase } from './passes';

/**
 * One forward and one backward, of two different micro-batches, interleaved layer by layer:
 * F(f) walks layers up while B(b) walks them down, so each one's all-to-alls travel while the
 * other one computes (DeepSeek-V3's DualPipe pairing, section 3.2.1, Figure 4: the backward's
 * MLP split into input-gradient (B) and weight-gradient (W) parts). One unit, F at layer u and
 * B at layer L-1-u, on the compute stream in this order (what travels on the comm stream meanwhile):
 *
 *   F route                       ->  F's dispatch leaves; B's output gradients (combine_bwd) in flight
 *   F shared                         (F dispatch, B combine_bwd in flight)
 *   B experts_dgrad, per chunk    ->  B's input gradients go back (dispatch_bwd); F dispatch in flight
 *   B experts_wgrad, per chunk       (B dispatch_bwd, F dispatch in flight)
 *   B shared_bwd                     (B dispatch_bwd, F dispatch in flight)
 *   F experts, per chunk          ->  F's combine leaves
 *   B route_bwd                      (F combine in flight)
 *   B post_bwd of the next unit   ->  its combine_bwd leaves, to travel under F post and the next F route
 *   F post
 *
 * The expert weight gradients (zero-bubble's W), which nothing in the step waits for but the
 * update, are split off the expert backward so its input gradients leave one W sooner and W
 * fills the wait for F's rows. They go right after the input gradients rather than later in the
 * unit: replayed through the cost model (`moe bench --replay`), that gave the shortest steps,
 * ahead of placing them after F's experts or after the next post_bwd.
 *
 * The pair starts with B's first post_bwd. Returns the F micro-batch's loss op and the B
 * micro-batch's last route backward.
 */
function pairedPass(list: OpList, f: number, b: number, layers: number, shape: PassShape, bLoss: number): { loss: number; backward: number } {
  // B's shared backward comes after its experts' backward here, so its post is built without it.
  const bShape = { ...shape, overlap: false };
  let fUp = list.add('begin', 'forward', -1, -1, f, []);
  let bw = backwardPost(list, b, layers - 1, bShape, bLoss);
  let bUp = bLoss;
  for (let u = 0; u < layers; u++) {
    const bLayer = layers - 1 - u;
    const fw = forwardRoute(list, f, u, shape, fUp);
    const dispatchBackwards = backwardExperts(list, b, bLayer, shape, bw);
    bw.sharedBackward = list.add('shared_bwd', 'backward', bLayer, -1, b, [bw.postBackward]);
    const current = bw;
    fUp = forwardExperts(list, f, u, shape, fw, () => {
      bUp = backwardRoute(list, b, bLayer, shape, current, dispatchBackwards);
      if (bLayer > 0) bw = backwardPost(list, b, bLayer - 1, bShape, bUp);
    });
  }
  const loss = list.add('loss', 'backward', -1, -1, f, [fUp]);
  return { loss, backward: bUp };
}

/**
 * F(0); for i = 1..M-1 the forward of micro-batch i paired with the backward of micro-batch i-1;
 * then B(M-1); then the one all-reduce and update of the step. The unpaired F(0) and B(M-1) run
 * as the overlapped schedule runs a pass (chunks pipelined, shared experts behind the all-to-alls),
 * B(M-1) with its weight gradients split off too, computed while its input gradients travel.
 */
export function buildFbOverlapStep(spec: ScheduleSpec): Op[] {
  const shape: PassShape = { chunks: spec.chunks, overlap: true, deferWeights: true };
  const M = spec.microBatches ?? 1;
  const list = new OpList();
  const backwards: number[] = [];
  let loss = forwardPass(list, 0, spec.layers, shape);
  for (let i = 1; i < M; i++) {
    const pair = pairedPass(list, i, i - 1, spec.layers, shape, loss);
    backwards.push(pair.backward);
    loss = pair.loss;
  }
  backwards.push(backwardPass(list, M - 1, spec.layers, shape, loss));
  updatePhase(list, backwards);
  return list.ops;
}

export const fbOverlap: ScheduleBuilder = {
  name: 'fb-overlap',
  summary: "micro-batch i's forward paired with micro-batch i-1's backward: each one's all-to-alls travel while the other computes; expert weight gradients fill the waits",
  chunked: true,
  // Chunks inside a pair add compute cost and little hiding (the other micro-batch already hides
  // the all-to-alls); they help the unpaired first forward and last backward.
  defaultChunks: 1,
  build: buildFbOverlapStep,
};
