/** The two streams of a worker's step (a GPU's compute and communication streams). */
export type Stream = 'compute' | 'comm';
export type Direction = 'forward' | 'backward' | 'update';

/**
 * One op of a worker's step, as it ran (the `OpRecord` of `RunStepResponse.timeline`).
 * Times in ms from the worker's receipt of RunStep, on the worker's clock.
 */
export interface OpRecordData {
  /** Op kind: "dispatch", "experts", "combine", "combine_bwd", "allreduce", ... */
  name: string;
  stream: Stream;
  /** -1 when not tied to a layer. */
  layer: number;
  /** -1 when not tied to a chunk. */
  chunk: number;
  startMs: number;
  endMs: number;
  /** Payload bytes this worker sent to peers in this op (comm ops; 0 for compute). */
  bytesSent: number;
  direction: Direction;
  /** Compute ops of a modeled device (sim): the cost model's duration, ms. Absent otherwise. */
  modeledMs?: number;
}

/** Records each op's start and end per stream, relative to the recorder's creation. */
export class TimelineRecorder {
  private readonly origin = performance.now();
  private readonly list: OpRecordData[] = [];

  now(): number {
    return performance.now() - this.origin;
  }

  /** A performance.now() time on this recorder's clock. */
  at(performanceNowMs: number): number {
    return performanceNowMs - this.origin;
  }

  record(op: OpRecordData): void {
    this.list.push(op);
  }

  /** Records in start order. */
  records(): OpRecordData[] {
    return [...this.list].sort((a, b) => a.startMs - b.startMs);
  }
}
