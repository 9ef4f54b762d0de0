/**
 * Synthetic next-token data with a known answer: an order-1 Markov chain over V tokens whose
 * conditional entropy H(X_{t+1} | X_t) is computed exactly, so a trained model's loss can be
 * compared with the best achievable loss.
 */
import type { Batch } from './batch';
import { ConfigError } from './config-error';
import { Rng } from './rng';

export interface MarkovChainOptions {
  /**
   * How peaked each row is: row i's logits are N(0, 1)·concentration, then softmax. 0 gives a
   * uniform chain (entropy log V); larger values concentrate each row on a few successors.
   * Default 3.
   */
  concentration?: number;
}

/** Index of the first entry of cumulative row `cum[o .. o+V)` exceeding u (u in [0, 1)). */
function pick(cum: Float64Array, o: number, V: number, u: number): number {
  for (let j = 0; j < V - 1; j++) if (u < cum[o + j]!) return j;
  return V - 1;
}

export class MarkovChain {
  /** [V, V] P(next = j | current = i) at [i·V + j]; rows sum to 1 (to float32 rounding). */
  readonly transition: Float32Array;
  /** [V] the stationary distribution π (πP = π), float64. */
  readonly stationary: Float64Array;
  /** Exact H(X_{t+1} | X_t) = Σ_i π_i Σ_j −P_ij ln P_ij under π, in nats (of the float32 rows as sampled). */
  readonly entropy: number;
  readonly vocabSize: number;
  readonly seed: number;
  /** [V, V] cumulative rows, normalized in float64: what sampling uses. */
  private readonly cumulative: Float64Array;
  private readonly stationaryCumulative: Float64Array;

  /** vocabSize: V >= 2 tokens; seed: any non-negative integer; deterministic from both. */
  constructor(vocabSize: number, seed: number, options: MarkovChainOptions = {}) {
    const concentration = options.concentration ?? 3;
    const problems = [];
    if (!Number.isInteger(vocabSize) || vocabSize < 2) {
      problems.push({ field: 'markov.vocabSize', rule: 'integer>=2', message: `markov.vocabSize must be an integer >= 2, got ${vocabSize}` });
    }
    if (!Number.isInteger(seed) || seed < 0) {
      problems.push({ field: 'markov.seed', rule: 'non-negative-integer', message: `markov.seed must be a non-negative integer, got ${seed}` });
    }
    if (!(concentration >= 0 && Number.isFinite(concentration))) {
      problems.push({
        field: 'markov.concentration',
        rule: 'non-negative',
        message: `markov.concentration must be a non-negative finite number, got ${concentration}`,
      });
    }
    if (problems.length > 0) throw new ConfigError(problems);
    const V = vocabSize;
    this.vocabSize = V;
    this.seed = seed;
    this.transition = new Float32Array(V * V);
    const rng = Rng.derive(seed, 'markov.transition');
    const row = new Float64Array(V);
    for (let i = 0; i < V; i++) {
      let max = -Infinity;
      for (let j = 0; j < V; j++) max = Math.max(max, (row[j] = rng.normal() * concentration));
      let sum = 0;
      for (let j = 0; j < V; j++) sum += row[j] = Math.exp(row[j]! - max);
      for (let j = 0; j < V; j++) this.transition[i * V + j] = row[j]! / sum;
    }
    // The exact distribution sampled: each float32 row renormalized in float64.
    const P = new Float64Array(V * V);
    this.cumulative = new Float64Array(V * V);
    for (let i = 0; i < V; i++) {
      let sum = 0;
      for (let j = 0; j < V; j++) sum += this.transition[i * V + j]!;
      let c = 0;
      for (let j = 0; j < V; j++) {
        P[i * V + j] = this.transition[i * V + j]! / sum;
        c += P[i * V + j]!;
        this.cumulative[i * V + j] = c;
      }
    }
    this.stationary = stationaryOf(P, V);
    this.stationaryCumulative = new Float64Array(V);
    let c = 0;
    for (let i = 0; i < V; i++) this.stationaryCumulative[i] = c += this.stationary[i]!;
    let h = 0;
    for (let i = 0; i < V; i++) {
      let hi = 0;
      for (let j = 0; j < V; j++) {
        const p = P[i * V + j]!;
        if (p > 0) hi -= p * Math.log(p);
      }
      h += this.stationary[i]! * hi;
    }
    this.entropy = h;
  }

  /**
   * The batch of `step`: `sequences` independent sequences of seqLen + 1 tokens, the first drawn
   * from the stationary distribution; inputs [B·L] are tokens 0..L−1 of each sequence and targets
   * [B·L] tokens 1..L. Deterministic from (seed, step); sequence b depends only on (seed, step, b),
   * so a prefix of the sequences does not change when more are asked for.
   */
  batch(step: number, sequences: number, seqLen: number): Batch {
    for (const [name, v, min] of [['step', step, 0], ['sequences', sequences, 1], ['seqLen', seqLen, 1]] as const) {
      if (!Number.isInteger(v) || v < min) throw new RangeError(`MarkovChain.batch: ${name} must be an integer >= ${min}, got ${v}`);
    }
    const V = this.vocabSize;
    const inputs = new Int32Array(sequences * seqLen);
    const targets = new Int32Array(sequences * seqLen);
    for (let b = 0; b < sequences; b++) {
      const rng = Rng.derive(this.seed, 'markov.batch', step, b);
      let token = pick(this.stationaryCumulative, 0, V, rng.next());
      for (let i = 0; i < seqLen; i++) {
        const next = pick(this.cumulative, token * V, V, rng.next());
        inputs[b * seqLen + i] = token;
        targets[b * seqLen + i] = next;
        token = next;
      }
    }
    return { inputs, targets, sequences, seqLen };
  }
}

/**
 * π with πP = π and Σπ = 1 for a row-stochastic P: [V, V] with all entries > 0 (float64): solves
 * (Pᵀ − I)π = 0 with the last equation replaced by Σπ = 1, Gaussian elimination with partial pivoting.
 */
function stationaryOf(P: Float64Array, V: number): Float64Array {
  const n = V;
  const A = new Float64Array(n * (n + 1)); // augmented [n, n+1]
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) A[r * (n + 1) + c] = r === n - 1 ? 1 : P[c * V + r]! - (r === c ? 1 : 0);
    A[r * (n + 1) + n] = r === n - 1 ? 1 : 0;
  }
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(A[r * (n + 1) + col]!) > Math.abs(A[pivot * (n + 1) + col]!)) pivot = r;
    if (pivot !== col) {
      for (let c = 0; c <= n; c++) {
        const tmp = A[col * (n + 1) + c]!;
        A[col * (n + 1) + c] = A[pivot * (n + 1) + c]!;
        A[pivot * (n + 1) + c] = tmp;
      }
    }
    const d = A[col * (n + 1) + col]!;
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = A[r * (n + 1) + col]! / d;
      if (f === 0) continue;
      for (let c = col; c <= n; c++) A[r * (n + 1) + c]! -= f * A[col * (n + 1) + c]!;
    }
  }
  const pi = new Float64Array(n);
  let sum = 0;
  for (let r = 0; r < n; r++) sum += pi[r] = Math.max(0, A[r * (n + 1) + n]! / A[r * (n + 1) + r]!);
  for (let r = 0; r < n; r++) pi[r]! /= sum;
  return pi;
}
