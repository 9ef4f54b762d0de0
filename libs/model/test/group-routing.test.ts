/** Node-limited routing: a token keeps its M best expert groups, then picks its top-k inside them. */
import { describe, expect, it } from 'vitest';
import { ConfigError, Rng, parseModelConfig, route, tensorFrom, trainReference, zeros, TINY_TRAIN } from '../src/index';
import { randomTensor } from './support/gradcheck';

/** A router that maps h = [1, 0] to logits equal to its first row. */
function fixedRouter(logits: number[]) {
  return { router: tensorFrom([2, logits.length], [...logits, ...logits.map(() => 0)]), routerBias: zeros([logits.length]) };
}
const h1 = tensorFrom([1, 2], [1, 0]);
const one = { seqLen: 1, globalSequences: 1 };

describe('node-limited routing', () => {
  it('ranks groups by the sum of their highest floor(k/M) selection values, not by their best one', () => {
    // Group 0 holds the single best expert (5), group 1 the best pair (4, 3.9). With k = 2, M = 1
    // the group score sums the top 2: σ(5)+σ(0) = 1.49 < σ(4)+σ(3.9) = 1.96, so group 1 wins.
    const logits = [5, 0, 0, 0, 4, 3.9, 0, 0];
    const plain = parseModelConfig({ routedExperts: 8, topK: 2, scoreFunction: 'sigmoid', balancing: 'none' });
    expect(Array.from(route(h1, fixedRouter(logits), plain, one).expertIds)).toEqual([0, 4]);
    const limited = parseModelConfig({ ...plain, routerGroups: 2, routerGroupTopK: 1 });
    const r = route(h1, fixedRouter(logits), limited, one);
    expect(Array.from(r.expertIds)).toEqual([4, 5]);
    const s = (x: number) => 1 / (1 + Math.exp(-x));
    expect(r.weights[0]).toBeCloseTo(s(4) / (s(4) + s(3.9)), 6);
  });

  it('the bias takes part in the group scores as it does in the selection', () => {
    const config = parseModelConfig({ routedExperts: 8, topK: 2, scoreFunction: 'sigmoid', balancing: 'bias', routerGroups: 2, routerGroupTopK: 1 });
    const layer = fixedRouter([5, 0, 0, 0, 4, 3.9, 0, 0]);
    layer.routerBias.data.set([0, 0.6, 0, 0, 0, 0, 0, 0]);
    // Group 0: σ(5) + (σ(0) + 0.6) = 2.09 > 1.96; expert 1's selection value 1.1 now ranks first.
    expect(Array.from(route(h1, layer, config, one).expertIds)).toEqual([1, 0]);
  });

  it.each([1, 2, 3])('every token routes to experts of at most M=%i of 4 groups', (M) => {
    const config = parseModelConfig({ hiddenSize: 8, routedExperts: 16, topK: 4, balancing: 'none', routerGroups: 4, routerGroupTopK: M });
    const rng = new Rng(5 + M);
    const h = randomTensor([64, 8], rng);
    const r = route(h, { router: randomTensor([8, 16], rng), routerBias: zeros([16]) }, config, { seqLen: 8, globalSequences: 8 });
    let widest = 0;
    for (let t = 0; t < 64; t++) {
      const groups = new Set(Array.from(r.expertIds.subarray(t * 4, t * 4 + 4), (e) => Math.floor(e / 4)));
      widest = Math.max(widest, groups.size);
    }
    expect(widest).toBeLessThanOrEqual(M);
    expect(widest).toBe(M); // random routers do reach M groups, so the limit is what binds
  });

  it('M equal to the number of groups routes exactly as plain top-k', () => {
    const rng = new Rng(9);
    const h = randomTensor([32, 8], rng);
    const layer = { router: randomTensor([8, 8], rng), routerBias: randomTensor([8], rng) };
    const plain = parseModelConfig({ hiddenSize: 8, routedExperts: 8, topK: 3, balancing: 'bias' });
    const grouped = parseModelConfig({ ...plain, routerGroups: 4, routerGroupTopK: 4 });
    const options = { seqLen: 8, globalSequences: 4 };
    expect(Array.from(route(h, layer, grouped, options).expertIds)).toEqual(Array.from(route(h, layer, plain, options).expertIds));
  });

  it('the reference trainer trains with node-limited routing and its routing differs from plain top-k', () => {
    const train = { ...TINY_TRAIN, steps: 3 };
    const plain = trainReference(parseModelConfig({}), train);
    const limited = trainReference(parseModelConfig({ routerGroups: 4, routerGroupTopK: 1 }), train);
    expect(limited.losses.every(Number.isFinite)).toBe(true);
    expect(limited.losses[2]).not.toBe(plain.losses[2]);
  });
});

describe('node-limited routing config', () => {
  const problems = (input: object) => {
    try {
      parseModelConfig(input);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.map((p) => p.message);
      throw e;
    }
    return [];
  };

  it('refuses groups that do not divide the experts, naming the field and the numbers', () => {
    expect(problems({ routedExperts: 8, routerGroups: 3 })).toEqual([
      'routerGroups=3 does not divide routed experts=8 (model.routerGroups): every group must hold the same number of experts',
    ]);
  });

  it('refuses M above the number of groups', () => {
    expect(problems({ routerGroups: 2, routerGroupTopK: 3 })).toEqual(['routerGroupTopK=3 exceeds routerGroups=2 (model.routerGroupTopK)']);
  });

  it('refuses a top-k that does not fit in M groups', () => {
    expect(problems({ routedExperts: 8, topK: 3, routerGroups: 4, routerGroupTopK: 1 })).toEqual([
      'top_k=3 exceeds the 2 experts of routerGroupTopK=1 groups of 2 (model.topK): raise routerGroupTopK or lower topK',
    ]);
    expect(problems({ routedExperts: 8, topK: 4, routerGroups: 4, routerGroupTopK: 2 })).toEqual([]);
  });

  it('refuses zero groups as a non-positive integer', () => {
    expect(problems({ routerGroups: 0 })).toEqual(['model.routerGroups must be a positive integer, got 0']);
  });
});
