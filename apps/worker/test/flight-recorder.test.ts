import { describe, expect, it } from 'vitest';
import { FlightRecorder } from '../src/schedule/flight-recorder';
import type { Op } from '@moe/schedule';

const op = (id: number, kind: Op['kind'], layer = 0, chunk = 0): Op =>
  ({ id, kind, layer, chunk, stream: kind === 'dispatch' || kind === 'combine' ? 'comm' : 'compute', deps: [], direction: 'forward', microBatch: 0 }) as Op;

describe('FlightRecorder', () => {
  it('keeps the last N ops oldest first, running ones included, failed ones with their error', () => {
    const recorder = new FlightRecorder(3);
    const a = recorder.opStart(1, op(0, 'dispatch'));
    recorder.opEnd(a);
    const b = recorder.opStart(1, op(1, 'experts'));
    recorder.opEnd(b, new Error('boom'));
    recorder.opStart(2, op(2, 'dispatch', 1));
    recorder.opStart(2, op(3, 'combine', 1, 1));
    const entries = recorder.entries();
    expect(entries.map((e) => [e.step, e.kind, e.layer, e.chunk, e.state])).toEqual([
      [1, 'experts', 0, 0, 'failed'],
      [2, 'dispatch', 1, 0, 'running'],
      [2, 'combine', 1, 1, 'running'],
    ]);
    expect(entries[0]!.error).toBe('boom');
    expect(entries[1]!.endMs).toBe(0);
    expect(entries[2]!.stream).toBe('comm');
    expect(recorder.lastStep).toBe(2);
  });
});
