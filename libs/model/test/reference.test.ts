/**
 * The reference trainer: on TINY_MODEL / TINY_TRAIN the loss falls to within 10% of the data's
 * entropy (the best achievable loss) in a few seconds, and two runs are identical.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  applyUpdate,
  checksumTensors,
  forwardBackward,
  initParams,
  MarkovChain,
  optimizerOrder,
  parseModelConfig,
  TINY_MODEL,
  TINY_TRAIN,
  trainReference,
  zerosLikeParams,
  type ReferenceResult,
} from '../src/index';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('trainReference on TINY_MODEL / TINY_TRAIN', () => {
  let run: ReferenceResult;
  let seconds = 0;
  beforeAll(() => {
    const started = performance.now();
    run = trainReference(TINY_MODEL, TINY_TRAIN);
    seconds = (performance.now() - started) / 1000;
  });

  it(`learns the chain: the mean loss of the last 20 of ${TINY_TRAIN.steps} steps is within 10% of the entropy`, () => {
    expect(run.losses).toHaveLength(TINY_TRAIN.steps);
    expect(TINY_TRAIN.steps).toBeLessThanOrEqual(300);
    const first = mean(run.losses.slice(0, 5));
    const last = mean(run.losses.slice(-20));
    expect(first).toBeGreaterThan(1.3 * run.entropy);
    expect(last).toBeLessThan(1.1 * run.entropy);
    expect(last).toBeGreaterThan(0.9 * run.entropy); // no model beats the entropy on average
    const firstWithin = run.losses.findIndex((_, i) => i >= 9 && mean(run.losses.slice(i - 9, i + 1)) < 1.1 * run.entropy);
    console.info(
      `reference: entropy ${run.entropy.toFixed(4)} nats, loss ${first.toFixed(4)} -> ${last.toFixed(4)}; ` +
        `10-step mean within 10% at step ${firstWithin}; ${TINY_TRAIN.steps} steps in ${seconds.toFixed(2)} s`,
    );
  });

  it('is deterministic: a second run repeats the losses and parameters bitwise', () => {
    const again = trainReference(TINY_MODEL, TINY_TRAIN, { steps: 10 });
    expect(again.losses).toEqual(run.losses.slice(0, 10));
    const twice = trainReference(TINY_MODEL, TINY_TRAIN, { steps: 10 });
    const sum = (r: ReferenceResult) => checksumTensors(optimizerOrder(r.params).map((q) => q.tensor));
    expect(sum(twice)).toBe(sum(again));
    expect(twice.optimizerState.t).toBe(10);
  });

  it('bias balancing moved the router bias', () => {
    expect(run.params.layers[0]!.routerBias.data.some((b) => b !== 0)).toBe(true);
  });
});

describe('applyUpdate', () => {
  it('updates every trainable tensor but never the router bias by gradient; moves the bias only for balancing "bias"', () => {
    for (const balancing of ['bias', 'aux'] as const) {
      const config = parseModelConfig({ ...TINY_MODEL, balancing });
      const params = initParams(config);
      const before = optimizerOrder(params).map((q) => checksumTensors([q.tensor]));
      const batch = new MarkovChain(config.vocabSize, 1).batch(0, 2, 8);
      const result = forwardBackward(params, batch, config, { tokens: 16, sequences: 2 });
      const counts = [Int32Array.from([9, 0, 0, 0, 0, 0, 0, 7]), Int32Array.from([2, 2, 2, 2, 2, 2, 2, 2])];
      applyUpdate(params, result.grads, counts, config, new AdamW(TINY_TRAIN.optimizer));
      const after = optimizerOrder(params).map((q) => checksumTensors([q.tensor]));
      // Experts with no tokens get zero gradients; AdamW leaves them (weight decay is 0 here).
      expect(after.filter((a, i) => a !== before[i]).length).toBeGreaterThan(before.length / 2);
      const bias = Array.from(params.layers[0]!.routerBias.data);
      const s = config.biasUpdateSpeed;
      expect(bias).toEqual(balancing === 'bias' ? [-s, s, s, s, s, s, s, -s].map(Math.fround) : new Array(8).fill(0));
      expect(Array.from(params.layers[1]!.routerBias.data)).toEqual(new Array(8).fill(0));
    }
  });

  it('the optimizer order is the trainable dense params, then experts layer by layer', () => {
    const names = optimizerOrder(zerosLikeParams(initParams(TINY_MODEL))).map((q) => q.name);
    expect(names[0]).toBe('embedding');
    expect(names).not.toContain('layers.0.router_bias');
    expect(names.indexOf('head')).toBe(names.indexOf('layers.0.experts.0.w1') - 1);
    expect(names.at(-1)).toBe('layers.1.experts.7.w2');
  });
});
