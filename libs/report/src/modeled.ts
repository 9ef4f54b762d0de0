import type { OpRecordData } from './types';

/**
 * Compute ops that carry the cost model's duration (`modeledMs`, a modeled device: `sim`), so
 * the report can set what the device measured beside what the model predicted.
 */
const modeledOps = (ops: readonly OpRecordData[]): OpRecordData[] => ops.filter((op) => op.stream === 'compute' && (op.modeledMs ?? 0) > 0);

/** ms: the cost model's compute time of one worker's step (sum over its modeled compute ops); null when none carries a model. */
export function modeledComputeMs(ops: readonly OpRecordData[]): number | null {
  const modeled = modeledOps(ops);
  return modeled.length === 0 ? null : modeled.reduce((sum, op) => sum + op.modeledMs!, 0);
}

/**
 * (measured - modeled) / modeled of every modeled compute op of `timelines` ([rank][ops], any
 * number of steps): how far the measured durations drift from the cost model's, op by op.
 */
export function computeDrifts(timelines: readonly (readonly OpRecordData[])[]): number[] {
  return timelines.flatMap((ops) => modeledOps(ops).map((op) => (op.endMs - op.startMs) / op.modeledMs! - 1));
}
