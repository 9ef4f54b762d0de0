import type { Op } from '@moe/schedule';

/** One op in the flight recorder; `state` is 'running' until it ends. */
export interface FlightOpEntry {
  /** The run (and attempt) the op belonged to: the scheduler summarises only the failing run's ops. */
  runId: string;
  step: number;
  kind: string;
  layer: number;
  chunk: number;
  stream: string;
  state: 'running' | 'done' | 'failed';
  /** Wall clock, ms since the epoch. */
  startMs: number;
  /** 0 while running. */
  endMs: number;
  /** 'failed' only. */
  error: string;
}

/** What the step executor tells about each op: when it starts and when it ends. */
export interface OpObserver {
  opStart(step: number, op: Op): FlightOpEntry;
  opEnd(entry: FlightOpEntry, error?: unknown): void;
}

/**
 * A worker's last `capacity` ops (of all its steps), oldest first, including ops that started and
 * have not ended: after a timeout it shows where each rank is. A fixed-size ring; never grows.
 */
export class FlightRecorder implements OpObserver {
  private readonly ring: (FlightOpEntry | undefined)[];
  private next = 0;
  lastStep = 0;
  /** The run whose ops are recorded now (set at LoadShard); stamped on every entry. */
  runId = '';

  constructor(readonly capacity = 256) {
    this.ring = new Array<FlightOpEntry | undefined>(Math.max(1, capacity));
  }

  opStart(step: number, op: Op): FlightOpEntry {
    const entry: FlightOpEntry = {
      runId: this.runId,
      step,
      kind: op.kind,
      layer: op.layer,
      chunk: op.chunk,
      stream: op.stream,
      state: 'running',
      startMs: Date.now(),
      endMs: 0,
      error: '',
    };
    this.lastStep = step;
    this.ring[this.next] = entry;
    this.next = (this.next + 1) % this.ring.length;
    return entry;
  }

  opEnd(entry: FlightOpEntry, error?: unknown): void {
    entry.endMs = Date.now();
    entry.state = error === undefined ? 'done' : 'failed';
    if (error !== undefined) entry.error = error instanceof Error ? error.message : String(error);
  }

  /** Oldest first. */
  entries(): FlightOpEntry[] {
    const n = this.ring.length;
    const out: FlightOpEntry[] = [];
    for (let i = 0; i < n; i++) {
      const e = this.ring[(this.next + i) % n];
      if (e) out.push({ ...e });
    }
    return out;
  }
}
