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
  | 'experts_bwd' // compute: expert backward on one chunk (input and weight gradients)
  | 'experts_dgrad' // compute: expert backward on one chunk, input gradients only (what dispatch_bwd sends)
  | 'experts_wgrad' // compute: the weight gradients an experts_dgrad of the same chunk left (nothing in the step waits for them but the update)
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
  /** Index of the step's micro-batch the op works on (0 when the step has one); -1 for the step's update ops (grads, allreduce, update). */
  microBatch: number;
  /** Ids of the ops that must finish before this one starts (always earlier in the list). */
  deps: number[];
}

export interface ScheduleSpec {
  /** A registered schedule's name (`SCHEDULE_NAMES`). */
  kind: string;
  layers: number;
  /** Token chunks per layer; 1 for a schedule that does not chunk. */
  chunks: number;
  /** Micro-batches the step's batch is split into (gradients accumulate over them); 1 when absent. */
  microBatches?: number;
}

export class ScheduleError extends Error {
  override readonly name = 'ScheduleError';
}

/** True for the ops that move data between ranks. */
export const isCommKind = (kind: OpKind): boolean => COMM_KINDS.has(kind);

/** Token range [begin, end) of chunk `chunk` when `tokens` tokens are split into `chunks` parts. */
export function chunkTokenRange(tokens: number, chunks: number, chunk: number): { begin: number; end: number } {
  return { begin: Math.floor((chunk * tokens) / chunks), end: Math.floor(((chunk + 1) * tokens) / chunks) };
}
