/**
 * Load balancing of the routed experts, both kinds of DeepSeek-V3:
 * - `bias` (auxiliary-loss-free): after each step, b_e += speed · sign(mean count - count_e),
 *   with global counts; the bias only shifts which experts are selected.
 * - `aux` (sequence-wise auxiliary loss): per sequence of L tokens,
 *     f_e = E / (k·L) · #{tokens of the sequence that selected e},
 *     P_e = (1/L) Σ_t s'[t, e],  s' = scores normalized to sum 1 over the E experts,
 *     L_seq = alpha · Σ_e f_e · P_e,
 *   and the loss is Σ_seq L_seq / globalSequences, so per-worker values add up to the global one.
 *   f is a count (no gradient); the gradient flows through P.
 */
import { ShapeError } from './shape-error';
import type { Tensor } from './tensor';

/**
 * bias: [E] selection bias (updated in place); counts: [E] tokens routed to each expert over the
 * whole global batch; speed: bias step in score units. b_e += speed · sign(mean - count_e), so
 * underloaded experts become more attractive. Equal counts leave the bias unchanged.
 */
export function updateRouterBias(bias: Tensor, counts: ArrayLike<number>, speed: number): void {
  const E = bias.data.length;
  if (counts.length !== E) throw new ShapeError(`updateRouterBias: bias has ${E} experts, counts has ${counts.length}`);
  if (E === 0) return;
  let total = 0;
  for (let e = 0; e < E; e++) total += counts[e]!;
  const mean = total / E;
  for (let e = 0; e < E; e++) bias.data[e]! += speed * Math.sign(mean - counts[e]!);
}

/**
 * Sequence-wise aux loss of a block of whole sequences.
 * norm: [T, E] normalized scores s' (float64); expertIds: [T·k] selected experts; seqLen: L
 * (T a multiple of L); alpha; globalSequences: the divisor. Returns the loss and
 * fScaled: [T/L, E] = alpha · f_e / (L · globalSequences), i.e. dLoss/ds'[t, e] for t in that sequence.
 */
export function sequenceAuxLoss(
  norm: Float64Array,
  expertIds: Int32Array,
  T: number,
  E: number,
  topK: number,
  seqLen: number,
  alpha: number,
  globalSequences: number,
): { loss: number; fScaled: Float64Array } {
  const S = T / seqLen;
  const fScaled = new Float64Array(S * E);
  const counts = new Float64Array(E);
  const P = new Float64Array(E);
  let loss = 0;
  for (let q = 0; q < S; q++) {
    counts.fill(0);
    P.fill(0);
    for (let t = q * seqLen; t < (q + 1) * seqLen; t++) {
      for (let j = 0; j < topK; j++) counts[expertIds[t * topK + j]!]! += 1;
      for (let e = 0; e < E; e++) P[e]! += norm[t * E + e]!;
    }
    let seqLoss = 0;
    for (let e = 0; e < E; e++) {
      const f = (E / (topK * seqLen)) * counts[e]!;
      seqLoss += f * (P[e]! / seqLen);
      fScaled[q * E + e] = (alpha * f) / (seqLen * globalSequences);
    }
    loss += (alpha * seqLoss) / globalSequences;
  }
  return { loss, fScaled };
}
