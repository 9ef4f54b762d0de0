/**
 * A chunk's backward through this rank's experts, in the two halves zero-bubble schedules split it
 * into: input gradients first (B: the rows `dispatch_bwd` sends back), weight gradients later (W:
 * accumulated into the step's expert gradients while those rows travel). Shapes: H hidden size;
 * a chunk's received rows come grouped by source rank, as `ExpertRows` in the order they arrived.
 */
import { expertInputGrad, expertWeightGrad, type ExpertCache, type ExpertWeightGradInputs } from '../expert';
import { EXPERT_WEIGHTS } from '../param-names';
import type { ExpertParams } from '../params';
import { zeros } from '../tensor';
import type { ExpertRows } from './types';

/** One expert's share of a chunk: which received rows it took, and its forward cache. */
export interface ExpertWork {
  expert: number;
  /** Pairs (source index, row index) in the order the rows were gathered. */
  sources: Int32Array;
  rows: Int32Array;
  cache: ExpertCache;
}

/** One expert's weight gradients of a chunk, computed by `accumulateWeightGrads`. */
export interface PendingWeightGrad {
  expert: number;
  inputs: ExpertWeightGradInputs;
}

/**
 * Input gradients of one chunk: for each source, [n_source, H] rows in the order they arrived;
 * and each expert's weight-gradient inputs, for `accumulateWeightGrads`.
 * @param work the chunk's forward work, experts ascending; @param experts global id -> params
 * @param where names the layer and chunk in errors
 */
export function chunkInputGrads(
  work: readonly ExpertWork[],
  gradRows: readonly ExpertRows[],
  experts: ReadonlyMap<number, ExpertParams>,
  H: number,
  where: string,
): { outputs: Float32Array[]; pending: PendingWeightGrad[] } {
  const outputs = gradRows.map((r) => new Float32Array(r.rows.length));
  const pending: PendingWeightGrad[] = [];
  for (const w of work) {
    const dy = zeros([w.rows.length, H]);
    for (let i = 0; i < w.rows.length; i++) {
      const from = gradRows[w.sources[i]!]!;
      const r = w.rows[i]!;
      if (from.expertIds[r] !== w.expert) {
        throw new Error(`backward row ${r} from rank ${from.source} is for expert ${from.expertIds[r]}, forward had expert ${w.expert} (${where})`);
      }
      dy.data.set(from.rows.subarray(r * H, (r + 1) * H), i * H);
    }
    const back = expertInputGrad(experts.get(w.expert)!, w.cache, dy);
    for (let i = 0; i < w.rows.length; i++) {
      outputs[w.sources[i]!]!.set(back.dx.data.subarray(i * H, (i + 1) * H), w.rows[i]! * H);
    }
    pending.push({ expert: w.expert, inputs: back.weightGradInputs });
  }
  return { outputs, pending };
}

/** Adds each expert's weight gradients of a chunk into `grads` (global id -> accumulated w1, w3, w2), experts in the chunk's order. */
export function accumulateWeightGrads(pending: readonly PendingWeightGrad[], grads: ReadonlyMap<number, ExpertParams>): void {
  for (const p of pending) {
    const g = expertWeightGrad(p.inputs);
    const acc = grads.get(p.expert)!;
    for (const w of EXPERT_WEIGHTS) {
      const into = acc[w].data;
      const from = g[w].data;
      for (let i = 0; i < into.length; i++) into[i]! += from[i]!;
    }
  }
}
