/** What the sim backend records of each compute op, and the errors it raises. */
import type { OpKind } from '@moe/schedule';

/** The compute ops a sim step models: the schedule's compute OpKinds. */
export type SimOpKind = Exclude<OpKind, 'dispatch' | 'combine' | 'combine_bwd' | 'dispatch_bwd' | 'allreduce'>;

/** One compute op as modeled and as it really waited. Times in ms of wall clock. */
export interface SimOpRecord {
  kind: SimOpKind;
  /** -1 when the op is not tied to a layer or chunk. */
  layer: number;
  chunk: number;
  /** The step's micro-batch; -1 for the step's update ops. */
  microBatch: number;
  /** FLOPs of all dtypes, and HBM bytes, of the modeled op. */
  flops: number;
  bytes: number;
  /** The cost model's prediction (dilated and scaled). */
  modeledMs: number;
  /**
   * Wall time the device spent on it, measured on the device's own thread (see DeviceClock):
   * from its start (when the device took it, or the previous op's modeled end) to the device's wake-up.
   */
  measuredMs: number;
}

/** An array handed to the sim backend has the wrong size for its step; names the op and the sizes. */
export class SimShapeError extends Error {
  override readonly name = 'SimShapeError';
}

/** A method was called before `load` or outside a step. */
export class SimStateError extends Error {
  override readonly name = 'SimStateError';
}
