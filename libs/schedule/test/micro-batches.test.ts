import { describe, expect, it } from 'vitest';
import {
  buildSchedule,
  formatSchedule,
  resolveStepSettings,
  stepOptionsToWire,
  stepSettingsFromWire,
  StepSettingsError,
  type Op,
} from '../src';

const label = (op: Op) => `${op.kind}${op.layer >= 0 ? op.layer : ''}${op.chunk >= 0 ? `.${op.chunk}` : ''}${op.microBatch >= 0 ? `m${op.microBatch}` : ''}`;
const compute = (ops: Op[]) => ops.filter((op) => op.stream === 'compute').map(label);

describe('micro-batches in a step', () => {
  it('naive and overlapped run the micro-batches one after another, one update at the end', () => {
    for (const kind of ['naive', 'overlapped']) {
      const ops = buildSchedule({ kind, layers: 2, chunks: 2, microBatches: 3 });
      const order = compute(ops);
      // every op of micro-batch m comes before any op of micro-batch m+1
      const mbs = ops.filter((op) => op.microBatch >= 0).map((op) => op.microBatch);
      expect(mbs).toEqual([...mbs].sort((a, b) => a - b));
      expect(order.slice(-2)).toEqual(['grads', 'update']);
      expect(ops.filter((op) => op.kind === 'update')).toHaveLength(1);
      expect(ops.filter((op) => op.kind === 'loss').map((op) => op.microBatch)).toEqual([0, 1, 2]);
      // grads waits for every micro-batch's last backward
      const grads = ops.find((op) => op.kind === 'grads')!;
      expect(grads.deps.map((d) => label(ops[d]!))).toEqual(['route_bwd0m0', 'route_bwd0m1', 'route_bwd0m2']);
    }
  });

  it('one micro-batch gives the same list as before micro-batches existed', () => {
    const one = buildSchedule({ kind: 'overlapped', layers: 2, chunks: 2, microBatches: 1 });
    expect(buildSchedule({ kind: 'overlapped', layers: 2, chunks: 2 })).toEqual(one);
    expect(one.filter((op) => op.kind !== 'grads' && op.kind !== 'allreduce' && op.kind !== 'update').every((op) => op.microBatch === 0)).toBe(true);
  });

  it('refuses a micro-batch count that is not a positive integer, naming the field', () => {
    expect(() => buildSchedule({ kind: 'naive', layers: 1, chunks: 1, microBatches: 0 })).toThrow(/microBatches=0.*schedule\.microBatches/);
    expect(() => resolveStepSettings({ microBatches: 1.5 })).toThrow(StepSettingsError);
    expect(() => resolveStepSettings({ microBatches: 65 })).toThrow(/microBatches=65 must be an integer from 1 to 64/);
    expect(resolveStepSettings({}).microBatches).toBe(1);
  });

  it('crosses the wire: micro_batches travels, 0 (an older scheduler) means 1', () => {
    const settings = resolveStepSettings({ schedule: 'fb-overlap', chunks: 2, microBatches: 4 });
    expect(stepSettingsFromWire(stepOptionsToWire(settings))).toEqual(settings);
    expect(stepSettingsFromWire({ scheduleName: 'naive', microBatches: 0 }).microBatches).toBe(1);
  });
});

describe('fb-overlap', () => {
  it("F(0), then F(i) paired with B(i-1), then B(M-1); every op after the ops it waits for", () => {
    const ops = buildSchedule({ kind: 'fb-overlap', layers: 2, chunks: 1, microBatches: 3 });
    for (const op of ops) for (const dep of op.deps) expect(dep).toBeLessThan(op.id);
    const losses = ops.filter((op) => op.kind === 'loss').map((op) => op.id);
    const firstBackward = (mb: number) => ops.find((op) => op.microBatch === mb && op.kind === 'post_bwd')!.id;
    const lastBackward = (mb: number) => ops.findLast((op) => op.microBatch === mb && op.kind === 'route_bwd')!.id;
    const begin = (mb: number) => ops.find((op) => op.microBatch === mb && op.kind === 'begin')!.id;
    // B(0) starts after F(1) began and ends before F(1)'s loss: the pair interleaves
    expect(begin(1)).toBeLessThan(firstBackward(0));
    expect(lastBackward(0)).toBeLessThan(losses[1]!);
    expect(begin(2)).toBeLessThan(firstBackward(1));
    expect(lastBackward(1)).toBeLessThan(losses[2]!);
    // B(2) runs alone after F(2)'s loss
    expect(firstBackward(2)).toBeGreaterThan(losses[2]!);
  });

  it("within a pair, each micro-batch's all-to-all is issued before the other micro-batch's compute that can hide it", () => {
    const ops = buildSchedule({ kind: 'fb-overlap', layers: 2, chunks: 1, microBatches: 2 });
    const pair = ops.filter((op) => op.id > ops.find((o) => o.kind === 'loss')!.id && op.id < ops.findLast((o) => o.kind === 'loss')!.id);
    const at = (text: string) => pair.findIndex((op) => label(op) === text);
    // layer unit 0: F(1) layer 0 with B(0) layer 1
    expect(at('combine_bwd1.0m0')).toBeLessThan(at('route0m1')); // B's gradients travel under F's attention
    expect(at('dispatch0.0m1')).toBeLessThan(at('experts_dgrad1.0m0')); // F's dispatch travels under B's expert backward
    expect(at('dispatch_bwd1.0m0')).toBeLessThan(at('experts0.0m1')); // B's input gradients travel under F's experts
    expect(at('combine0.0m1')).toBeLessThan(at('route_bwd1m0')); // F's combine travels under B's router backward
    // the compute op that follows each all-to-all does not wait for it
    const next = (text: string) => pair.slice(at(text) + 1).find((op) => op.stream === 'compute')!;
    for (const a2a of ['combine_bwd1.0m0', 'dispatch0.0m1', 'dispatch_bwd1.0m0', 'combine0.0m1']) {
      expect(next(a2a).deps).not.toContain(pair[at(a2a)]!.id);
    }
  });

  it.each([
    [1, 2],
    [2, 3],
  ])("with %i chunk(s), M=%i: each chunk's weight gradients come after its input gradients left, and only the update waits for them", (chunks, microBatches) => {
    const ops = buildSchedule({ kind: 'fb-overlap', layers: 2, chunks, microBatches });
    const dgrads = ops.filter((op) => op.kind === 'experts_dgrad');
    const wgrads = ops.filter((op) => op.kind === 'experts_wgrad');
    expect(ops.some((op) => op.kind === 'experts_bwd')).toBe(false);
    expect(dgrads).toHaveLength(2 * chunks * microBatches);
    expect(wgrads.map(label).sort()).toEqual(dgrads.map((op) => label(op).replace('dgrad', 'wgrad')).sort());
    const grads = ops.find((op) => op.kind === 'grads')!;
    for (const w of wgrads) {
      const same = (op: Op) => op.microBatch === w.microBatch && op.layer === w.layer && op.chunk === w.chunk;
      const dgrad = dgrads.find(same)!;
      const sent = ops.find((op) => op.kind === 'dispatch_bwd' && same(op))!;
      expect(w.deps, label(w)).toEqual([dgrad.id]);
      // deferred: the input gradients are on their way before the weight gradients start
      expect(sent.id, label(w)).toBeLessThan(w.id);
      expect(sent.deps).toEqual([dgrad.id]);
      // nothing but the step's gradient gathering waits for them
      expect(ops.filter((op) => op.deps.includes(w.id))).toEqual([grads]);
      // and they come before the router backward of their layer
      const routeBackward = ops.find((op) => op.kind === 'route_bwd' && op.microBatch === w.microBatch && op.layer === w.layer)!;
      expect(w.id).toBeLessThan(routeBackward.id);
    }
  });

  it('naive and overlapped keep one expert backward per chunk', () => {
    for (const kind of ['naive', 'overlapped']) {
      const ops = buildSchedule({ kind, layers: 2, chunks: 2, microBatches: 2 });
      expect(ops.filter((op) => op.kind === 'experts_dgrad' || op.kind === 'experts_wgrad')).toEqual([]);
    }
  });

  it('with chunks: every chunk of both micro-batches has its own all-to-alls', () => {
    const ops = buildSchedule({ kind: 'fb-overlap', layers: 2, chunks: 2, microBatches: 4 });
    for (const kind of ['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd'] as const) {
      expect(ops.filter((op) => op.kind === kind)).toHaveLength(2 * 2 * 4);
    }
    expect(ops.filter((op) => op.kind === 'allreduce')).toHaveLength(1);
  });

  it('prints each micro-batch', () => {
    expect(formatSchedule(buildSchedule({ kind: 'fb-overlap', layers: 1, chunks: 1, microBatches: 2 }))).toMatch(/experts L0 C0 M1\s+<- dispatch L0 C0 M1/);
  });
});
