/** Small helpers of ShardCompute. */
import type { ExpertParams } from '../params';
import { zeros, type Tensor } from '../tensor';

/** into[i] += from[i], in place; both the same length. */
export function addInto(into: Float32Array, from: Float32Array): void {
  for (let i = 0; i < into.length; i++) into[i]! += from[i]!;
}

/** `get(name)`, or an error naming what lacks it. */
export function lookup(named: ReadonlyMap<string, Tensor>, what: string): (name: string) => Tensor {
  return (name) => {
    const t = named.get(name);
    if (!t) throw new Error(`${what} ${name} is missing`);
    return t;
  };
}

export const zerosLikeExpert = (p: ExpertParams): ExpertParams => ({ w1: zeros(p.w1.shape), w3: zeros(p.w3.shape), w2: zeros(p.w2.shape) });
