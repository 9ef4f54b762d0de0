/**
 * The host under the bench's local cluster, as the simulator takes it (`HostCosts` per schedule),
 * from runs made for the purpose in the same bench run, and the record of every term and its
 * source for report.json. Nothing here reads a row being predicted.
 */
import { stepSettingsLabel } from '@moe/schedule';
import { computeShare, hostCostsOf, probeExtras, type HostCosts, type ProbeStep } from '@moe/sim';
import { benchStepInput, perByteMsOf, type BenchStepSettings, type ScheduleRef } from './bench-prediction';

/** A calibration probe: the naive step at `dilation`, compute scale 1; its measured steps. */
export interface CalibrationProbe {
  dilation: number;
  steps: ProbeStep[];
}

/** A host probe: `schedule` at the rows' dilation, compute scale 1; its measured steps. */
export interface HostProbe {
  schedule: ScheduleRef;
  steps: ProbeStep[];
}

/** The transport line's all-to-all on the data plane the rows used. */
export interface MeasuredPlane {
  plane: string;
  /** 10^6 bytes/s, all ranks together. */
  mbps: number;
  world: number;
}

export interface HostModel {
  /** Host costs by schedule name (each schedule's probe). */
  bySchedule: Map<string, HostCosts>;
  /** report.json's config.prediction: every term, its value and where it was measured. */
  record: Record<string, unknown>;
}

const round = (v: number) => Number(v.toPrecision(4));

export function benchHostModel(s: BenchStepSettings, calibration: readonly CalibrationProbe[], probes: readonly HostProbe[], plane: MeasuredPlane | null): HostModel {
  const perByteMs = plane ? perByteMsOf(plane.mbps, plane.world) : 0;
  // The calibration probes run the same ops at two dilations: op lengths differ 4x, the host's launch does not.
  const calibrationOps = calibration.flatMap((p) => probeExtras(benchStepInput(s, { schedule: 'naive', chunks: 1 }, 1, p.dilation), p.steps).flatMap((step) => step.compute));
  const share = computeShare(calibrationOps);
  const bySchedule = new Map<string, HostCosts>();
  const schedules: Record<string, unknown> = {};
  for (const probe of probes) {
    const extras = probeExtras(benchStepInput(s, probe.schedule, 1), probe.steps, perByteMs);
    const host = hostCostsOf(extras, share, perByteMs);
    bySchedule.set(probe.schedule.schedule, host);
    schedules[probe.schedule.schedule] = {
      probe: stepSettingsLabel(probe.schedule),
      measured_steps: probe.steps.length,
      compute_launch_ms: round(host.computeLaunchMs),
      compute_op_ms: round(host.computeOpMs),
      all_to_all_ms: round(host.allToAllMs),
      all_reduce_ms: round(host.allReduceMs),
      step_ms: round(host.stepMs),
      samples_a_step: { compute_ops: extras[0]?.compute.length ?? 0, all_to_alls: extras[0]?.allToAll.length ?? 0, all_reduces: extras[0]?.allReduce.length ?? 0 },
    };
  }
  const record = {
    what:
      "libs/sim predictStep: each row's op list with the sim backend's cost model, links and dilation on one rank's virtual clock, " +
      'plus the host terms below (HostCosts), each measured in this bench run on runs other than the rows',
    per_byte_ms: {
      value: perByteMs,
      source: plane
        ? `transport line: all-to-all of ${plane.world} processes on the ${plane.plane} data plane, ${plane.mbps.toFixed(0)} MB/s all ranks together (${(plane.mbps / plane.world).toFixed(1)} MB/s a rank)`
        : 'not measured (--transport-seconds 0): the data plane\'s time is all in all_to_all_ms',
    },
    compute_op_share: {
      value: round(share),
      source: `slope of each compute op's overshoot (measured - modeled) on its modeled ms over the calibration probes (naive, compute scale 1, dilations ${calibration.map((p) => Math.round(p.dilation)).join(' and ')}; ${calibrationOps.length} ops)`,
    },
    schedules,
    schedules_source:
      `a probe run of each schedule at the rows' dilation (${Math.round(s.dilation)}) and compute scale 1, 1 warm-up step then the measured steps; ` +
      'from every rank\'s op records, each the median over the probe\'s steps of a mean over the step\'s ops: compute_launch_ms = mean launch gap (start - when it could start) a compute op; compute_op_ms = mean (overshoot - share x modeled); all_to_all_ms and all_reduce_ms = mean ' +
      '(launch gap + duration - the op alone on idle modeled links and the data plane\'s bytes); step_ms = median (scheduler step - last op end)',
  };
  return { bySchedule, record };
}
