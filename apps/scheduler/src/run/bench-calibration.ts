/**
 * The bench's time dilation. Measured comm time of a naive step = host time + dilation x modeled
 * link time, so two probes (naive, compute scale 1) at dilations 4x and 16x the one the model
 * says gives `targetMs` separate the two; the dilation is then set so the links alone take
 * `targetMs` of a naive step.
 *
 * On a busy machine the host's time can swing more between the two probes than the links add,
 * and the slope comes out near zero or negative (a dilation of millions would follow). A slope
 * outside [1/2, 2] x the model's own (the links' ms per unit of dilation, exact from the link
 * model) is measured again, a bounded number of times, and then refused: MachineTooBusyError.
 */
import { loadavg } from 'node:os';

/** What one probe measured: medians over its measured steps, ms. */
export interface ProbeMeasure {
  comm: number;
  compute: number;
}

export interface DilationCalibration<P extends ProbeMeasure> {
  dilation: number;
  /** Measured comm ms of a naive step per unit of dilation. */
  slope: number;
  /** The modeled links' ms of a naive step per unit of dilation (no host). */
  modeledSlope: number;
  /** Comm ms of a naive step that does not grow with the dilation (the intercept). */
  hostCommMs: number;
  /** The accepted pair of probes, lower dilation first. */
  probes: { dilation: number; measure: P }[];
  /** Pairs measured (1 when the first was plausible). */
  tries: number;
}

/** The machine was too busy to calibrate: the probes' slope stayed implausible; the message says what was measured and what to do. */
export class MachineTooBusyError extends Error {
  override readonly name = 'MachineTooBusyError';
}

export interface CalibrateOptions<P extends ProbeMeasure> {
  /** ms the modeled links of one naive step should take. */
  targetMs: number;
  /** The modeled links' ms of a naive step per unit of dilation. */
  modeledSlope: number;
  /** Runs the naive step at `dilation`, compute scale 1. */
  probe: (dilation: number, attempt: number) => Promise<P>;
  /** Pairs of probes to try before refusing (default 3). */
  tries?: number;
  /** The machine's load, for the refusal's message (default /proc/loadavg's 1-minute figure). */
  load?: () => string;
}

/** Accepted slopes, as multiples of the model's. */
export const SLOPE_BOUNDS = { low: 0.5, high: 2 } as const;

export async function calibrateDilation<P extends ProbeMeasure>(o: CalibrateOptions<P>): Promise<DilationCalibration<P>> {
  const tries = o.tries ?? 3;
  if (!(o.modeledSlope > 0) || !(o.targetMs > 0)) throw new RangeError(`calibration needs a positive target (${o.targetMs} ms) and modeled slope (${o.modeledSlope} ms per unit of dilation)`);
  const dilations = [4, 16].map((f) => Math.max(1, Math.round((f * o.targetMs) / o.modeledSlope)));
  const slopes: number[] = [];
  for (let attempt = 0; attempt < tries; attempt++) {
    const measures: P[] = [];
    for (const d of dilations) measures.push(await o.probe(d, attempt));
    const slope = (measures[1]!.comm - measures[0]!.comm) / (dilations[1]! - dilations[0]!);
    slopes.push(slope);
    if (slope >= SLOPE_BOUNDS.low * o.modeledSlope && slope <= SLOPE_BOUNDS.high * o.modeledSlope) {
      return {
        dilation: Math.max(1, o.targetMs / slope),
        slope,
        modeledSlope: o.modeledSlope,
        hostCommMs: Math.max(0, measures[0]!.comm - slope * dilations[0]!),
        probes: dilations.map((dilation, i) => ({ dilation, measure: measures[i]! })),
        tries: attempt + 1,
      };
    }
  }
  const fmt = (v: number) => v.toPrecision(3);
  throw new MachineTooBusyError(
    `machine too busy: calibration probes of a naive step at dilations ${dilations[0]} and ${dilations[1]} measured all-to-all slopes of ` +
      `${slopes.map(fmt).join(', ')} ms per unit of dilation in ${tries} tries, where the modeled links alone give ${fmt(o.modeledSlope)} ` +
      `(accepted: ${SLOPE_BOUNDS.low}x to ${SLOPE_BOUNDS.high}x that); the host's own time swung more than the links add (load average ${(o.load ?? loadAverage)()}). ` +
      `Rerun when the load is lower, or pass a larger --comm-target than ${o.targetMs} ms (probes and rows then run at a larger dilation, where the host's share is smaller)`,
  );
}

/** The 1-minute load average (0 where the platform has none). */
export const loadAverage = (): string => loadavg()[0]!.toFixed(2);
