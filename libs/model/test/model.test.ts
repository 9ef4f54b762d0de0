/**
 * The whole model: its gradients match finite differences, and splitting the global batch by
 * sequences across "workers" (global divisors, gradients summed) reproduces the single pass.
 */
import { describe, expect, it } from 'vitest';
import {
  denseParams,
  expertForward,
  forwardBackward,
  gatherRows,
  initParams,
  MarkovChain,
  parseModelConfig,
  rmsNorm,
  Rng,
  routedExpertParams,
  type Batch,
  type ModelConfig,
  type ModelParams,
} from '../src/index';
import { expectGradient } from './support/gradcheck';

const small = (overrides: Partial<ModelConfig>) =>
  parseModelConfig({
    vocabSize: 6,
    hiddenSize: 8,
    expertFfnSize: 8,
    routedExperts: 4,
    sharedExperts: 1,
    topK: 2,
    layers: 2,
    auxLossAlpha: 0.1,
    ...overrides,
  });

function namedAll(p: ModelParams) {
  return [...denseParams(p), ...routedExpertParams(p)];
}

function slice(batch: Batch, first: number, count: number): Batch {
  const L = batch.seqLen;
  return {
    inputs: batch.inputs.slice(first * L, (first + count) * L),
    targets: batch.targets.slice(first * L, (first + count) * L),
    sequences: count,
    seqLen: L,
  };
}

describe('forwardBackward gradients match finite differences of lossSum + auxLoss', () => {
  it.each([
    ['softmax', 'aux'],
    ['sigmoid', 'bias'],
  ] as const)('%s scores, balancing %s', (scoreFunction, balancing) => {
    const config = small({ scoreFunction, balancing });
    const params = initParams(config);
    const rng = new Rng(21);
    params.layers.forEach((l) => l.routerBias.data.forEach((_, e) => (l.routerBias.data[e] = balancing === 'bias' ? rng.normal() * 0.05 : 0)));
    const batch = new MarkovChain(6, 3).batch(0, 2, 3);
    const divisors = { tokens: 6, sequences: 2 };
    const result = forwardBackward(params, batch, config, divisors);
    if (balancing === 'aux') expect(result.auxLoss).toBeGreaterThan(0);
    const loss = () => {
      const r = forwardBackward(params, batch, config, divisors);
      return r.lossSum + r.auxLoss;
    };
    const grads = new Map(namedAll(result.grads).map((q) => [q.name, q.tensor]));
    const checked = [
      'embedding',
      'layers.0.norm',
      'layers.0.router',
      'layers.1.router',
      'layers.0.shared.0.w1',
      'layers.1.shared.0.w2',
      'final_norm',
      'head',
      'layers.0.experts.1.w1',
      'layers.1.experts.2.w3',
      'layers.1.experts.0.w2',
    ];
    for (const q of namedAll(params).filter((q) => checked.includes(q.name))) {
      const g = grads.get(q.name)!;
      if (g.data.every((v) => v === 0)) continue; // an expert that got no tokens in this tiny batch
      expectGradient(q.name, q.tensor.data, g.data, loss, { eps: 2e-3, samples: 8, rng });
    }
    expect(Array.from(grads.get('layers.0.router_bias')!.data).every((v) => v === 0)).toBe(true);
  });
});

describe('splitting the global batch by sequences', () => {
  it('per-worker passes with global divisors add up to the single pass (loss, aux loss, gradients, counts)', () => {
    const config = small({ balancing: 'aux', hiddenSize: 16, expertFfnSize: 16, routedExperts: 8 });
    const params = initParams(config);
    const batch = new MarkovChain(6, 4).batch(0, 5, 4);
    const divisors = { tokens: 20, sequences: 5 };
    const whole = forwardBackward(params, batch, config, divisors);
    const parts = [slice(batch, 0, 2), slice(batch, 2, 3)].map((b) => forwardBackward(params, b, config, divisors));
    expect(parts[0]!.lossSum + parts[1]!.lossSum).toBeCloseTo(whole.lossSum, 6);
    expect(parts[0]!.auxLoss + parts[1]!.auxLoss).toBeCloseTo(whole.auxLoss, 8);
    whole.counts.forEach((c, l) => expect(Array.from(c)).toEqual(Array.from(c, (_, e) => parts[0]!.counts[l]![e]! + parts[1]!.counts[l]![e]!)));
    const a = namedAll(whole.grads);
    const b0 = namedAll(parts[0]!.grads);
    const b1 = namedAll(parts[1]!.grads);
    a.forEach((q, i) => {
      for (let j = 0; j < q.tensor.data.length; j++) {
        expect(Math.abs(q.tensor.data[j]! - (b0[i]!.tensor.data[j]! + b1[i]!.tensor.data[j]!)), q.name).toBeLessThan(1e-6);
      }
    });
  });

  it('an expert applied to a gathered subset of token rows gives bitwise the rows it gives for all tokens', () => {
    const config = small({});
    const params = initParams(config);
    const batch = new MarkovChain(6, 5).batch(0, 4, 8);
    const x = rmsNorm(gatherRows(params.embedding, batch.inputs), params.layers[0]!.norm, config.rmsEps).y;
    const expert = params.experts[0]![2]!;
    const rows = [31, 0, 7, 7, 12];
    expect(expertForward(expert, gatherRows(x, rows)).y.data).toEqual(gatherRows(expertForward(expert, x).y, rows).data);
  });
});
