/** The output projection from the residual stream to vocabulary logits. */
import { matmul, matmulTransA, matmulTransB } from './ops';
import type { Tensor } from './tensor';

/** h: [T, H], head: [H, V] -> logits: [T, V] = h·head. */
export function headForward(h: Tensor, head: Tensor): Tensor {
  return matmul(h, head);
}

/** h: [T, H], head: [H, V], dLogits: [T, V] -> dh: [T, H] = dLogits·headᵀ, dHead: [H, V] = hᵀ·dLogits. */
export function headBackward(h: Tensor, head: Tensor, dLogits: Tensor): { dh: Tensor; dHead: Tensor } {
  return { dh: matmulTransB(dLogits, head), dHead: matmulTransA(h, dLogits) };
}
