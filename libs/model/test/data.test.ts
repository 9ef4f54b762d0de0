/** The synthetic data: a Markov chain whose entropy is known exactly, and deterministic batches. */
import { describe, expect, it } from 'vitest';
import { ConfigError, MarkovChain } from '../src/index';

/** Stationary distribution by power iteration, and the conditional entropy from it: the direct computation. */
function directEntropy(P: Float32Array, V: number): { pi: Float64Array; entropy: number } {
  let pi = new Float64Array(V).fill(1 / V);
  for (let it = 0; it < 5000; it++) {
    const next = new Float64Array(V);
    for (let i = 0; i < V; i++) {
      let rowSum = 0;
      for (let j = 0; j < V; j++) rowSum += P[i * V + j]!;
      for (let j = 0; j < V; j++) next[j]! += (pi[i]! * P[i * V + j]!) / rowSum;
    }
    pi = next;
  }
  let entropy = 0;
  for (let i = 0; i < V; i++) {
    let rowSum = 0;
    for (let j = 0; j < V; j++) rowSum += P[i * V + j]!;
    for (let j = 0; j < V; j++) {
      const p = P[i * V + j]! / rowSum;
      if (p > 0) entropy -= pi[i]! * p * Math.log(p);
    }
  }
  return { pi, entropy };
}

describe('MarkovChain', () => {
  const chain = new MarkovChain(16, 7);

  it('has stochastic rows and an exact entropy equal to the direct computation, well below log V', () => {
    for (let i = 0; i < 16; i++) {
      const sum = chain.transition.subarray(i * 16, (i + 1) * 16).reduce((a, b) => a + b, 0);
      expect(sum).toBeCloseTo(1, 5);
    }
    const direct = directEntropy(chain.transition, 16);
    expect(chain.entropy).toBeCloseTo(direct.entropy, 10);
    for (let i = 0; i < 16; i++) expect(chain.stationary[i]).toBeCloseTo(direct.pi[i]!, 10);
    expect(chain.entropy).toBeLessThan(0.6 * Math.log(16));
    expect(new MarkovChain(16, 7, { concentration: 0 }).entropy).toBeCloseTo(Math.log(16), 6);
  });

  it('empirical next-token frequencies over many batches give the same entropy', () => {
    const V = 16;
    const pairs = new Float64Array(V * V);
    for (let step = 0; step < 40; step++) {
      const b = chain.batch(step, 16, 64);
      for (let t = 0; t < b.inputs.length; t++) pairs[b.inputs[t]! * V + b.targets[t]!]! += 1;
    }
    const total = pairs.reduce((a, b) => a + b, 0);
    let h = 0;
    for (let i = 0; i < V; i++) {
      const row = pairs.subarray(i * V, (i + 1) * V).reduce((a, b) => a + b, 0);
      for (let j = 0; j < V; j++) if (pairs[i * V + j]! > 0) h -= (pairs[i * V + j]! / total) * Math.log(pairs[i * V + j]! / row);
    }
    expect(Math.abs(h - chain.entropy)).toBeLessThan(0.03);
  });

  it('batches are deterministic from (seed, step); targets are the inputs shifted by one', () => {
    const a = chain.batch(3, 4, 10);
    expect(chain.batch(3, 4, 10)).toEqual(a);
    expect(new MarkovChain(16, 7).batch(3, 4, 10)).toEqual(a);
    expect(chain.batch(4, 4, 10).inputs).not.toEqual(a.inputs);
    expect(new MarkovChain(16, 8).batch(3, 4, 10).inputs).not.toEqual(a.inputs);
    for (let s = 0; s < 4; s++) for (let i = 0; i + 1 < 10; i++) expect(a.inputs[s * 10 + i + 1]).toBe(a.targets[s * 10 + i]);
    // Asking for more sequences does not change the first ones.
    expect(chain.batch(3, 6, 10).inputs.subarray(0, 40)).toEqual(a.inputs);
    expect({ sequences: a.sequences, seqLen: a.seqLen }).toEqual({ sequences: 4, seqLen: 10 });
  });

  it('refuses a vocabulary of fewer than 2 tokens', () => {
    expect(() => new MarkovChain(1, 0)).toThrow(ConfigError);
    expect(() => new MarkovChain(1, 0)).toThrow('markov.vocabSize must be an integer >= 2, got 1');
  });
});
