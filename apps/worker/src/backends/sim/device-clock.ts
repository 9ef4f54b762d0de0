import { Worker } from 'node:worker_threads';

/** Least and most the device thread spins before an op's end (ms); see THREAD_SOURCE. */
const MIN_MARGIN_MS = 0.05;
const MAX_MARGIN_MS = 0.3;

/** How the device thread is scheduled: the real-time class, a raised priority, or as any thread; and its kernel thread id (Linux). */
export interface DeviceScheduling {
  policy: 'fifo' | 'nice -10' | 'normal';
  tid?: number;
}

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
 * It blocks on Atomics.wait (a futex) and nothing else runs on it, so a busy event loop
 * elsewhere in the process cannot make an op late; the last `margin` ms it spins, since a futex
 * wake-up can overshoot. Times are process.hrtime (one monotonic clock for every thread of the
 * process), in ms.
 *
 * What can still make an op late is the kernel not running the thread when its futex times
 * out: on a host whose cores are all busy (the data plane of every worker of the bench, and
 * anyone else's jobs), a woken thread of the normal class waits for a turn, 1-3 ms under
 * EEVDF, and ops of a few ms came out 5-15% long. So the thread first asks for the real-time
 * class (SCHED_FIFO, lowest priority, via chrt: it preempts every normal thread when it wakes,
 * and it only ever runs for the margin), else for nice -10; where neither is allowed (no
 * CAP_SYS_NICE) it stays as it is and says so ("normal"). The margin follows what the futex
 * really overshot lately: tens of microseconds in the real-time class, so the spin is short.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const nap = new Int32Array(new SharedArrayBuffer(4));
const now = () => Number(process.hrtime.bigint()) / 1e6;

function claimTime() {
  let tid;
  try {
    tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return { policy: 'normal' }; // not Linux: no per-thread scheduling to ask for
  }
  try {
    require('node:child_process').execFileSync('chrt', ['--fifo', '--pid', '1', String(tid)], { stdio: 'ignore', timeout: 5000 });
    return { policy: 'fifo', tid };
  } catch {}
  try {
    require('node:os').setPriority(tid, -10);
    return { policy: 'nice -10', tid };
  } catch {}
  return { policy: 'normal', tid };
}
parentPort.postMessage({ scheduling: claimTime() });

// The futex's recent overshoots (ms); the spin margin is their 90th percentile plus a little.
const overshoots = new Float64Array(32);
let seen = 0;
let margin = ${MAX_MARGIN_MS};
function overshot(ms) {
  overshoots[seen++ % overshoots.length] = ms;
  const recent = Array.from(overshoots.subarray(0, Math.min(seen, overshoots.length))).sort((a, b) => a - b);
  const p90 = recent[Math.floor(0.9 * (recent.length - 1))];
  margin = Math.min(${MAX_MARGIN_MS}, Math.max(${MIN_MARGIN_MS}, p90 + 0.02));
}

let modeledEnd = -Infinity;
parentPort.on('message', ({ id, ms }) => {
  const start = Math.max(now(), modeledEnd);
  const end = start + ms;
  modeledEnd = end;
  for (let left = end - now(); left > margin; left = end - now()) {
    const asked = left - margin;
    const slept = now();
    Atomics.wait(nap, 0, 0, asked);
    overshot(now() - slept - asked);
  }
  while (now() < end) {} // the last fraction of a ms: spin
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
  private granted?: DeviceScheduling;
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

  /** How the device thread got scheduled (known once it ran; undefined before). */
  scheduling(): DeviceScheduling | undefined {
    return this.granted;
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
    worker.on('message', ({ id, start, woke, scheduling }: { id: number; start: number; woke: number; scheduling?: DeviceScheduling }) => {
      if (scheduling) return void (this.granted = scheduling);
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
