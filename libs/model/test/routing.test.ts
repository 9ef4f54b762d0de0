/** Router semantics, slot grouping, the combine order, and bias-based balancing. */
import { describe, expect, it } from 'vitest';
import {
  combine,
  groupSlotsByExpert,
  moeInputGrad,
  parseModelConfig,
  route,
  scatterRows,
  gatherRows,
  tensorFrom,
  updateRouterBias,
  zeros,
  Rng,
  ShapeError,
} from '../src/index';
import { randomTensor } from './support/gradcheck';

/** A router that maps h = [1, 0] to logits equal to its first row. */
function fixedRouter(logits: number[]) {
  return { router: tensorFrom([2, logits.length], [...logits, ...logits.map(() => 0)]), routerBias: zeros([logits.length]) };
}
const h1 = tensorFrom([1, 2], [1, 0]);
const one = { seqLen: 1, globalSequences: 1 };

describe('route', () => {
  it('picks the top-k scores, slots in descending order, weights = selected scores renormalized', () => {
    const config = parseModelConfig({ routedExperts: 4, topK: 2, balancing: 'none' });
    const r = route(h1, fixedRouter([0.1, 2, -1, 1]), config, one);
    expect(Array.from(r.expertIds)).toEqual([1, 3]);
    const e2 = Math.exp(2);
    const e1 = Math.exp(1);
    expect(r.weights[0]).toBeCloseTo(e2 / (e2 + e1), 6);
    expect(r.weights[1]).toBeCloseTo(e1 / (e2 + e1), 6);
    expect(Array.from(r.counts)).toEqual([0, 1, 0, 1]);
    expect(r.auxLoss).toBe(0);
  });

  it('breaks ties toward the lower expert id', () => {
    const config = parseModelConfig({ routedExperts: 4, topK: 3, balancing: 'none' });
    expect(Array.from(route(h1, fixedRouter([1, 5, 1, 1]), config, one).expertIds)).toEqual([1, 0, 2]);
  });

  it('the bias changes which experts are chosen but not how their weights are computed', () => {
    const config = parseModelConfig({ routedExperts: 4, topK: 2, scoreFunction: 'sigmoid', balancing: 'bias' });
    const layer = fixedRouter([3, 2, 1, 0]);
    layer.routerBias.data.set([0, 0, 0, 0.9]);
    const r = route(h1, layer, config, one);
    // Selection scores: σ(3) ≈ 0.95, σ(2), σ(1), σ(0) + 0.9 = 1.4: expert 3 first, then expert 0.
    expect(Array.from(r.expertIds)).toEqual([3, 0]);
    const s = (x: number) => 1 / (1 + Math.exp(-x));
    expect(r.weights[0]).toBeCloseTo(s(0) / (s(3) + s(0)), 6);
    expect(r.weights[1]).toBeCloseTo(s(3) / (s(3) + s(0)), 6);
  });

  it('sequence-wise aux loss: per-worker values over disjoint sequences add up to the global value', () => {
    const config = parseModelConfig({ hiddenSize: 8, routedExperts: 6, topK: 2, balancing: 'aux', auxLossAlpha: 0.01 });
    const rng = new Rng(12);
    const h = randomTensor([12, 8], rng);
    const layer = { router: randomTensor([8, 6], rng), routerBias: zeros([6]) };
    const options = { seqLen: 4, globalSequences: 3 };
    const all = route(h, layer, config, options).auxLoss;
    const first = route(gatherRows(h, [0, 1, 2, 3]), layer, config, options).auxLoss;
    const rest = route(gatherRows(h, [4, 5, 6, 7, 8, 9, 10, 11]), layer, config, options).auxLoss;
    expect(all).toBeGreaterThan(0);
    expect(first + rest).toBeCloseTo(all, 12);
    // A perfectly uniform router gives alpha exactly (f_e = 1, P_e = 1/E).
    const uniform = route(h, { router: zeros([8, 6]), routerBias: zeros([6]) }, config, options);
    expect(uniform.auxLoss * 3).toBeCloseTo(3 * 0.01 * 1, 6);
  });

  it('refuses tokens that are not whole sequences', () => {
    const config = parseModelConfig({ hiddenSize: 2, routedExperts: 4, topK: 2 });
    expect(() => route(zeros([5, 2]), fixedRouter([0, 0, 0, 0]), config, { seqLen: 2, globalSequences: 1 })).toThrow(
      /5 tokens are not a whole number of sequences of seqLen=2/,
    );
  });
});

describe('slots and rows', () => {
  it('groupSlotsByExpert lists each expert’s slots in ascending order, empty for idle experts', () => {
    const groups = groupSlotsByExpert(Int32Array.from([2, 0, 2, 3, 0, 2]), 5);
    expect(groups.map((g) => Array.from(g))).toEqual([[1, 4], [], [0, 2, 5], [3], []]);
    expect(() => groupSlotsByExpert(Int32Array.from([0, 5]), 5)).toThrow(ShapeError);
  });

  it('gatherRows and scatterRows move whole rows', () => {
    const x = tensorFrom([3, 2], [0, 1, 10, 11, 20, 21]);
    expect(Array.from(gatherRows(x, [2, 0, 2]).data)).toEqual([20, 21, 0, 1, 20, 21]);
    const into = zeros([3, 2]);
    scatterRows(into, [2, 0], tensorFrom([2, 2], [1, 2, 3, 4]));
    expect(Array.from(into.data)).toEqual([3, 4, 0, 0, 1, 2]);
    expect(() => gatherRows(x, [3])).toThrow(/row 0 is 3, x has 3 rows/);
  });

  it('combine sums the k slots of each token with their weights', () => {
    const out = tensorFrom([4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
    const y = combine(out, Float32Array.from([0.5, 0.25, 1, -1]), 2);
    expect(Array.from(y.data)).toEqual([0.5 + 0.75, 1 + 1, 5 - 7, 6 - 8]);
  });

  it('moeInputGrad adds shared, router and every slot’s gradient', () => {
    const dh = moeInputGrad(tensorFrom([1, 2], [1, 2]), tensorFrom([1, 2], [10, 20]), tensorFrom([2, 2], [100, 200, 1000, 2000]), 2);
    expect(Array.from(dh.data)).toEqual([1111, 2222]);
  });
});

describe('updateRouterBias', () => {
  it('raises the bias of underloaded experts and lowers overloaded ones by the speed', () => {
    const bias = zeros([4]);
    updateRouterBias(bias, [10, 2, 4, 4], 0.5); // mean 5
    expect(Array.from(bias.data)).toEqual([-0.5, 0.5, 0.5, 0.5]);
    updateRouterBias(bias, [5, 5, 5, 5], 0.5);
    expect(Array.from(bias.data)).toEqual([-0.5, 0.5, 0.5, 0.5]);
    expect(() => updateRouterBias(bias, [1, 2], 0.1)).toThrow(/bias has 4 experts, counts has 2/);
  });
});
