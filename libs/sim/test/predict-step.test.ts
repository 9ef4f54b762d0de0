import { describe, expect, it } from 'vitest';
import { buildSchedule } from '@moe/schedule';
import { CostModel, estimateStep, predictStep, resolveModeledModel } from '../src';

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

  it('host transport time measured elsewhere is added per frame sent, and the control plane per step', () => {
    const c = costs(1);
    const ops = buildSchedule({ kind: 'naive', layers: 2, chunks: 1 });
    const plain = predictStep({ ...base, costs: c, ops });
    // Every exchange sends one frame to each of 3 peers: 1 ms of host time at 1/3 ms a frame.
    const host = predictStep({ ...base, costs: c, ops, hostMsPerFrame: 1 / 3, hostMsPerStep: 5 });
    // 8 all-to-alls and the all-reduce's 2 exchanges, each on the critical path of a naive step, then the step's own.
    expect(host.stepMs).toBeCloseTo(plain.stepMs + 8 + 2 + 5, 6);
  });
});
