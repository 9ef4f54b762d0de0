/** AdamW: the textbook update, and elementwise, so any split of the parameters gives the same numbers. */
import { describe, expect, it } from 'vitest';
import { AdamW, cloneTensor, Rng, ShapeError, tensorFrom, TINY_TRAIN, type Tensor } from '../src/index';
import { randomTensor } from './support/gradcheck';

const cfg = { learningRate: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

describe('AdamW', () => {
  it('first step: p·(1 − lr·wd) − lr·sign(g) (bias-corrected moments give ±1)', () => {
    const p = tensorFrom([3], [1, -2, 0.5]);
    const opt = new AdamW(cfg);
    opt.step([p], [tensorFrom([3], [0.3, -4, 0])]);
    expect(p.data[0]).toBeCloseTo(1 * (1 - 0.001) - 0.1, 6);
    expect(p.data[1]).toBeCloseTo(-2 * (1 - 0.001) + 0.1, 6);
    expect(p.data[2]).toBeCloseTo(0.5 * (1 - 0.001), 6);
    expect(opt.t).toBe(1);
  });

  it('run on a split of the parameters (two instances) equals one instance on all of them', () => {
    const rng = new Rng(13);
    const params = [randomTensor([4, 3], rng), randomTensor([5], rng), randomTensor([2, 2], rng)];
    const whole = params.map(cloneTensor);
    const split = params.map(cloneTensor);
    const all = new AdamW(TINY_TRAIN.optimizer);
    const first = new AdamW(TINY_TRAIN.optimizer);
    const second = new AdamW(TINY_TRAIN.optimizer);
    for (let step = 0; step < 5; step++) {
      const grads = params.map((p) => randomTensor([...p.shape], rng));
      all.step(whole, grads);
      first.step([split[0]!, split[2]!], [grads[0]!, grads[2]!]);
      second.step([split[1]!], [grads[1]!]);
    }
    expect(split.map((t) => t.data)).toEqual(whole.map((t) => t.data));
    const s = all.state();
    expect(s.t).toBe(5);
    expect([first.state().m[0], second.state().m[0], first.state().m[1]]).toEqual([s.m[0], s.m[1], s.m[2]]);
  });

  it('state can be restored into a fresh instance and continues identically', () => {
    const rng = new Rng(14);
    const a: Tensor[] = [randomTensor([6], rng)];
    const b = a.map(cloneTensor);
    const g = [randomTensor([6], rng)];
    const optA = new AdamW(cfg);
    optA.step(a, g);
    const optB = new AdamW(cfg);
    optB.step(b, g);
    const resumed = new AdamW(cfg);
    resumed.restore(optB.state());
    optA.step(a, g);
    resumed.step(b, g);
    expect(b[0]!.data).toEqual(a[0]!.data);
  });

  it('refuses a list that changed length or sizes', () => {
    const opt = new AdamW(cfg);
    opt.step([tensorFrom([2], [1, 2])], [tensorFrom([2], [1, 1])]);
    expect(() => opt.step([tensorFrom([3], [1, 2, 3])], [tensorFrom([3], [1, 1, 1])])).toThrow(ShapeError);
    expect(() => opt.step([tensorFrom([2], [1, 2])], [])).toThrow(/1 params but 0 grads/);
  });
});
