/**
 * A shard's two AdamW instances (dense parameters; its experts) by parameter name, for
 * checkpoints and for moving experts between ranks. Positions: [dense trainable in `denseParams`
 * order], [the shard's experts' w1, w3, w2, layer by layer, ascending ids].
 */
import { EXPERT_WEIGHTS, expertParamName } from '../param-names';
import type { AdamW } from '../optimizer';
import type { ExpertParams, NamedParam } from '../params';
import type { Tensor } from '../tensor';
import type { NamedOptimizerState } from './types';

export interface ShardOptimizers {
  /** The shard's dense parameters (only the trainable ones have AdamW state). */
  named: readonly NamedParam[];
  /** [layer] expert id -> params, ascending ids. */
  experts: readonly ReadonlyMap<number, ExpertParams>[];
  dense: AdamW;
  expert: AdamW;
}

function optimizerNames(s: ShardOptimizers): { dense: string[]; experts: string[] } {
  const experts: string[] = [];
  s.experts.forEach((layer, l) => {
    for (const id of layer.keys()) for (const w of EXPERT_WEIGHTS) experts.push(expertParamName(l, id, w));
  });
  return { dense: s.named.filter((p) => p.trainable).map((p) => p.name), experts };
}

/** Both AdamW instances from a named state (checked by decodeShard: names and sizes). */
export function restoreOptimizers(s: ShardOptimizers, state: NamedOptimizerState): void {
  if (state.t === 0 && state.m.size === 0) return;
  const names = optimizerNames(s);
  const pick = (list: string[], from: Map<string, Tensor>, what: string) =>
    list.map((name) => {
      const t = from.get(name);
      if (!t) throw new Error(`LoadShard.optimizer_state: ${what} of ${name} is missing`);
      return new Float32Array(t.data);
    });
  s.dense.restore({ m: pick(names.dense, state.m, 'm'), v: pick(names.dense, state.v, 'v'), t: state.t });
  s.expert.restore({ m: pick(names.experts, state.m, 'm'), v: pick(names.experts, state.v, 'v'), t: state.t });
}

/** The AdamW state of the dense params and the shard's experts, by name (empty before the first step). */
export function namedOptimizerState(s: ShardOptimizers): NamedOptimizerState {
  const names = optimizerNames(s);
  const m = new Map<string, Tensor>();
  const v = new Map<string, Tensor>();
  const shapes = new Map<string, number[]>(s.named.map((p) => [p.name, [...p.tensor.shape]]));
  s.experts.forEach((layer, l) => {
    for (const [id, p] of layer) for (const w of EXPERT_WEIGHTS) shapes.set(expertParamName(l, id, w), [...p[w].shape]);
  });
  for (const [list, state] of [
    [names.dense, s.dense.state()],
    [names.experts, s.expert.state()],
  ] as const) {
    state.m.forEach((data, i) => m.set(list[i]!, { shape: shapes.get(list[i]!)!, data }));
    state.v.forEach((data, i) => v.set(list[i]!, { shape: shapes.get(list[i]!)!, data }));
  }
  return { t: s.dense.t, m, v };
}
