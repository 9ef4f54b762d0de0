import type { Direction, Op, Stream } from './ops';

/** One op as it ran; times in ms from the start of the step on this worker's clock. */
export interface OpRecordData {
  name: string;
  stream: Stream;
  layer: number;
  chunk: number;
  startMs: number;
  endMs: number;
  bytesSent: number;
  direction: Direction;
}

/** Records each op's start and end per stream, relative to the recorder's creation. */
export class TimelineRecorder {
  private readonly origin = performance.now();
  private readonly list: OpRecordData[] = [];

  now(): number {
    return performance.now() - this.origin;
  }

  record(op: Op, startMs: number, endMs: number, bytesSent: number): void {
    this.list.push({
      name: op.kind,
      stream: op.stream,
      layer: op.layer,
      chunk: op.chunk,
      startMs,
      endMs,
      bytesSent,
      direction: op.direction,
    });
  }

  /** Records in start order. */
  records(): OpRecordData[] {
    return [...this.list].sort((a, b) => a.startMs - b.startMs);
  }
}
