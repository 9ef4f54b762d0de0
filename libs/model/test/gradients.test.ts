/**
 * Every backward pass agrees with finite differences of its forward pass (float64 central
 * differences of Σ(y·r) with a random r, through float32 code).
 */
import { describe, expect, it } from 'vitest';
import {
  combine,
  combineBackward,
  crossEntropy,
  embed,
  embedBackward,
  expertBackward,
  expertForward,
  headBackward,
  headForward,
  parseModelConfig,
  rmsNorm,
  rmsNormBackward,
  route,
  routeBackward,
  Rng,
  sharedExpertsBackward,
  sharedExpertsForward,
  zeros,
  type ExpertParams,
  type ScoreFunction,
} from '../src/index';
import { dot, expectGradient, randomTensor } from './support/gradcheck';

const T = 6;
const H = 8;
const F = 12;

function randomExpert(rng: Rng): ExpertParams {
  return {
    w1: randomTensor([H, F], rng, 1 / Math.sqrt(H)),
    w3: randomTensor([H, F], rng, 1 / Math.sqrt(H)),
    w2: randomTensor([F, H], rng, 1 / Math.sqrt(F)),
  };
}

describe('rmsNorm backward matches finite differences', () => {
  it('for the input x and the gain', () => {
    const rng = new Rng(1);
    const x = randomTensor([T, H], rng);
    const gain = randomTensor([H], rng, 0.5);
    gain.data.forEach((g, i) => (gain.data[i] = 1 + g));
    const r = randomTensor([T, H], rng);
    const loss = () => dot(rmsNorm(x, gain, 1e-6).y.data, r.data);
    const { cache } = rmsNorm(x, gain, 1e-6);
    const back = rmsNormBackward(cache, r);
    expectGradient('dx', x.data, back.dx.data, loss);
    expectGradient('dGain', gain.data, back.dGain.data, loss);
  });
});

describe('router backward matches finite differences through the weights', () => {
  const E = 6;
  const cases: [ScoreFunction, 'none' | 'aux' | 'bias'][] = [
    ['softmax', 'none'],
    ['softmax', 'aux'],
    ['sigmoid', 'none'],
    ['sigmoid', 'aux'],
  ];
  it.each(cases)('%s scores, balancing %s (loss = Σ weights·r + aux loss)', (scoreFunction, balancing) => {
    const config = parseModelConfig({ hiddenSize: H, routedExperts: E, topK: 3, scoreFunction, balancing, auxLossAlpha: 0.3 });
    const rng = new Rng(scoreFunction === 'softmax' ? 2 : 3);
    const h = randomTensor([T, H], rng);
    const layer = { router: randomTensor([H, E], rng, 1 / Math.sqrt(H)), routerBias: randomTensor([E], rng, 0.05) };
    const r = randomTensor([T * 3], rng);
    const options = { seqLen: 3, globalSequences: 4 };
    const base = route(h, layer, config, options);
    const loss = () => {
      const out = route(h, layer, config, options);
      // Selection is piecewise constant: a step must not change which experts are picked.
      if (out.expertIds.some((e, i) => e !== base.expertIds[i])) throw new Error('finite-difference step changed the selection');
      return dot(out.weights, r.data) + out.auxLoss;
    };
    const back = routeBackward(base.cache, r.data);
    expectGradient('dh', h.data, back.dh.data, loss, { eps: 1e-3 });
    expectGradient('dRouter', layer.router.data, back.dRouter.data, loss, { eps: 1e-3 });
  });
});

describe('expert (SwiGLU) backward matches finite differences', () => {
  it('for x, w1, w3 and w2', () => {
    const rng = new Rng(4);
    const p = randomExpert(rng);
    const x = randomTensor([T, H], rng);
    const r = randomTensor([T, H], rng);
    const loss = () => dot(expertForward(p, x).y.data, r.data);
    const back = expertBackward(p, expertForward(p, x).cache, r);
    expectGradient('dx', x.data, back.dx.data, loss);
    expectGradient('dw1', p.w1.data, back.grads.w1.data, loss);
    expectGradient('dw3', p.w3.data, back.grads.w3.data, loss);
    expectGradient('dw2', p.w2.data, back.grads.w2.data, loss);
  });

  it('for two shared experts summed over the same tokens', () => {
    const rng = new Rng(5);
    const shared = [randomExpert(rng), randomExpert(rng)];
    const x = randomTensor([T, H], rng);
    const r = randomTensor([T, H], rng);
    const loss = () => dot(sharedExpertsForward(shared, x).y.data, r.data);
    const back = sharedExpertsBackward(shared, sharedExpertsForward(shared, x).caches, r);
    expectGradient('dx', x.data, back.dh.data, loss);
    expectGradient('shared[1].dw1', shared[1]!.w1.data, back.grads[1]!.w1.data, loss);
    expectGradient('shared[0].dw2', shared[0]!.w2.data, back.grads[0]!.w2.data, loss);
  });
});

describe('combine backward matches finite differences', () => {
  it('for the slot outputs and the weights', () => {
    const rng = new Rng(6);
    const k = 3;
    const out = randomTensor([T * k, H], rng);
    const weights = randomTensor([T * k], rng).data;
    const r = randomTensor([T, H], rng);
    const loss = () => dot(combine(out, weights, k).data, r.data);
    const back = combineBackward(r, out, weights, k);
    expectGradient('dSlotOutputs', out.data, back.dSlotOutputs.data, loss);
    expectGradient('dWeights', weights, back.dWeights, loss);
  });
});

describe('embedding, head and cross-entropy backward match finite differences', () => {
  it('embedding: repeated tokens accumulate', () => {
    const rng = new Rng(7);
    const table = randomTensor([5, H], rng);
    const tokens = Int32Array.from([0, 3, 3, 1, 4, 3]);
    const r = randomTensor([tokens.length, H], rng);
    const loss = () => dot(embed(tokens, table).data, r.data);
    expectGradient('dTable', table.data, embedBackward(tokens, r, 5).data, loss, { atol: 1e-6 });
  });

  it('head: for h and the head matrix', () => {
    const rng = new Rng(8);
    const h = randomTensor([T, H], rng);
    const head = randomTensor([H, 5], rng);
    const r = randomTensor([T, 5], rng);
    const loss = () => dot(headForward(h, head).data, r.data);
    const back = headBackward(h, head, r);
    expectGradient('dh', h.data, back.dh.data, loss);
    expectGradient('dHead', head.data, back.dHead.data, loss);
  });

  it('cross-entropy: for the logits, divided by the divisor', () => {
    const rng = new Rng(9);
    const logits = randomTensor([T, 5], rng, 2);
    const targets = Int32Array.from([0, 4, 2, 2, 1, 3]);
    const loss = () => crossEntropy(logits, targets, 10).lossSum;
    expectGradient('dLogits', logits.data, crossEntropy(logits, targets, 10).dLogits.data, loss, { eps: 1e-3 });
  });
});

describe('zero-row inputs', () => {
  it('an expert that receives no tokens returns [0, H] and zero gradients', () => {
    const p = randomExpert(new Rng(10));
    const out = expertForward(p, zeros([0, H]));
    const back = expertBackward(p, out.cache, zeros([0, H]));
    expect(out.y.shape).toEqual([0, H]);
    expect(back.dx.shape).toEqual([0, H]);
    for (const g of [back.grads.w1, back.grads.w3, back.grads.w2]) expect(g.data.every((v) => v === 0)).toBe(true);
  });
});
