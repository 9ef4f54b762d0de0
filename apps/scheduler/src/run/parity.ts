/**
 * The parity check: a distributed run against the single-process reference trainer on the
 * same global batches. Losses are compared step by step (relative difference), parameters
 * element by element (absolute difference). Pure, apart from `assembleParams`' use of
 * `initParams` for the shapes.
 *
 * Parameter names: dense ones as `denseParams()` names them ("layers.0.router"); experts as
 * "layers.<layer>.experts.<expert>.<w1|w3|w2>".
 */
import { namedTensorsFromMsg, type FetchParamsResponseOut } from '@moe/comm';
import { denseParams, expertParams, initParams, type ExpertParams, type ModelConfig, type ModelParams, type Tensor } from '@moe/model';
import { ParityError } from '../errors';

export const DEFAULT_LOSS_TOLERANCE = 1e-5;
export const DEFAULT_PARAM_TOLERANCE = 1e-4;

/** A run's parity tolerances: those of its codecs, with each one `overrides` sets in its place. */
export function parityTolerances(
  settings: { dispatchCodec: string; combineCodec: string },
  overrides: ParityTolerances = {},
): Required<ParityTolerances> {
  const base = tolerancesForCodecs(settings.dispatchCodec, settings.combineCodec);
  return { loss: overrides.loss ?? base.loss, param: overrides.param ?? base.param };
}

/**
 * Tolerances of a run's wire codecs: the f32 ones for every codec. The reference mirrors the
 * run's codec round trips and its gradient summation order (parity-mirror.ts), so a lossy run is
 * compared as strictly as an f32 one, parameters included. How far a lossy run drifts from the
 * f32 trajectory is a measured figure (bench/codec-drift.bench.ts), not a tolerance.
 */
export function tolerancesForCodecs(_dispatchCodec: string, _combineCodec: string): Required<ParityTolerances> {
  return { loss: DEFAULT_LOSS_TOLERANCE, param: DEFAULT_PARAM_TOLERANCE };
}

export function expertParamName(layer: number, expert: number, name: string): string {
  return `layers.${layer}.experts.${expert}.${name}`;
}

/** Every parameter of a model by name: dense ones, then experts layer by layer. Tensors are not copied. */
export function namedParams(params: ModelParams): Map<string, Tensor> {
  const out = new Map<string, Tensor>(denseParams(params).map((p) => [p.name, p.tensor]));
  params.experts.forEach((layer, l) =>
    layer.forEach((expert, e) => {
      for (const p of expertParams(expert)) out.set(expertParamName(l, e, p.name), p.tensor);
    }),
  );
  return out;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * The full model from FetchParams replies: dense parameters from rank 0, each expert from its
 * owner. Every tensor is checked against the shapes `initParams(model)` makes.
 *
 * @param replies [W] FetchParams replies, index = rank
 * @param owner [E] owner rank of each global expert
 * @throws ParityError when a parameter is missing, duplicated, misplaced or of the wrong shape
 */
export function assembleParams(model: ModelConfig, replies: readonly FetchParamsResponseOut[], owner: readonly number[]): ModelParams {
  const params = initParams(model);
  if (replies.length === 0) throw new ParityError('no FetchParams replies to assemble parameters from');

  const dense = namedTensorsFromMsg(replies[0]!.denseParams, 'FetchParams[rank 0].dense_params');
  const slots = denseParams(params);
  for (const slot of slots) {
    const got = dense.get(slot.name);
    if (!got) throw new ParityError(`FetchParams on rank 0 did not return dense parameter ${slot.name}`);
    if (!sameShape(got.shape, slot.tensor.shape)) {
      throw new ParityError(`FetchParams on rank 0: ${slot.name} has shape ${shapeText(got.shape)}, expected ${shapeText(slot.tensor.shape)}`);
    }
    slot.tensor.data.set(got.data);
    dense.delete(slot.name);
  }
  if (dense.size > 0) throw new ParityError(`FetchParams on rank 0 returned unknown dense parameters: ${[...dense.keys()].join(', ')}`);
  // denseParams() must hand out the model's own tensors for the copy above to land in `params`.
  const check = denseParams(params);
  if (check.some((p, i) => p.tensor.data !== slots[i]!.tensor.data)) {
    throw new ParityError('denseParams() returned copies, not the model tensors; cannot assemble the fetched parameters into a model');
  }

  const seen = new Set<string>();
  replies.forEach((reply, rank) => {
    for (const [i, shard] of reply.experts.entries()) {
      const where = `FetchParams on rank ${rank}, experts[${i}] (layer ${shard.layer}, expert ${shard.expert})`;
      if (shard.layer >= model.layers || shard.expert >= model.routedExperts) {
        throw new ParityError(`${where}: outside the model's ${model.layers} layers x ${model.routedExperts} experts`);
      }
      if (owner[shard.expert] !== rank) throw new ParityError(`${where}: expert ${shard.expert} belongs to rank ${owner[shard.expert]}`);
      const key = `${shard.layer}/${shard.expert}`;
      if (seen.has(key)) throw new ParityError(`${where}: returned twice`);
      seen.add(key);
      const named = namedTensorsFromMsg(shard.params, where);
      const init = params.experts[shard.layer]![shard.expert]!;
      const next: Record<string, Tensor> = {};
      for (const p of expertParams(init)) {
        const got = named.get(p.name);
        if (!got) throw new ParityError(`${where}: ${p.name} is missing`);
        if (!sameShape(got.shape, p.tensor.shape)) {
          throw new ParityError(`${where}: ${p.name} has shape ${shapeText(got.shape)}, expected ${shapeText(p.tensor.shape)}`);
        }
        next[p.name] = got;
      }
      params.experts[shard.layer]![shard.expert] = { w1: next.w1!, w3: next.w3!, w2: next.w2! } satisfies ExpertParams;
    }
  });
  for (let l = 0; l < model.layers; l++) {
    for (let e = 0; e < model.routedExperts; e++) {
      if (!seen.has(`${l}/${e}`)) throw new ParityError(`expert ${e} of layer ${l} was not returned by its owner, rank ${owner[e]}`);
    }
  }
  return params;
}

export interface LossComparison {
  /** Largest |actual - expected| / |expected| over the steps (|actual - expected| where expected is 0). */
  maxRelative: number;
  /** Step where it occurs (0-based), -1 when there are no steps. */
  step: number;
  actual: number;
  expected: number;
}

/**
 * Step-by-step loss difference. A NaN or infinite loss on either side counts as an infinite difference.
 * @param actual [S] distributed losses; @param expected [S] reference losses
 */
export function compareLosses(actual: readonly number[], expected: readonly number[]): LossComparison {
  if (actual.length !== expected.length) {
    throw new ParityError(`the run has ${actual.length} step losses but the reference has ${expected.length}`);
  }
  const worst: LossComparison = { maxRelative: 0, step: -1, actual: NaN, expected: NaN };
  actual.forEach((a, step) => {
    const e = expected[step]!;
    const diff = Math.abs(a - e);
    const relative = Number.isFinite(a) && Number.isFinite(e) ? (e === 0 ? diff : diff / Math.abs(e)) : Infinity;
    if (worst.step < 0 || relative > worst.maxRelative) Object.assign(worst, { maxRelative: relative, step, actual: a, expected: e });
  });
  return worst;
}

export interface ParamComparison {
  /** Largest |actual - expected| over every element of every parameter. */
  maxAbsolute: number;
  /** The parameter and flat element index where it occurs ("" and -1 when there are no elements). */
  name: string;
  index: number;
  actual: number;
  expected: number;
  /** Parameters compared. */
  count: number;
}

/**
 * Element-wise parameter difference; both sides must hold the same names and shapes. A NaN on
 * either side counts as an infinite difference.
 * @throws ParityError when the name sets or a shape differ
 */
export function compareParams(actual: ReadonlyMap<string, Tensor>, expected: ReadonlyMap<string, Tensor>): ParamComparison {
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  if (missing.length || extra.length) {
    throw new ParityError(
      `parameter sets differ:` + (missing.length ? ` missing from the run: ${missing.join(', ')};` : '') + (extra.length ? ` not in the reference: ${extra.join(', ')};` : ''),
    );
  }
  const worst: ParamComparison = { maxAbsolute: 0, name: '', index: -1, actual: NaN, expected: NaN, count: expected.size };
  for (const [name, e] of expected) {
    const a = actual.get(name)!;
    if (!sameShape(a.shape, e.shape)) throw new ParityError(`${name}: shape ${shapeText(a.shape)} in the run, ${shapeText(e.shape)} in the reference`);
    for (let i = 0; i < e.data.length; i++) {
      const diff = Math.abs(a.data[i]! - e.data[i]!);
      const d = Number.isNaN(diff) ? Infinity : diff;
      if (worst.index < 0 || d > worst.maxAbsolute) Object.assign(worst, { maxAbsolute: d, name, index: i, actual: a.data[i]!, expected: e.data[i]! });
    }
  }
  return worst;
}

export interface ParityReport {
  loss: LossComparison;
  params: ParamComparison;
  lossTolerance: number;
  paramTolerance: number;
  /** Both differences within their tolerances. */
  ok: boolean;
}

export interface ParityTolerances {
  /** Max relative loss difference per step. Default 1e-5. */
  loss?: number;
  /** Max absolute parameter difference. Default 1e-4. */
  param?: number;
}

/** Compares a run (losses per step, final params) with the reference's. */
export function checkParity(
  run: { losses: readonly number[]; params: ModelParams },
  reference: { losses: readonly number[]; params: ModelParams },
  tolerances: ParityTolerances = {},
): ParityReport {
  const lossTolerance = tolerances.loss ?? DEFAULT_LOSS_TOLERANCE;
  const paramTolerance = tolerances.param ?? DEFAULT_PARAM_TOLERANCE;
  const loss = compareLosses(run.losses, reference.losses);
  const params = compareParams(namedParams(run.params), namedParams(reference.params));
  return { loss, params, lossTolerance, paramTolerance, ok: loss.maxRelative <= lossTolerance && params.maxAbsolute <= paramTolerance };
}

/** Two lines: the largest loss and parameter differences, each against its tolerance. */
export function formatParity(report: ParityReport): string {
  const { loss, params } = report;
  const verdict = (ok: boolean) => (ok ? 'ok' : 'EXCEEDS TOLERANCE');
  const lossLine =
    loss.step < 0
      ? 'loss: no steps to compare'
      : `loss: max relative difference ${loss.maxRelative.toExponential(2)} at step ${loss.step + 1} ` +
        `(run ${loss.actual.toPrecision(8)}, reference ${loss.expected.toPrecision(8)}; tolerance ${report.lossTolerance}) ` +
        verdict(loss.maxRelative <= report.lossTolerance);
  const paramLine =
    params.index < 0
      ? 'params: nothing to compare'
      : `params: max absolute difference ${params.maxAbsolute.toExponential(2)} in ${params.name}[${params.index}] ` +
        `(run ${params.actual.toPrecision(8)}, reference ${params.expected.toPrecision(8)}; ` +
        (Number.isFinite(report.paramTolerance)
          ? `tolerance ${report.paramTolerance}; ${params.count} tensors) ${verdict(params.maxAbsolute <= report.paramTolerance)}`
          : `${params.count} tensors) not checked (no parameter tolerance was set)`);
  return `${lossLine}\n${paramLine}`;
}
