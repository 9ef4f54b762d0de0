/** Softmax cross-entropy of next-token logits, in nats. */
import { ShapeError } from './shape-error';
import { matrixShape, zeros, type Tensor } from './tensor';

/**
 * logits: [T, V], targets: [T] ids in [0, V), divisor > 0 (e.g. the global token count) ->
 * lossSum = Σ_t CE_t / divisor (float64; nats), dLogits: [T, V] = (softmax - onehot) / divisor.
 * With divisor = the global token count, the workers' lossSums add up to the global mean.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array, divisor: number): { lossSum: number; dLogits: Tensor } {
  const [T, V] = matrixShape(logits, 'crossEntropy: logits');
  if (targets.length !== T) throw new ShapeError(`crossEntropy: ${targets.length} targets for ${T} logit rows`);
  if (!(divisor > 0)) throw new RangeError(`crossEntropy: divisor must be > 0, got ${divisor}`);
  const L = logits.data;
  const dLogits = zeros([T, V]);
  const p = new Float64Array(V);
  let total = 0;
  for (let t = 0; t < T; t++) {
    const o = t * V;
    const target = targets[t]!;
    if (target < 0 || target >= V) throw new ShapeError(`crossEntropy: target ${t} is ${target}, vocabulary has ${V} ids`);
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, L[o + v]!);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += p[v] = Math.exp(L[o + v]! - max);
    total += Math.log(sum) + max - L[o + target]!;
    for (let v = 0; v < V; v++) dLogits.data[o + v] = (p[v]! / sum - (v === target ? 1 : 0)) / divisor;
  }
  return { lossSum: total / divisor, dLogits };
}
