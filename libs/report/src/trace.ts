import { opLabel } from './ops';
import { stepExtentMs } from './timeline-svg';
import { ReportError, type StepTimeline } from './types';

/** One event of the Chrome trace event format (the subset written here). Times in µs. */
export interface TraceEvent {
  name: string;
  /** X: complete event (ts + dur); M: metadata; i: instant. */
  ph: 'X' | 'M' | 'i';
  /** µs from the trace's origin. */
  ts: number;
  /** µs; complete events only. */
  dur?: number;
  /** The worker's rank. */
  pid: number;
  /** 0: compute stream, 1: comm stream. */
  tid: number;
  cat?: string;
  /** Instant events: scope, g = global. */
  s?: 'g' | 'p' | 't';
  args?: Record<string, unknown>;
}

/** `trace.json`: opens in Perfetto (ui.perfetto.dev) and chrome://tracing. */
export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms';
}

export const STREAM_TIDS = { compute: 0, comm: 1 } as const;

export interface TraceOptions {
  /** Blank time between consecutive steps, ms (default 5% of the longest step, at least 1 ms). */
  gapMs?: number;
}

const us = (ms: number): number => Math.round(ms * 1e6) / 1e3;

/**
 * Chrome trace of several steps laid out one after another on one time line (each step
 * offset by the ones before it plus a gap): one process per worker (`pid` = rank), one
 * thread per stream (`tid` 0 compute, 1 comm), one complete event per op named
 * `dispatch L1 C2`, with the schedule, step, bytes and direction in `args`; a global instant
 * event marks the start of each step.
 */
export function buildTrace(steps: readonly StepTimeline[], options: TraceOptions = {}): ChromeTrace {
  if (steps.length === 0) throw new ReportError('buildTrace needs at least 1 step, got 0');
  const gap = options.gapMs ?? Math.max(1, 0.05 * Math.max(...steps.map(stepExtentMs)));
  const ranks = Math.max(...steps.map((s) => s.timelines.length));
  const events: TraceEvent[] = [];
  for (let rank = 0; rank < ranks; rank++) {
    const id = steps.find((s) => s.workerIds?.[rank])?.workerIds?.[rank];
    events.push(
      { name: 'process_name', ph: 'M', ts: 0, pid: rank, tid: 0, args: { name: id ? `rank ${rank} (${id})` : `rank ${rank}` } },
      { name: 'process_sort_index', ph: 'M', ts: 0, pid: rank, tid: 0, args: { sort_index: rank } },
    );
    for (const [stream, tid] of Object.entries(STREAM_TIDS)) {
      events.push(
        { name: 'thread_name', ph: 'M', ts: 0, pid: rank, tid, args: { name: stream } },
        { name: 'thread_sort_index', ph: 'M', ts: 0, pid: rank, tid, args: { sort_index: tid } },
      );
    }
  }
  let offset = 0;
  for (const step of steps) {
    const where = { schedule: step.schedule, chunks: step.chunks, ratio: step.ratio, step: step.step };
    events.push({
      name: `${step.schedule} C${step.chunks} step ${step.step}`,
      ph: 'i',
      s: 'g',
      ts: us(offset),
      pid: 0,
      tid: 0,
      cat: step.schedule,
      args: { ...where, step_ms: step.stepMs },
    });
    step.timelines.forEach((ops, rank) => {
      for (const op of ops) {
        events.push({
          name: opLabel(op),
          ph: 'X',
          ts: us(offset + op.startMs),
          dur: us(Math.max(0, op.endMs - op.startMs)),
          pid: rank,
          tid: STREAM_TIDS[op.stream],
          cat: `${step.schedule},${op.direction}`,
          args: { ...where, kind: op.name, layer: op.layer, chunk: op.chunk, micro_batch: op.microBatch ?? 0, direction: op.direction, bytes: op.bytesSent },
        });
      }
    });
    offset += stepExtentMs(step) + gap;
  }
  return { traceEvents: events, displayTimeUnit: 'ms' };
}

/** An op that must appear in a trace: a complete event of this name on this process. */
export interface ExpectedOp {
  pid: number;
  name: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Checks a Chrome trace: every event has name, ph, ts, pid and tid; complete events a
 * non-negative dur; every pid is named by a process_name event and every (pid, tid) by a
 * thread_name event; and, when `expectedOps` is given, each entry is matched by its own
 * complete event (list an op twice to expect it twice).
 * @returns one line per problem; empty when the trace is sound.
 */
export function validateTrace(trace: unknown, expectedOps?: readonly ExpectedOp[]): string[] {
  const problems: string[] = [];
  if (!isObject(trace) || !Array.isArray(trace.traceEvents)) return ['trace: expected an object with a traceEvents array'];
  if (trace.displayTimeUnit !== undefined && trace.displayTimeUnit !== 'ms' && trace.displayTimeUnit !== 'ns') {
    problems.push(`displayTimeUnit: expected "ms" or "ns", got ${JSON.stringify(trace.displayTimeUnit)}`);
  }
  const processes = new Set<number>();
  const threads = new Set<string>();
  const complete: { pid: number; tid: number; name: string; at: string }[] = [];
  trace.traceEvents.forEach((e: unknown, i) => {
    const at = `traceEvents[${i}]`;
    if (!isObject(e)) {
      problems.push(`${at}: expected an object`);
      return;
    }
    if (typeof e.name !== 'string' || e.name === '') problems.push(`${at}: name missing`);
    if (typeof e.ph !== 'string') problems.push(`${at}: ph missing`);
    if (!isTime(e.ts)) problems.push(`${at}: ts=${String(e.ts)} is not a number (µs)`);
    if (!isInt(e.pid)) problems.push(`${at}: pid=${String(e.pid)} is not an integer`);
    if (!isInt(e.tid)) problems.push(`${at}: tid=${String(e.tid)} is not an integer`);
    if (e.ph === 'M') {
      const named = isObject(e.args) && typeof e.args.name === 'string';
      if (e.name === 'process_name') {
        if (!named) problems.push(`${at}: process_name without args.name`);
        processes.add(e.pid as number);
      } else if (e.name === 'thread_name') {
        if (!named) problems.push(`${at}: thread_name without args.name`);
        threads.add(`${String(e.pid)}/${String(e.tid)}`);
      }
    } else if (e.ph === 'X') {
      if (!isTime(e.dur) || e.dur < 0) problems.push(`${at} (${String(e.name)}): dur=${String(e.dur)} must be a number >= 0 (µs)`);
      if (isTime(e.ts) && e.ts < 0) problems.push(`${at} (${String(e.name)}): ts=${e.ts} is negative`);
      complete.push({ pid: e.pid as number, tid: e.tid as number, name: String(e.name), at });
    }
  });
  for (const e of complete) {
    if (!processes.has(e.pid)) problems.push(`${e.at} (${e.name}): pid ${e.pid} has no process_name event`);
    if (!threads.has(`${e.pid}/${e.tid}`)) problems.push(`${e.at} (${e.name}): pid ${e.pid} tid ${e.tid} has no thread_name event`);
  }
  if (expectedOps) {
    const available = new Map<string, number>();
    for (const e of complete) available.set(`${e.pid}/${e.name}`, (available.get(`${e.pid}/${e.name}`) ?? 0) + 1);
    const missing = new Map<string, number>();
    for (const op of expectedOps) {
      const key = `${op.pid}/${op.name}`;
      const left = available.get(key) ?? 0;
      if (left > 0) available.set(key, left - 1);
      else missing.set(key, (missing.get(key) ?? 0) + 1);
    }
    for (const [key, count] of missing) {
      const [pid, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
      problems.push(`op "${name}" on pid ${pid}: ${count} expected event${count === 1 ? '' : 's'} missing`);
    }
  }
  return problems;
}
