/**
 * A pipeline-parallel step as data: for each pipeline rank, the ordered list of chunk units its
 * compute stream runs. A unit is one model chunk (the layers of one stage) for one micro-batch:
 *
 * - `F`: forward of the chunk.
 * - `B`: full backward (input and weight gradients); with `deferWeights` only the input
 *   gradients, the weight gradients left to a later `W` unit (zero-bubble split).
 * - `W`: weight gradients of a chunk whose `B` deferred them.
 * - `FB`: a forward and a (full) backward of two micro-batches run together, each one's
 *   all-to-alls hidden under the other's compute (DualPipe's overlapped chunk pair).
 *
 * A micro-batch walks a route: the ranks of stages 0..S-1 in order (1F1B: 0..PP-1; DualPipe's
 * second direction: PP-1..0; DualPipeV: 0..N-1 then N-1..0). Stage s holds the same layers on
 * every route, so a rank holding two stages holds two model chunks (DualPipe's 2x parameters).
 * Data flow alone orders units across ranks: F(m, s) needs F(m, s-1); B(m, s) needs B(m, s+1) and
 * F(m, s); W needs its B.
 */
import { ScheduleError } from '../ops';

/** One micro-batch at one stage of its route. */
export interface ChunkRef {
  microBatch: number;
  stage: number;
}

export type PipelineUnit = (
  | { kind: 'F'; chunk: ChunkRef }
  | { kind: 'B'; chunk: ChunkRef; deferWeights: boolean }
  | { kind: 'W'; chunk: ChunkRef }
  | { kind: 'FB'; forward: ChunkRef; backward: ChunkRef }
) & {
  /**
   * The input of a later forward this unit also waits for: DualPipe posts that receive before
   * the unit and waits for every posted receive before it computes (`_commit_and_wait_comm`).
   */
  alsoWaitsForInputOf?: ChunkRef;
};

export interface PipelinePlan {
  /** The schedule's name (`PIPELINE_SCHEDULE_NAMES`). */
  schedule: string;
  /** Pipeline ranks (devices of one pipeline). */
  ranks: number;
  /** Stages on every route. */
  stages: number;
  microBatches: number;
  /** [routes][stages] the rank of each stage of a route. */
  routes: number[][];
  /** [microBatches] the route each micro-batch walks. */
  routeOf: number[];
  /** [ranks] each rank's units in the order its compute stream runs them. */
  units: PipelineUnit[][];
}

/** A pipeline plan that cannot be built or expanded; says which number is wrong. */
export class PipelineScheduleError extends ScheduleError {
}

/** The rank that runs stage `stage` of micro-batch `microBatch`. */
export function rankOf(plan: PipelinePlan, chunk: ChunkRef): number {
  return plan.routes[plan.routeOf[chunk.microBatch]!]![chunk.stage]!;
}

/**
 * Appends units to one rank's list; keeps the first-in-first-out queue of deferred weight
 * gradients (DualPipe's WeightGradStore) so a `W` names the chunk it finishes.
 */
export class RankUnits {
  readonly units: PipelineUnit[] = [];
  private readonly deferred: ChunkRef[] = [];

  forward(chunk: ChunkRef): void {
    this.units.push({ kind: 'F', chunk });
  }

  backward(chunk: ChunkRef, deferWeights = false): void {
    this.units.push({ kind: 'B', chunk, deferWeights });
    if (deferWeights) this.deferred.push(chunk);
  }

  weights(): void {
    const chunk = this.deferred.shift();
    if (!chunk) throw new PipelineScheduleError('W unit with no deferred weight gradients left (the schedule pops more W than it deferred)');
    this.units.push({ kind: 'W', chunk });
  }

  forwardBackward(forward: ChunkRef, backward: ChunkRef): void {
    this.units.push({ kind: 'FB', forward, backward });
  }

  /** The last unit also waits for the input of `chunk`'s forward (a receive posted ahead of it). */
  alsoWaitFor(chunk: ChunkRef): void {
    const last = this.units[this.units.length - 1];
    if (!last) throw new PipelineScheduleError('alsoWaitFor before any unit');
    last.alsoWaitsForInputOf = chunk;
  }

  /** Weight gradients still deferred: a complete schedule leaves none. */
  get pendingWeights(): number {
    return this.deferred.length;
  }
}

/** Throws naming the number that is wrong and what would be right. */
export function requireInteger(value: number, name: string, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new PipelineScheduleError(`${name}=${value} must be an integer >= ${min}`);
  }
}
