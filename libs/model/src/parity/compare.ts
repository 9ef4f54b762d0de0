/**
 * The parity check: a distributed run against the single-process reference trainer on the
 * same global batches. Losses are compared step by step (relative difference), parameters
 * element by element (absolute difference), by the names `namedParams` gives them. Pure.
 */
import { namedParams, type ModelParams } from '../params';
import type { Tensor } from '../tensor';
import { ParityError } from './parity-error';

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
 * run's codec round trips and its gradient summation order (`StepMirror`, built by the
 * scheduler's run/parity-mirror.ts), so a lossy run is compared as strictly as an f32 one,
 * parameters included. How far a lossy run drifts from the f32 trajectory is a measured figure
 * (apps/scheduler/bench/codec-drift.bench.ts), not a tolerance.
 */
export function tolerancesForCodecs(_dispatchCodec: string, _combineCodec: string): Required<ParityTolerances> {
  return { loss: DEFAULT_LOSS_TOLERANCE, param: DEFAULT_PARAM_TOLERANCE };
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

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
      : `loss: max relative difference ${loss.maxRelative.toExponential(2)} at step ${loss.step} ` +
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
