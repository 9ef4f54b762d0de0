import { describe, expect, it } from 'vitest';
import { buildTrace, opLabel, validateTrace, type ExpectedOp, type StepTimeline, type TraceEvent } from '../src';
import { scheduleOps, simulateStep, stepTimeOf } from './fixtures/report-timelines';

const RANKS = 3;
const LAYERS = 2;

function step(schedule: 'naive' | 'overlapped', chunks: number, n: number): StepTimeline {
  const timelines = simulateStep({ schedule, chunks, layers: LAYERS, ranks: RANKS, ratio: 1 });
  return { schedule, chunks, ratio: 1, step: n, stepMs: stepTimeOf(timelines), timelines, workerIds: ['w-a', 'w-b', 'w-c'] };
}

/** Every op of the schedule, once per rank: what the trace of one step must hold. */
function expectedOps(schedule: 'naive' | 'overlapped', chunks: number): ExpectedOp[] {
  const ops = scheduleOps({ schedule, layers: LAYERS, chunks });
  return Array.from({ length: RANKS }, (_, pid) => ops.map((op) => ({ pid, name: opLabel({ name: op.kind, layer: op.layer, chunk: op.chunk }) }))).flat();
}

describe('buildTrace', () => {
  const steps = [step('naive', 1, 4), step('overlapped', 3, 4)];
  const trace = buildTrace(steps);
  const complete = trace.traceEvents.filter((e) => e.ph === 'X');

  it('passes the structural check with every op of both steps present', () => {
    expect(validateTrace(trace, [...expectedOps('naive', 1), ...expectedOps('overlapped', 3)])).toEqual([]);
    expect(trace.displayTimeUnit).toBe('ms');
  });

  it('has one complete event per op, in µs, named with layer and chunk', () => {
    const ops = steps.flatMap((s) => s.timelines.flat());
    expect(complete).toHaveLength(ops.length);
    const dispatch = steps[1]!.timelines[0]!.find((op) => op.name === 'dispatch' && op.layer === 1 && op.chunk === 2)!;
    const event = complete.find((e) => e.pid === 0 && e.name === 'dispatch L1 C2')!;
    expect(event.dur).toBeCloseTo((dispatch.endMs - dispatch.startMs) * 1000, 2);
    expect(event.tid).toBe(1);
    expect(event.args).toMatchObject({ schedule: 'overlapped', chunks: 3, step: 4, bytes: dispatch.bytesSent, direction: 'forward' });
    expect(complete.every((e) => e.dur! >= 0)).toBe(true);
  });

  it('names one process per rank and one thread per stream', () => {
    const meta = trace.traceEvents.filter((e) => e.ph === 'M');
    const processNames = meta.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args!.name]);
    expect(processNames).toEqual([
      [0, 'rank 0 (w-a)'],
      [1, 'rank 1 (w-b)'],
      [2, 'rank 2 (w-c)'],
    ]);
    const threads = meta.filter((e) => e.name === 'thread_name' && e.pid === 2).map((e) => [e.tid, e.args!.name]);
    expect(threads).toEqual([
      [0, 'compute'],
      [1, 'comm'],
    ]);
    expect(new Set(complete.map((e) => e.pid))).toEqual(new Set([0, 1, 2]));
    for (const e of complete) expect(e.tid).toBe(e.name.startsWith('dispatch') || e.name.startsWith('combine') || e.name === 'allreduce' ? 1 : 0);
  });

  it('lays the steps one after another: the second starts after the first ends', () => {
    const of = (schedule: string) => complete.filter((e) => (e.args as { schedule: string }).schedule === schedule);
    const firstEnd = Math.max(...of('naive').map((e) => e.ts + e.dur!));
    const secondStart = Math.min(...of('overlapped').map((e) => e.ts));
    expect(secondStart).toBeGreaterThan(firstEnd);
    const markers = trace.traceEvents.filter((e) => e.ph === 'i').map((e) => e.name);
    expect(markers).toEqual(['naive C1 step 4', 'overlapped C3 step 4']);
  });
});

describe('validateTrace', () => {
  const trace = buildTrace([step('naive', 1, 0)]);
  const withEvents = (events: TraceEvent[]) => ({ ...trace, traceEvents: [...trace.traceEvents, ...events] });

  it('reports a missing op, naming it and the process', () => {
    const expected = [...expectedOps('naive', 1), { pid: 1, name: 'dispatch L7 C0' }];
    expect(validateTrace(trace, expected)).toEqual(['op "dispatch L7 C0" on pid 1: 1 expected event missing']);
  });

  it('counts an op expected twice as two events', () => {
    const twice = [...expectedOps('naive', 1), ...expectedOps('naive', 1)];
    expect(validateTrace(trace, twice)).toHaveLength(RANKS * scheduleOps({ schedule: 'naive', layers: LAYERS, chunks: 1 }).length);
  });

  it('reports negative durations, undeclared processes and threads, and missing fields', () => {
    const problems = validateTrace(
      withEvents([
        { name: 'experts L0', ph: 'X', ts: 5, dur: -1, pid: 0, tid: 0 },
        { name: 'experts L0', ph: 'X', ts: 5, dur: 1, pid: 9, tid: 0 },
        { name: 'experts L0', ph: 'X', ts: 5, dur: 1, pid: 0, tid: 5 },
        { name: '', ph: 'X', ts: Number.NaN, dur: 1, pid: 0, tid: 0 } as TraceEvent,
      ]),
    );
    const n = trace.traceEvents.length;
    expect(problems).toEqual([
      `traceEvents[${n}] (experts L0): dur=-1 must be a number >= 0 (µs)`,
      `traceEvents[${n + 3}]: name missing`,
      `traceEvents[${n + 3}]: ts=NaN is not a number (µs)`,
      `traceEvents[${n + 1}] (experts L0): pid 9 has no process_name event`,
      `traceEvents[${n + 1}] (experts L0): pid 9 tid 0 has no thread_name event`,
      `traceEvents[${n + 2}] (experts L0): pid 0 tid 5 has no thread_name event`,
    ]);
    expect(validateTrace({ events: [] })).toEqual(['trace: expected an object with a traceEvents array']);
  });
});
