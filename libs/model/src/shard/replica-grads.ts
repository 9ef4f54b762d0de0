/**
 * Redundant experts on the ranks: an expert held by several ranks gets each holder's partial
 * gradient summed before the update, so every copy takes the same AdamW step and stays bitwise
 * identical. The sum rides on the step's all-reduce: after the dense gradients and the counts,
 * every rank appends one block per (layer, replicated expert), layer by layer, experts ascending,
 * each its w1, w3, w2 gradients; a rank without a copy puts zeros. The all-reduce adds the blocks
 * in rank order from 0, in float32, so the sum is the same on every holder and adding the zeros
 * changes no bit.
 *
 * Shapes: H hidden, F expert FFN; a block holds 3·H·F values (w1 [H,F], w3 [H,F], w2 [F,H]).
 */
import { checksumTensors } from '../checksum';
import type { ModelConfig } from '../config';
import { EXPERT_WEIGHTS } from '../param-names';
import type { ExpertParams } from '../params';
import type { ReplicaChecksum } from './types';

/** Values the replicated experts append to the all-reduce vector: layers · |replicated| · 3·H·F. */
export function replicaGradientLength(config: Pick<ModelConfig, 'layers' | 'hiddenSize' | 'expertFfnSize'>, replicated: readonly number[]): number {
  return config.layers * replicated.length * 3 * config.hiddenSize * config.expertFfnSize;
}

/**
 * Writes this rank's blocks into `into` from `offset`: its gradient for each replicated expert it
 * holds, zeros for the others (`into` must be zeroed there).
 * @param grads [layer] expert id -> this rank's accumulated gradients of its own experts
 */
export function packReplicaGradients(into: Float32Array, offset: number, grads: readonly ReadonlyMap<number, ExpertParams>[], replicated: readonly number[], blockValues: number): void {
  grads.forEach((layer, l) =>
    replicated.forEach((e, i) => {
      const g = layer.get(e);
      if (!g) return;
      let at = offset + (l * replicated.length + i) * blockValues;
      for (const w of EXPERT_WEIGHTS) {
        into.set(g[w].data, at);
        at += g[w].data.length;
      }
    }),
  );
}

/** Replaces this rank's gradients of the replicated experts it holds with the summed blocks of `reduced` from `offset`. */
export function unpackReplicaGradients(reduced: Float32Array, offset: number, grads: readonly Map<number, ExpertParams>[], replicated: readonly number[], blockValues: number): void {
  const needed = offset + grads.length * replicated.length * blockValues;
  if (reduced.length < needed) throw new Error(`reduced gradients have ${reduced.length} values; the replicated experts' blocks need ${needed}`);
  grads.forEach((layer, l) =>
    replicated.forEach((e, i) => {
      const g = layer.get(e);
      if (!g) return;
      let at = offset + (l * replicated.length + i) * blockValues;
      for (const w of EXPERT_WEIGHTS) {
        g[w].data.set(reduced.subarray(at, at + g[w].data.length));
        at += g[w].data.length;
      }
    }),
  );
}

/** The checksum of every copy this rank holds of a replicated expert, layer by layer, experts ascending. */
export function replicaChecksums(params: readonly ReadonlyMap<number, ExpertParams>[], replicated: readonly number[]): ReplicaChecksum[] {
  return params.flatMap((layer, l) =>
    replicated.flatMap((e) => {
      const p = layer.get(e);
      return p ? [{ layer: l, expert: e, checksum: checksumTensors(EXPERT_WEIGHTS.map((w) => p[w])) }] : [];
    }),
  );
}
