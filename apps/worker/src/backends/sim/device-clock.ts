import { Worker } from 'node:worker_threads';

/** One op as the modeled device ran it, in performance.now() ms of the calling thread. */
export interface DeviceSpan {
  /** When the device started it: when it took the op, or the modeled end of the op before it if that was later. */
  startMs: number;
  /** When the device's wait really ended (measured on the device's own thread). */
  endMs: number;
}

/**
 * The device thread: ops run one at a time, in the order they come, each from
 * max(when the device takes it, the modeled end of the op before it) until that start plus its
 * duration. The time the op's message took to reach the thread is launch latency (the device
 * sat idle), not part of the op, as a GPU kernel's duration leaves out its launch.
 * It blocks on Atomics.wait (a futex: sub-ms wake-ups) and nothing else runs on it, so a busy
 * event loop elsewhere in the process cannot make an op late. Times are process.hrtime (one
 * monotonic clock for every thread of the process), in ms.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const nap = new Int32Array(new SharedArrayBuffer(4));
const now = () => Number(process.hrtime.bigint()) / 1e6;
let modeledEnd = -Infinity;
parentPort.on('message', ({ id, ms }) => {
  const start = Math.max(now(), modeledEnd);
  const end = start + ms;
  modeledEnd = end;
  for (let left = end - now(); left > 0.3; left = end - now()) Atomics.wait(nap, 0, 0, left - 0.2);
  while (now() < end) {} // the last fraction of a ms: spin, a futex wake-up can overshoot it
  parentPort.postMessage({ id, start, woke: now() });
});
`;

const hrMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * A modeled device's clock on a thread of its own: `run(ms)` resolves when the device has spent
 * `ms` on the op, with the span the device measured. The event loop that serves the data plane
 * only learns of the end (a message), so frames being encoded, framed or copied there delay the
 * next op's issue, never an op's duration. One op at a time, in call order.
 */
export class DeviceClock {
  private worker?: Worker;
  private readonly pending = new Map<number, { resolve: (span: DeviceSpan) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  /** performance.now() - hrtime ms: both clocks are monotonic and tick together. */
  private readonly offset = performance.now() - hrMs();

  run(ms: number): Promise<DeviceSpan> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise<DeviceSpan>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, ms });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(THREAD_SOURCE, { eval: true });
    worker.unref(); // an idle device never keeps the process alive
    worker.on('message', ({ id, start, woke }: { id: number; start: number; woke: number }) => {
      const waiting = this.pending.get(id);
      this.pending.delete(id);
      waiting?.resolve({ startMs: start + this.offset, endMs: woke + this.offset });
    });
    // A device thread that died fails the ops waiting on it (they would hang otherwise); the next run starts a new one.
    const fail = (error: Error) => {
      for (const waiting of this.pending.values()) waiting.reject(new Error(`sim device thread failed: ${error.message}`));
      this.pending.clear();
      if (this.worker === worker) this.worker = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => this.pending.size > 0 && fail(new Error(`exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }
}
