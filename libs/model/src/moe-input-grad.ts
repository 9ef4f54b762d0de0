/**
 * The gradient reaching the MoE block's input h from its three uses, summed in one fixed order
 * (the reference trainer and the distributed worker both call this, so they agree bitwise).
 */
import { ShapeError } from './shape-error';
import { matrixShape, zeros, type Tensor } from './tensor';

/**
 * dhShared: [T, H] from the shared experts; dhRouter: [T, H] from the router; dSlotInputs:
 * [T·k, H] from the routed experts, slot s = t·k + j -> dh: [T, H] with
 * dh[t] = ((dhShared[t] + dhRouter[t]) + dSlotInputs[t·k]) + ... + dSlotInputs[t·k + k-1],
 * evaluated in float64 in exactly this order and rounded once.
 */
export function moeInputGrad(dhShared: Tensor, dhRouter: Tensor, dSlotInputs: Tensor, topK: number): Tensor {
  const [T, H] = matrixShape(dhShared, 'moeInputGrad: dhShared');
  const [Tr, Hr] = matrixShape(dhRouter, 'moeInputGrad: dhRouter');
  const [S, Hs] = matrixShape(dSlotInputs, 'moeInputGrad: dSlotInputs');
  if (Tr !== T || Hr !== H) throw new ShapeError(`moeInputGrad: dhRouter is [${Tr}, ${Hr}], dhShared is [${T}, ${H}]`);
  if (S !== T * topK || Hs !== H) {
    throw new ShapeError(`moeInputGrad: dSlotInputs is [${S}, ${Hs}], expected [T*k, H] = [${T * topK}, ${H}]`);
  }
  const dh = zeros([T, H]);
  const A = dhShared.data;
  const B = dhRouter.data;
  const C = dSlotInputs.data;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < H; i++) {
      let s = A[t * H + i]! + B[t * H + i]!;
      for (let j = 0; j < topK; j++) s += C[(t * topK + j) * H + i]!;
      dh.data[t * H + i] = s;
    }
  }
  return dh;
}
