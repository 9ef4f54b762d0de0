/**
 * What the host of a local cluster adds to its modeled devices and links (`HostCosts`), measured
 * from the op records of probe runs: runs made for the purpose, never the run being predicted.
 *
 * From each probe step's timelines (every rank, its ops with start, end and, for compute, the
 * cost model's ms) and the probe's own op list (deps):
 * - a compute op's launch gap (start - max(deps' ends, the previous compute op's end): the event
 *   loop handing it to the device thread) and its overshoot (measured - modeled span);
 * - a comm op's extra: its launch gap plus its duration beyond what the model gives it alone on
 *   idle links (wire, latency and, with `perByteMs`, the host data plane's bytes): frames' fixed
 *   costs, acknowledgements and peers that started it late; of all-to-alls, only those that left
 *   with no other transfer of their rank in flight (one that queued behind another would count
 *   the queueing twice: the engine queues it again);
 * - the step's control plane: scheduler step ms minus the latest op end of any rank;
 * - stalls: all-to-alls that took several times their rank's typical one, as when a rank paused
 *   and every peer waited for it (`probeStallMs`), counted once a step;
 * - the all-to-all term, moved to work on the host port and sized to replay the probe's step
 *   (`fitAllToAllWork`), and what even that cannot replay (`residualMs`).
 * Each term is a mean over a step's ops (every op is on some rank's path, and a step is their sum
 * along it), then the median over the probe's steps, as a row's step is the median of its steps:
 * one stall in one probe step does not move it.
 */
import type { Op } from '@moe/schedule';
import { runEngine } from './engine';
import { NO_HOST_COSTS, predictStep, stepTasks, type HostCosts, type StepPredictionInput } from './simulate-step';

/** One op as a worker recorded it (the fields of @moe/comm's OpRecordData read here); ms on the worker's step clock. */
export interface RecordedOp {
  name: string;
  stream: string;
  layer: number;
  chunk: number;
  /** Absent: 0. */
  microBatch?: number;
  startMs: number;
  endMs: number;
  /** Compute ops of a modeled device: the cost model's ms. */
  modeledMs?: number;
}

export interface ProbeStep {
  /** Scheduler-measured ms of the step. */
  stepMs: number;
  /** [world size] each rank's records. */
  timelines: readonly (readonly RecordedOp[])[];
}

/** Extras (ms) of every op of one probe step, all ranks. */
export interface StepExtras {
  /** [compute ops x ranks] the cost model's ms, the launch gap and the overshoot. */
  compute: { modeledMs: number; launchMs: number; overshootMs: number }[];
  allToAll: number[];
  allReduce: number[];
  /** Control-plane ms. */
  control: number;
}

/** [steps] a probe's measured steps' extras. */
export type ProbeExtras = StepExtras[];

const ALL_TO_ALL = new Set(['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd']);
const keyOf = (kind: string, layer: number, chunk: number, microBatch: number) => `${kind}|${layer}|${chunk}|${microBatch}`;

/** A probe's op extras. `input` is the probe's step as predictStep takes it (its `host` is ignored but for `perByteMs`). */
export function probeExtras(input: StepPredictionInput, steps: readonly ProbeStep[], perByteMs = 0): ProbeExtras {
  const ops: readonly Op[] = input.ops;
  const { tasks } = stepTasks({ ...input, host: { ...NO_HOST_COSTS, perByteMs } });
  // Each comm op alone on idle links: what the model (and the data plane's bytes) gives it.
  const alone = tasks.map((t) => (t.stream === 'comm' ? runEngine([{ ...t, deps: [] }], { devices: 1 }).makespanMs : 0));
  const index = new Map(ops.map((o) => [keyOf(o.kind, o.layer, o.chunk, o.microBatch), o.id]));
  return steps.map((step) => {
    const out: StepExtras = { compute: [], allToAll: [], allReduce: [], control: 0 };
    let lastEnd = -Infinity;
    for (const [rank, records] of step.timelines.entries()) {
      const start = new Float64Array(ops.length).fill(Number.NaN);
      const end = new Float64Array(ops.length).fill(Number.NaN);
      const modeled = new Float64Array(ops.length);
      for (const r of records) {
        const id = index.get(keyOf(r.name, r.layer, r.chunk, r.microBatch ?? 0));
        if (id === undefined) continue; // a hop of a hierarchical all-to-all: its op's own record covers it
        start[id] = r.startMs;
        end[id] = r.endMs;
        modeled[id] = r.modeledMs ?? 0;
        lastEnd = Math.max(lastEnd, r.endMs);
      }
      const missing = ops.find((o) => Number.isNaN(start[o.id]!));
      if (missing) throw new RangeError(`probe step: rank ${rank} has no record of op ${missing.id} (${missing.kind} layer ${missing.layer} chunk ${missing.chunk} micro-batch ${missing.microBatch}); was the probe run with this op list?`);
      let previousCompute = -Infinity;
      const queued: number[] = [];
      const lone: number[] = [];
      for (const op of ops) {
        const ready = Math.max(0, ...op.deps.map((d) => end[d]!));
        const ran = end[op.id]! - start[op.id]!;
        if (op.stream === 'compute') {
          const gap = start[op.id]! - Math.max(ready, previousCompute);
          out.compute.push({ modeledMs: modeled[op.id]!, launchMs: gap, overshootMs: ran - modeled[op.id]! });
          previousCompute = end[op.id]!;
        } else {
          const extra = start[op.id]! - ready + ran - alone[op.id]!;
          if (!ALL_TO_ALL.has(op.kind)) out.allReduce.push(extra);
          else (travelledAlone(op.id, ops, start, end) ? lone : queued).push(extra);
        }
      }
      // An all-to-all that left while another transfer of its rank was in flight waited behind it
      // on the host's data plane: that wait is the engine's to model (its ports queue), so only
      // those that travelled alone measure what the host adds. A probe with none keeps them all.
      out.allToAll.push(...(lone.length > 0 ? lone : queued));
    }
    out.control = Math.max(0, step.stepMs - lastEnd);
    return out;
  });
}

/** True when no other transfer of the rank was in flight as op `id` started (one issued at the same instant counts when it came first in the op list). */
function travelledAlone(id: number, ops: readonly Op[], start: Float64Array, end: Float64Array): boolean {
  const at = start[id]!;
  return !ops.some((o) => o.id !== id && o.stream === 'comm' && end[o.id]! > at && (start[o.id]! < at || (start[o.id]! === at && o.id < id)));
}

const mean = (v: readonly number[]) => (v.length === 0 ? 0 : v.reduce((a, b) => a + b, 0) / v.length);

function median(v: readonly number[]): number {
  if (v.length === 0) return 0;
  const s = [...v].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Share of a compute op's modeled ms that its overshoot grows by: the least-squares slope of
 * overshoot on modeled ms over `ops` (probes whose ops span a range of lengths, e.g. one schedule
 * at two dilations). 0 when the ops do not vary in length or the slope is negative.
 */
export function computeShare(ops: readonly { modeledMs: number; overshootMs: number }[]): number {
  const mx = mean(ops.map((o) => o.modeledMs));
  const my = mean(ops.map((o) => o.overshootMs));
  let sxy = 0;
  let sxx = 0;
  for (const o of ops) {
    sxy += (o.modeledMs - mx) * (o.overshootMs - my);
    sxx += (o.modeledMs - mx) ** 2;
  }
  return sxx > 0 ? Math.max(0, sxy / sxx) : 0;
}

/**
 * The host costs a probe measured: its op extras as per-op terms, with the compute share
 * `computeOpShare` (measured elsewhere, `computeShare`) taken out of the compute ops' fixed part
 * and `perByteMs` (the data plane's measured cost per byte) already out of the comm ops'.
 */
export function hostCostsOf(extras: ProbeExtras, computeOpShare: number, perByteMs: number): HostCosts {
  const perStep = (term: (s: StepExtras) => number) => median(extras.map(term));
  return {
    computeLaunchMs: perStep((s) => mean(s.compute.map((o) => o.launchMs))),
    computeOpMs: perStep((s) => mean(s.compute.map((o) => o.overshootMs - computeOpShare * o.modeledMs))),
    computeOpShare,
    allToAllMs: perStep((s) => mean(s.allToAll)),
    allToAllWorkMs: 0,
    perByteMs,
    allReduceMs: perStep((s) => mean(s.allReduce)),
    stepMs: perStep((s) => s.control),
    residualMs: 0,
    stallMs: 0,
  };
}

/** An all-to-all that took more than this many times its own typical duration stalled (`probeStallMs`). */
export const STALL_FACTOR = 3;

/**
 * ms a probe's step lost to stalls. An all-to-all's typical duration is its median over the
 * probe's steps on its rank (so the queueing a schedule always has, such as four chunks' all-to-
 * alls in flight at once, is typical, not a stall); what it took beyond STALL_FACTOR times that is
 * a stall. Per step, each rank's stalls summed, the largest rank's (every rank waits out the same
 * pause at the same all-to-all: summing ranks would count it once per rank); the median over the
 * probe's steps, as a row's step is the median of its steps.
 *
 * Why apart from the all-to-all work: a worker pauses now and then (a full garbage collection,
 * the CPU taken by the other processes of the host), and its peers wait at their next all-to-all
 * with it. Sized into the work that replays the probe, those pauses were spread over every
 * all-to-all, and a schedule that overlaps hid them behind compute in its predicted step while its
 * measured one kept them: replayed on four default benches' records, counting them once a step
 * raised the average alignment from 92.8 / 94.8 / 93.1 / 95.4% to 94.2 / 96.7 / 94.7 / 96.4%.
 */
export function probeStallMs(steps: readonly ProbeStep[]): number {
  const tookOf = (r: RecordedOp) => r.endMs - r.startMs;
  const keyOfRecord = (r: RecordedOp) => keyOf(r.name, r.layer, r.chunk, r.microBatch ?? 0);
  const ranks = steps[0]?.timelines.length ?? 0;
  // per rank, each all-to-all's typical duration: its median over the probe's steps
  const typical = Array.from({ length: ranks }, (_, rank) => {
    const took = new Map<string, number[]>();
    for (const step of steps) {
      for (const r of step.timelines[rank] ?? []) {
        if (!ALL_TO_ALL.has(r.name)) continue;
        const key = keyOfRecord(r);
        if (!took.has(key)) took.set(key, []);
        took.get(key)!.push(tookOf(r));
      }
    }
    return new Map([...took].map(([key, ms]) => [key, median(ms)]));
  });
  /** What one rank's all-to-alls in one step took beyond STALL_FACTOR x their typical. */
  const stalledMs = (records: readonly RecordedOp[], rank: number): number => {
    let sum = 0;
    for (const r of records) {
      if (ALL_TO_ALL.has(r.name)) sum += Math.max(0, tookOf(r) - STALL_FACTOR * (typical[rank]!.get(keyOfRecord(r)) ?? 0));
    }
    return sum;
  };
  return median(steps.map((step) => Math.max(0, ...step.timelines.map(stalledMs))));
}

/**
 * `host` with its all-to-all term as host work instead of a latency (allToAllWorkMs: each
 * all-to-all's fixed work after its bytes, queued on the rank's host port), sized so that the
 * engine's replay of the probe's own op list (with `host.stallMs` once) takes the probe's median step.
 *
 * Why: the per-op extras are means over the probe's all-to-alls, each measured while others may
 * have been in flight. Added as a latency to every all-to-all of a schedule that keeps several in
 * flight (overlapped C4: four at once), they replayed the probe itself 10-15% long; and a row
 * with more compute between its all-to-alls measured faster than its probe (fewer in flight at
 * once, less to share the cores that move frames). As work on one queue, all-to-alls in flight
 * together wait for each other, and spread-out ones do not. A naive step, whose all-to-alls never
 * overlap, replays the same either way. What no amount of work can replay (the replay with none
 * is already too long) stays as `residualMs`. `input` is the probe's step.
 */
export function fitAllToAllWork(input: StepPredictionInput, steps: readonly ProbeStep[], host: HostCosts): HostCosts {
  const target = median(steps.map((s) => s.stepMs));
  const replay = (work: number) => predictStep({ ...input, host: { ...host, allToAllMs: 0, allToAllWorkMs: work, residualMs: 0 } }).stepMs;
  const withNone = replay(0);
  if (withNone >= target) return { ...host, allToAllMs: 0, allToAllWorkMs: 0, residualMs: target - withNone };
  let lo = 0;
  let hi = Math.max(1, host.allToAllMs);
  // (no all-to-all's work is longer than the whole step)
  while (replay(hi) < target && hi < target) hi *= 2;
  // The replay grows with the work: bisect to well under a microsecond.
  for (let i = 0; i < 60 && hi - lo > 1e-7; i++) {
    const mid = (lo + hi) / 2;
    if (replay(mid) < target) lo = mid;
    else hi = mid;
  }
  return { ...host, allToAllMs: 0, allToAllWorkMs: hi, residualMs: target - replay(hi) };
}
