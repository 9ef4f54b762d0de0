/** A binary min-heap of events ordered by time, then by insertion (events at one time run first-in first-out). */
export interface SimEvent {
  time: number;
  seq: number;
  /** What happens: a task ends, a device's compute op may end, or a transfer starts using a device's SMs. */
  kind: 'task-end' | 'compute-end' | 'comm-start';
  /** Task id (task-end, comm-start) or device (compute-end). */
  target: number;
  /** compute-end: the version of the device's running op it was scheduled for (stale ones are skipped). */
  version: number;
}

export class EventQueue {
  private readonly heap: SimEvent[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(time: number, kind: SimEvent['kind'], target: number, version = 0): void {
    const h = this.heap;
    h.push({ time, seq: this.seq++, kind, target, version });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

const before = (a: SimEvent, b: SimEvent): boolean => a.time < b.time || (a.time === b.time && a.seq < b.seq);
