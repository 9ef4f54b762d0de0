import type { Op, ScheduleSpec } from '../ops';
import { OpList } from './op-list';
import { backwardPass, forwardPass, updatePhase } from './passes';

/**
 * The op list of one training step over `spec.layers` MoE layers and `spec.microBatches`
 * micro-batches run one after another (forward, then backward, of each), the all-to-alls either
 * waited for (`overlap` false: naive) or pipelined in `spec.chunks` chunks behind compute
 * (`overlap` true). Gradients accumulate over the micro-batches; one all-reduce and one update end the step.
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
  const shape = { chunks: overlap ? spec.chunks : 1, overlap };
  const list = new OpList();
  const backwards: number[] = [];
  for (let mb = 0; mb < (spec.microBatches ?? 1); mb++) {
    backwards.push(backwardPass(list, mb, spec.layers, shape, forwardPass(list, mb, spec.layers, shape)));
  }
  updatePhase(list, backwards);
  return list.ops;
}
