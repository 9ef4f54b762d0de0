/**
 * The discrete-event core of the cluster simulator: tasks on devices, on a virtual clock.
 *
 * - A device's compute tasks run one at a time in the order they were added (a compute stream),
 *   each as soon as its dependencies are done and the previous one has ended.
 * - A comm task starts when its dependencies are done. It serialises its bytes on the device's
 *   ports (NVLink, NIC) first in, first out: a transfer waits for the ones queued on that port
 *   before it (a hot link queues); its latency is pipelined (not held on the port). A use may
 *   also carry host time (a local cluster's data plane moving those bytes): it follows that use's
 *   wire time on the device's host port, first in, first out, so a stream of frames takes the
 *   larger of the two (wire and host pipeline) and a lone frame their sum; a task may add host
 *   work of its own after all its bytes (`hostMs`), on the same port. The task ends when
 *   every port it uses has finished, plus the latency.
 * - Optionally communication takes a share of the device's SMs while a transfer is on the wire
 *   (DeepSeek-V3 §3.2.2: 20 of 132 SMs): compute then runs at (1 - share) of its speed.
 *
 * Times are ms. No payloads, no processes: a step of thousands of GPUs is the tasks of the
 * devices that differ (see `cluster-step.ts` for the symmetry that allows it).
 */
import { EventQueue } from './event-queue';

export type TaskStream = 'compute' | 'comm';

/** Serialisation of a transfer on one port of its device. */
export interface PortUse {
  /** Index of the port on the device (`PORTS`). */
  port: number;
  /** ms the bytes occupy the port. */
  ms: number;
  /** ms of host work on these bytes after they left the port (a local run's data plane), serial on the device's host port. */
  hostMs?: number;
}

export const PORTS = { nvlink: 0, nic: 1, host: 2 } as const;
const PORT_COUNT = 3;

export interface SimTask {
  device: number;
  stream: TaskStream;
  /** compute: ms at the device's full speed. comm: latency ms after the last port is done. */
  ms: number;
  /**
   * compute only: ms the host takes to hand the op to its device (a local run's event loop and
   * device thread): the compute stream is held but the device idle, and the op starts after it.
   */
  launchMs?: number;
  /** comm only: the ports it serialises on. */
  wire?: PortUse[];
  /** comm only: host work after all its bytes (a local run's frames' fixed costs), serial on the device's host port. */
  hostMs?: number;
  /** Ids (indexes in the task list) of the tasks that must end before this one starts. */
  deps: number[];
}

export interface EngineOptions {
  devices: number;
  /** Share of a device's compute taken by communication while a transfer is on the wire, in [0, 1). */
  commComputeShare?: number;
}

export interface EngineResult {
  /** [tasks] start and end, ms. */
  start: Float64Array;
  end: Float64Array;
  /** When the last task ended, ms. */
  makespanMs: number;
  /** [devices] ms the compute stream was busy. */
  computeBusyMs: Float64Array;
  /** Events processed (for the simulator's own cost). */
  events: number;
}

export class SimulationError extends Error {
  override readonly name = 'SimulationError';
}

/** Runs the tasks to completion; throws SimulationError when some can never run (a cycle, a dependency that never ends). */
export function runEngine(tasks: readonly SimTask[], options: EngineOptions): EngineResult {
  const n = tasks.length;
  const D = options.devices;
  const share = options.commComputeShare ?? 0;
  if (!(share >= 0 && share < 1)) throw new SimulationError(`commComputeShare=${share} must be in [0, 1)`);

  // Dependents, as one flat list per task (CSR).
  const waiting = new Int32Array(n);
  const fanout = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    const t = tasks[i]!;
    if (t.device < 0 || t.device >= D) throw new SimulationError(`task ${i}: device ${t.device} outside 0..${D - 1}`);
    waiting[i] = t.deps.length;
    for (const d of t.deps) {
      if (d < 0 || d >= n || d === i) throw new SimulationError(`task ${i}: dependency ${d} is not another task of 0..${n - 1}`);
      fanout[d + 1]!++;
    }
  }
  for (let i = 0; i < n; i++) fanout[i + 1]! += fanout[i]!;
  const dependents = new Int32Array(fanout[n]!);
  const fill = fanout.slice(0, n);
  for (let i = 0; i < n; i++) for (const d of tasks[i]!.deps) dependents[fill[d]!++] = i;

  // Each device's compute tasks in order; a cursor to the next one.
  const order: number[][] = Array.from({ length: D }, () => []);
  for (let i = 0; i < n; i++) if (tasks[i]!.stream === 'compute') order[tasks[i]!.device]!.push(i);
  const cursor = new Int32Array(D);
  const running = new Int32Array(D).fill(-1);
  const remaining = new Float64Array(D);
  const since = new Float64Array(D);
  const version = new Int32Array(D);
  const activeComm = new Int32Array(D);
  const portFree = new Float64Array(D * PORT_COUNT);
  const busy = new Float64Array(D);

  const start = new Float64Array(n).fill(NaN);
  const end = new Float64Array(n).fill(NaN);
  const queue = new EventQueue();
  let now = 0;
  let events = 0;
  let finished = 0;

  const rate = (device: number) => (activeComm[device]! > 0 ? 1 - share : 1);

  const tryStartCompute = (device: number) => {
    if (running[device] !== -1) return;
    const list = order[device]!;
    const next = list[cursor[device]!];
    if (next === undefined || waiting[next]! > 0) return;
    cursor[device]!++;
    running[device] = next;
    const at = now + (tasks[next]!.launchMs ?? 0);
    start[next] = at;
    remaining[device] = tasks[next]!.ms;
    since[device] = at;
    queue.push(at + remaining[device]! / rate(device), 'compute-end', device, ++version[device]!);
  };

  /** Re-times the running compute op of `device` after its speed changed. */
  const retime = (device: number, oldRate: number) => {
    if (running[device] === -1) return;
    // An op still being launched has not started: nothing of it ran yet.
    remaining[device] = Math.max(0, remaining[device]! - Math.max(0, now - since[device]!) * oldRate);
    since[device] = Math.max(now, since[device]!);
    queue.push(since[device]! + remaining[device]! / rate(device), 'compute-end', device, ++version[device]!);
  };

  const setActive = (device: number, delta: number) => {
    const old = rate(device);
    activeComm[device]! += delta;
    if (share > 0 && old !== rate(device)) retime(device, old);
  };

  const issueComm = (id: number) => {
    const t = tasks[id]!;
    let wireStart = Infinity;
    let wireEnd = now;
    const hosted: { at: number; ms: number }[] = [];
    for (const use of t.wire ?? []) {
      const slot = t.device * PORT_COUNT + use.port;
      const begin = Math.max(now, portFree[slot]!);
      portFree[slot] = begin + use.ms;
      wireStart = Math.min(wireStart, begin);
      wireEnd = Math.max(wireEnd, begin + use.ms);
      if (use.hostMs) hosted.push({ at: begin + use.ms, ms: use.hostMs });
    }
    // Host work on each use's bytes, in the order they came off the wire.
    const host = t.device * PORT_COUNT + PORTS.host;
    for (const h of hosted.sort((a, b) => a.at - b.at)) {
      portFree[host] = Math.max(h.at, portFree[host]!) + h.ms;
      wireEnd = Math.max(wireEnd, portFree[host]!);
    }
    if (t.hostMs) {
      portFree[host] = Math.max(wireEnd, portFree[host]!) + t.hostMs;
      wireEnd = portFree[host]!;
    }
    start[id] = now;
    if (share > 0 && wireStart < Infinity && wireEnd > wireStart) queue.push(wireStart, 'comm-start', id);
    // A negative latency (a measured host term below the modeled bytes' time) shortens the op, never past its start.
    queue.push(Math.max(now, wireEnd + t.ms), 'task-end', id);
  };

  const complete = (id: number) => {
    end[id] = now;
    finished++;
    const touched = new Set<number>();
    for (let k = fanout[id]!; k < fanout[id + 1]!; k++) {
      const dep = dependents[k]!;
      if (--waiting[dep]! === 0) {
        if (tasks[dep]!.stream === 'comm') issueComm(dep);
        else touched.add(tasks[dep]!.device);
      }
    }
    for (const device of touched) tryStartCompute(device);
  };

  for (let i = 0; i < n; i++) if (waiting[i] === 0 && tasks[i]!.stream === 'comm') issueComm(i);
  for (let d = 0; d < D; d++) tryStartCompute(d);

  for (let e = queue.pop(); e; e = queue.pop()) {
    events++;
    now = e.time;
    if (e.kind === 'compute-end') {
      if (e.version !== version[e.target]) continue;
      const device = e.target;
      const id = running[device]!;
      running[device] = -1;
      busy[device]! += now - start[id]!;
      complete(id);
      tryStartCompute(device);
    } else if (e.kind === 'comm-start') {
      setActive(tasks[e.target]!.device, +1);
    } else {
      const t = tasks[e.target]!;
      if (share > 0 && (t.wire?.length ?? 0) > 0 && t.wire!.some((w) => w.ms > 0)) setActive(t.device, -1);
      complete(e.target);
    }
  }
  if (finished !== n) {
    const stuck = tasks.findIndex((_, i) => Number.isNaN(end[i]!));
    throw new SimulationError(`${n - finished} of ${n} tasks never ran (first: task ${stuck} on device ${tasks[stuck]!.device}, ${tasks[stuck]!.stream}); the dependencies form a cycle or a compute stream's order contradicts them`);
  }
  let makespanMs = 0;
  for (let i = 0; i < n; i++) makespanMs = Math.max(makespanMs, end[i]!);
  return { start, end, makespanMs, computeBusyMs: busy, events };
}
