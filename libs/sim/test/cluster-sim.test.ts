import { describe, expect, it } from 'vitest';
import { DEEPSEEK_V3_PRESET, simulateCluster, trainingCost, ClusterConfigError, type ClusterSimConfig } from '../src';

const v3 = DEEPSEEK_V3_PRESET.config;
/** DeepSeek-V3's model on a smaller cluster: 4 pipeline ranks x 64 GPUs, 16 layers, 8 micro-batches. */
const small: ClusterSimConfig = {
  ...v3,
  model: { ...v3.model, layers: 16 },
  layout: { ...v3.layout, gpus: 256, pipelineRanks: 4 },
  microBatches: 8,
};

describe('simulateCluster', () => {
  it('DeepSeek-V3 preset: the step trains 15360 sequences of 4096 tokens; mirrored DualPipe ranks see the same step', () => {
    const r = simulateCluster(v3);
    expect(r.tokensPerStep).toBe(15360 * 4096);
    expect(r.stageLayers.flat()).toEqual(Array.from({ length: 61 }, (_, i) => i));
    for (let rank = 0; rank < 8; rank++) {
      expect(r.ranks[rank]!.computeMs).toBeCloseTo(r.ranks[15 - rank]!.computeMs, 6);
    }
    for (const f of r.ranks) expect(f.computeMs + f.exposedCommMs + f.bubbleMs).toBeCloseTo(r.stepMs, 6);
  });

  it('each schedule runs the same work; DualPipe, overlapping forward and backward, hides communication that 1F1B exposes', () => {
    // 40 micro-batches: most of DualPipe's chunks run in overlapped forward-backward pairs.
    const by = Object.fromEntries(['1f1b', 'zb1p', 'dualpipe'].map((schedule) => [schedule, simulateCluster({ ...small, microBatches: 40, schedule })]));
    for (const s of ['zb1p', 'dualpipe']) expect(by[s]!.modelFlopsPerStep / by['1f1b']!.modelFlopsPerStep).toBeCloseTo(1, 12);
    const exposed = (s: string) => by[s]!.ranks.reduce((sum, f) => sum + f.exposedCommMs, 0);
    expect(exposed('dualpipe')).toBeLessThan(exposed('1f1b'));
    expect(by.dualpipe!.stepMs).toBeLessThan(by['1f1b']!.stepMs);
  });

  it('communication taking SMs slows the step; a slower NIC slows it more', () => {
    const base = simulateCluster({ ...small, commSmShare: 0 }).stepMs;
    expect(simulateCluster({ ...small, commSmShare: 20 / 132 }).stepMs).toBeGreaterThan(base);
    const slowNic = { ...DEEPSEEK_V3_PRESET.config, profile: 'A100' } as ClusterSimConfig;
    const a100 = simulateCluster({ ...small, profile: slowNic.profile, model: { ...small.model, gemmDtype: 'bf16' } });
    expect(a100.ranks.some((f) => f.exposedCommMs > 0)).toBe(true);
  });

  it('the work does not depend on the GPU count: one GPU stands for its stage', () => {
    const a = simulateCluster(small);
    const b = simulateCluster({ ...small, layout: { ...small.layout, gpus: 1024 } });
    expect(b.simulator.tasks).toBe(a.simulator.tasks);
    expect(b.tokensPerStep).toBe(4 * a.tokensPerStep);
  });

  it('refuses a layout that does not divide, naming the numbers', () => {
    expect(() => simulateCluster({ ...small, layout: { ...small.layout, gpus: 250 } })).toThrow(ClusterConfigError);
    expect(() => simulateCluster({ ...small, layout: { ...small.layout, expertParallel: 48 } })).toThrow(/not a multiple of ep=48/);
  });
});

describe('trainingCost', () => {
  it('GPU-hours are tokens over per-GPU throughput; dollars at the price', () => {
    const c = trainingCost(1000, 2048, 3.6e9, 2);
    expect(c.gpuHours).toBeCloseTo(1000, 9);
    expect(c.dollars).toBeCloseTo(2000, 9);
    expect(c.days).toBeCloseTo(1000 / 2048 / 24, 9);
  });
});
