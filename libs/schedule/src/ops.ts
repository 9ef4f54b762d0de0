/**
 * A step as data: a list of ops on two streams, each naming the ops it waits for.
 *
 * - The compute stream runs its ops one at a time, in list order (a device is busy or not).
 * - Comm ops start as soon as their dependencies finish and run concurrently with compute.
 *
 * The executor runs this list and nothing else decides the order, so printing a schedule
 * (`formatSchedule`) shows the overlap before anything runs.
 */
export type Stream = 'compute' | 'comm';
export type Direction = 'forward' | 'backward' | 'update';

export type OpKind =
  | 'begin' // compute: embed the tokens
  | 'route' // compute: norm + router of a layer
  | 'shared' // compute: shared experts
  | 'dispatch' // comm: token rows to expert owners (one chunk)
  | 'experts' // compute: local experts on one chunk's rows
  | 'combine' // comm: expert outputs back to token owners (one chunk)
  | 'post' // compute: weighted sum + residual
  | 'loss' // compute: final norm, head, loss, and their backward
  | 'post_bwd' // compute: backward of `post`
  | 'combine_bwd' // comm: output gradients to expert owners (one chunk)
  | 'experts_bwd' // compute: expert backward on one chunk
  | 'dispatch_bwd' // comm: input gradients back to token owners (one chunk)
  | 'shared_bwd' // compute: shared expert backward
  | 'route_bwd' // compute: router + norm backward
  | 'grads' // compute: embedding backward, gather the dense gradients
  | 'allreduce' // comm: sum dense gradients and expert counts over ranks
  | 'update'; // compute: AdamW and bias balancing

export const COMM_KINDS: ReadonlySet<OpKind> = new Set(['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd', 'allreduce']);

export interface Op {
  /** Index in the schedule's list. */
  id: number;
  kind: OpKind;
  stream: Stream;
  direction: Direction;
  /** -1 when the op is not tied to a layer or chunk. */
  layer: number;
  chunk: number;
  /** Ids of the ops that must finish before this one starts (always earlier in the list). */
  deps: number[];
}

export type ScheduleKind = 'naive' | 'overlapped';

export interface ScheduleSpec {
  kind: ScheduleKind;
  layers: number;
  /** Micro-batches per layer; 1 for naive. */
  chunks: number;
}

export class ScheduleError extends Error {
  override readonly name = 'ScheduleError';
}

/** `experts L1 C0 [compute] <- dispatch L1 C0` etc., one line an op. */
export function formatSchedule(ops: readonly Op[]): string {
  const label = (op: Op) =>
    `${op.kind}${op.layer >= 0 ? ` L${op.layer}` : ''}${op.chunk >= 0 ? ` C${op.chunk}` : ''}`;
  return ops
    .map((op) => {
      const deps = op.deps.map((d) => label(ops[d]!)).join(', ');
      return `${String(op.id).padStart(3)} ${op.stream.padEnd(7)} ${label(op).padEnd(22)}${deps ? ` <- ${deps}` : ''}`;
    })
    .join('\n');
}
