/**
 * Combining the k routed slot outputs of each token: y[t] = Σ_j w[t·k + j] · out[t·k + j],
 * j ascending (slot s = t·k + j). Computed in float64 per element, rounded once.
 */
import { ShapeError } from './shape-error';
import { matrixShape, zeros, type Tensor } from './tensor';

function checkSlots(slotOutputs: Tensor, weights: Float32Array, topK: number, what: string): [number, number] {
  const [S, H] = matrixShape(slotOutputs, `${what}: slotOutputs`);
  if (!Number.isInteger(topK) || topK <= 0) throw new ShapeError(`${what}: topK must be a positive integer, got ${topK}`);
  if (S % topK !== 0) throw new ShapeError(`${what}: ${S} slot rows are not a multiple of topK=${topK}`);
  if (weights.length !== S) throw new ShapeError(`${what}: weights has ${weights.length} values, slotOutputs has ${S} rows`);
  return [S / topK, H];
}

/** slotOutputs: [T·k, H], weights: [T·k] -> y: [T, H]. */
export function combine(slotOutputs: Tensor, weights: Float32Array, topK: number): Tensor {
  const [T, H] = checkSlots(slotOutputs, weights, topK, 'combine');
  const y = zeros([T, H]);
  const O = slotOutputs.data;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < H; i++) {
      let s = 0;
      for (let j = 0; j < topK; j++) s += weights[t * topK + j]! * O[(t * topK + j) * H + i]!;
      y.data[t * H + i] = s;
    }
  }
  return y;
}

/**
 * dy: [T, H] gradient w.r.t. y; slotOutputs: [T·k, H]; weights: [T·k] ->
 * dSlotOutputs: [T·k, H] = w[s] · dy[t]; dWeights: [T·k] = dy[t] · out[s] (dot over H).
 */
export function combineBackward(
  dy: Tensor,
  slotOutputs: Tensor,
  weights: Float32Array,
  topK: number,
): { dSlotOutputs: Tensor; dWeights: Float32Array } {
  const [T, H] = checkSlots(slotOutputs, weights, topK, 'combineBackward');
  if (dy.shape.length !== 2 || dy.shape[0] !== T || dy.shape[1] !== H) {
    throw new ShapeError(`combineBackward: dy has shape [${dy.shape.join(', ')}], expected [${T}, ${H}]`);
  }
  const dSlotOutputs = zeros([T * topK, H]);
  const dWeights = new Float32Array(T * topK);
  const O = slotOutputs.data;
  const D = dy.data;
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < topK; j++) {
      const s = t * topK + j;
      const w = weights[s]!;
      let dot = 0;
      for (let i = 0; i < H; i++) {
        dSlotOutputs.data[s * H + i] = w * D[t * H + i]!;
        dot += D[t * H + i]! * O[s * H + i]!;
      }
      dWeights[s] = dot;
    }
  }
  return { dSlotOutputs, dWeights };
}
