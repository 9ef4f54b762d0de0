import { describe, expect, it } from 'vitest';
import { buildSchedule, chunkTokenRange, formatSchedule, ScheduleError, type Op } from '../src';

const computeOrder = (ops: Op[]) =>
  ops.filter((op) => op.stream === 'compute').map((op) => `${op.kind}${op.layer >= 0 ? op.layer : ''}${op.chunk >= 0 ? `.${op.chunk}` : ''}`);

describe('buildSchedule', () => {
  it('lists every op after the ops it waits for', () => {
    for (const ops of [buildSchedule({ kind: 'naive', layers: 3, chunks: 1 }), buildSchedule({ kind: 'overlapped', layers: 2, chunks: 4 })]) {
      for (const op of ops) for (const dep of op.deps) expect(dep).toBeLessThan(op.id);
    }
  });

  it('naive: compute waits for each all-to-all of a layer before going on', () => {
    const ops = buildSchedule({ kind: 'naive', layers: 1, chunks: 4 });
    expect(computeOrder(ops)).toEqual([
      'begin', 'route0', 'experts0.0', 'shared0', 'post0', 'loss', 'post_bwd0', 'experts_bwd0.0', 'shared_bwd0', 'route_bwd0', 'grads', 'update',
    ]);
    const shared = ops.find((op) => op.kind === 'shared')!;
    expect(ops[shared.deps[0]!]!.kind).toBe('combine');
  });

  it('overlapped: shared experts run while chunk 0 is dispatched, chunks pipeline', () => {
    const ops = buildSchedule({ kind: 'overlapped', layers: 1, chunks: 3 });
    expect(computeOrder(ops).slice(0, 7)).toEqual(['begin', 'route0', 'shared0', 'experts0.0', 'experts0.1', 'experts0.2', 'post0']);
    const shared = ops.find((op) => op.kind === 'shared')!;
    expect(shared.deps.map((d) => ops[d]!.kind)).toEqual(['route']);
    // chunk 1's experts wait only for chunk 1's dispatch, not for chunk 0's combine
    const experts1 = ops.find((op) => op.kind === 'experts' && op.chunk === 1)!;
    expect(experts1.deps.map((d) => `${ops[d]!.kind}.${ops[d]!.chunk}`)).toEqual(['dispatch.1']);
    // every chunk's dispatch is issued once the layer is routed, in chunk order
    const dispatches = ops.filter((op) => op.kind === 'dispatch');
    expect(dispatches.map((op) => op.chunk)).toEqual([0, 1, 2]);
    for (const d of dispatches) expect(d.deps.map((id) => ops[id]!.kind)).toEqual(['route']);
  });

  it('overlapped backward: shared expert backward runs while output gradients travel', () => {
    const ops = buildSchedule({ kind: 'overlapped', layers: 1, chunks: 2 });
    const order = computeOrder(ops);
    expect(order.indexOf('shared_bwd0')).toBeLessThan(order.indexOf('experts_bwd0.0'));
  });

  it('has one dispatch, combine and both backward all-to-alls per layer and chunk', () => {
    const ops = buildSchedule({ kind: 'overlapped', layers: 2, chunks: 3 });
    for (const kind of ['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd'] as const) {
      expect(ops.filter((op) => op.kind === kind)).toHaveLength(6);
    }
    expect(ops.filter((op) => op.kind === 'allreduce')).toHaveLength(1);
  });

  it('refuses impossible settings with the field named', () => {
    expect(() => buildSchedule({ kind: 'overlapped', layers: 2, chunks: 0 })).toThrow(ScheduleError);
    expect(() => buildSchedule({ kind: 'overlapped', layers: 2, chunks: 0 })).toThrow(/chunks=0.*schedule\.chunks/);
    expect(() => buildSchedule({ kind: 'naive', layers: 0, chunks: 1 })).toThrow(/layers=0/);
  });

  it('prints as a readable list', () => {
    const text = formatSchedule(buildSchedule({ kind: 'overlapped', layers: 1, chunks: 2 }));
    expect(text).toMatch(/experts L0 C1\s+<- dispatch L0 C1/);
  });
});

describe('chunkTokenRange', () => {
  it('covers every token exactly once, in order', () => {
    for (const [tokens, chunks] of [[10, 3], [7, 7], [5, 8], [0, 2]] as const) {
      let next = 0;
      for (let c = 0; c < chunks; c++) {
        const r = chunkTokenRange(tokens, chunks, c);
        expect(r.begin).toBe(next);
        next = r.end;
      }
      expect(next).toBe(tokens);
    }
  });
});
