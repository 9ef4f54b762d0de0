/**
 * AdamW (decoupled weight decay, bias-corrected moments), elementwise. Its state is per position
 * in the list handed to `step` (position i's m and v belong to params[i]), so an optimizer may
 * run on any subset of the parameters: several instances over a split of the list give the same
 * numbers as one instance over the whole list. Per element, in float64, stored as float32:
 *   p ← p − lr·wd·p
 *   m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
 *   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps)
 */
import type { OptimizerConfig } from './config';
import { ShapeError } from './shape-error';
import type { Tensor } from './tensor';

export interface AdamWState {
  /** [params] first moments, one Float32Array per parameter, same sizes. */
  m: Float32Array[];
  /** [params] second moments. */
  v: Float32Array[];
  /** Steps taken. */
  t: number;
}

export class AdamW {
  private m: Float32Array[] | undefined;
  private v: Float32Array[] | undefined;
  private steps = 0;
  private readonly cfg: OptimizerConfig;

  constructor(cfg: OptimizerConfig) {
    this.cfg = { ...cfg };
  }

  /** Steps taken so far. */
  get t(): number {
    return this.steps;
  }

  /**
   * One update of params[i] (in place) by grads[i], same sizes, any shapes. The list must have the
   * same length and sizes at every step (the state is per position). Throws ShapeError otherwise.
   */
  step(params: readonly Tensor[], grads: readonly Tensor[]): void {
    if (params.length !== grads.length) throw new ShapeError(`AdamW.step: ${params.length} params but ${grads.length} grads`);
    params.forEach((p, i) => {
      if (p.data.length !== grads[i]!.data.length) {
        throw new ShapeError(`AdamW.step: param ${i} has ${p.data.length} values, its grad ${grads[i]!.data.length}`);
      }
    });
    if (!this.m || !this.v) {
      this.m = params.map((p) => new Float32Array(p.data.length));
      this.v = params.map((p) => new Float32Array(p.data.length));
    }
    const m = this.m;
    const v = this.v;
    if (m.length !== params.length) throw new ShapeError(`AdamW.step: state holds ${m.length} params, step got ${params.length}`);
    params.forEach((p, i) => {
      if (m[i]!.length !== p.data.length) throw new ShapeError(`AdamW.step: param ${i} has ${p.data.length} values, its state ${m[i]!.length}`);
    });
    this.steps += 1;
    const { learningRate: lr, beta1: b1, beta2: b2, eps, weightDecay: wd } = this.cfg;
    const c1 = 1 - Math.pow(b1, this.steps);
    const c2 = 1 - Math.pow(b2, this.steps);
    const decay = 1 - lr * wd;
    for (let i = 0; i < params.length; i++) {
      const P = params[i]!.data;
      const G = grads[i]!.data;
      const M = m[i]!;
      const Vv = v[i]!;
      for (let j = 0; j < P.length; j++) {
        const g = G[j]!;
        const mj = b1 * M[j]! + (1 - b1) * g;
        const vj = b2 * Vv[j]! + (1 - b2) * g * g;
        M[j] = mj;
        Vv[j] = vj;
        P[j] = P[j]! * decay - (lr * (mj / c1)) / (Math.sqrt(vj / c2) + eps);
      }
    }
  }

  /** A copy of the state (empty lists before the first step). */
  state(): AdamWState {
    return { m: (this.m ?? []).map((a) => new Float32Array(a)), v: (this.v ?? []).map((a) => new Float32Array(a)), t: this.steps };
  }

  /** Replaces the state with a copy of `s` (e.g. to resume, or to hand a shard of it to a worker). */
  restore(s: AdamWState): void {
    if (s.m.length !== s.v.length) throw new ShapeError(`AdamW.restore: ${s.m.length} first moments but ${s.v.length} second moments`);
    const fresh = s.m.length === 0 && s.t === 0;
    this.m = fresh ? undefined : s.m.map((a) => new Float32Array(a));
    this.v = fresh ? undefined : s.v.map((a) => new Float32Array(a));
    this.steps = s.t;
  }
}
