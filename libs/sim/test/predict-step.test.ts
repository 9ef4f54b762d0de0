import { describe, expect, it } from 'vitest';
import { buildSchedule } from '@moe/schedule';
import { CostModel, estimateStep, NO_HOST_COSTS, predictStep, resolveModeledModel, runEngine, stepTasks } from '../src';

const model = resolveModeledModel({ hiddenSize: 256, expertFfnSize: 512, routedExperts: 8, vocabSize: 1024, seqLen: 512 });
const costs = (computeScale: number) => new CostModel(model, 'H800', { worldSize: 4, layers: 2, computeScale, dilation: 2000, accumulationSteps: 16 });
const base = { tokensPerRank: 256, topK: 4, worldSize: 4, nodeSize: 2, latencyScale: 1, dispatchRowBytes: 256 * 4, combineRowBytes: 256 * 4, allReduceValues: 0 };

describe('predictStep', () => {
  it('naive: compute and all-to-all time agree with the closed-form estimate, and nothing overlaps', () => {
    const c = costs(1);
    const p = predictStep({ ...base, costs: c, ops: buildSchedule({ kind: 'naive', layers: 2, chunks: 1 }) });
    const e = estimateStep({ costs: c, tokens: 256, topK: 4, nodeSize: 2 });
    expect(p.computeMs).toBeCloseTo(e.computeMs, 6);
    expect(p.commMs).toBeCloseTo(e.commMs, 6);
    expect(p.exposedCommMs).toBeCloseTo(p.commMs, 6);
    expect(p.stepMs).toBeGreaterThanOrEqual(p.computeMs + p.commMs);
  });

  it('overlapped: the same all-to-alls hide under the experts, so the step is shorter than naive when compute is comparable to comm', () => {
    const c = costs(0.3);
    const naive = predictStep({ ...base, costs: c, ops: buildSchedule({ kind: 'naive', layers: 2, chunks: 1 }) });
    const overlapped = predictStep({ ...base, costs: c, ops: buildSchedule({ kind: 'overlapped', layers: 2, chunks: 2 }) });
    expect(overlapped.exposedCommMs).toBeLessThan(naive.exposedCommMs);
    expect(overlapped.stepMs).toBeLessThan(naive.stepMs);
  });

  it('host costs measured elsewhere: each compute op\'s launch and overshoot, each all-to-all\'s latency, the all-reduce\'s, and the control plane once a step', () => {
    const c = costs(1);
    const ops = buildSchedule({ kind: 'naive', layers: 2, chunks: 1 });
    const plain = predictStep({ ...base, costs: c, ops });
    const host = { ...NO_HOST_COSTS, computeLaunchMs: 0.5, computeOpMs: 0.25, computeOpShare: 0.1, allToAllMs: 2, allReduceMs: 3, stepMs: 5 };
    const p = predictStep({ ...base, costs: c, ops, host });
    const computeOps = ops.filter((o) => o.stream === 'compute').length;
    // A naive step is one chain: every term is on it. The all-to-alls: 4 a layer.
    expect(p.stepMs).toBeCloseTo(plain.stepMs + computeOps * (0.5 + 0.25) + 0.1 * plain.computeMs + 8 * 2 + 3 + 5, 6);
    // the launch is not compute: the stream's busy time has the overshoot only
    expect(p.computeMs).toBeCloseTo(plain.computeMs * 1.1 + computeOps * 0.25, 6);
  });

  it('the data plane\'s bytes follow each frame\'s wire on the host port: an all-to-all takes the larger of its wire and its host bytes, not the sum', () => {
    const c = costs(1);
    const ops = buildSchedule({ kind: 'naive', layers: 1, chunks: 1 });
    const { tasks, bytesSent } = stepTasks({ ...base, costs: c, ops });
    const dispatch = ops.find((o) => o.kind === 'dispatch')!;
    const alone = (perByteMs: number) => runEngine([{ ...stepTasks({ ...base, costs: c, ops, host: { ...NO_HOST_COSTS, perByteMs } }).tasks[dispatch.id]!, deps: [] }], { devices: 1 }).makespanMs;
    const wire = alone(0);
    expect(bytesSent[dispatch.id]).toBe(3 * ((256 * 4) / 4) * 256 * 4);
    expect(tasks[dispatch.id]!.wire).toHaveLength(3); // one frame a peer
    // a slow data plane: 3 frames one after the other on the host, after the first leaves its port
    const slow = (10 * wire) / bytesSent[dispatch.id]!;
    expect(alone(slow)).toBeGreaterThan(10 * wire);
    expect(alone(slow)).toBeLessThan(11 * wire);
    // a fast one hides under the wire but for the last frame's share
    expect(alone(slow / 100)).toBeLessThan(wire * 1.1);
  });

  it('the embedding backward (grads) covers the whole step\'s tokens once, as the sim backend models it', () => {
    const c = costs(1);
    const ops = (m: number) => buildSchedule({ kind: 'naive', layers: 2, chunks: 1, microBatches: m });
    const grads = (m: number) => {
      const o = ops(m);
      return stepTasks({ ...base, costs: c, ops: o }).tasks[o.find((x) => x.kind === 'grads')!.id]!.ms;
    };
    expect(grads(4)).toBeCloseTo(c.ms(c.grads(256)), 9);
    expect(grads(1)).toBeCloseTo(grads(4), 9);
  });
});
