/**
 * The host under the bench's local cluster, as the simulator takes it (`HostCosts` per schedule),
 * from runs made for the purpose in the same bench run, and the record of every term and its
 * source for report.json. Nothing here reads a row being predicted.
 */
import { stepSettingsLabel } from '@moe/schedule';
import { computeShare, fitAllToAllWork, hostCostsOf, probeExtras, probeStallMs, STALL_FACTOR, type HostCosts, type ProbeStep } from '@moe/sim';
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
  /**
   * Host costs of the row of `schedule` at `ratio`: those of the probe of the same schedule and
   * chunks run just before that row; undefined when none was probed.
   *
   * Why the row's own probe alone: the host a shared machine lends drifts over seconds, and runs
   * next to each other share it. Replayed on the records of a default bench whose probes ran just
   * before their rows, the median of the probes of the 3 nearest ratios (minutes apart) left the
   * worst row at 80.8%, the adjacent probe alone at 86.6% (average 94.6% -> 94.8%).
   */
  of(ratio: number, schedule: ScheduleRef): HostCosts | undefined;
  /** report.json's config.prediction: every term, its value and where it was measured. */
  record: Record<string, unknown>;
}

const round = (v: number) => Number(v.toPrecision(4));
const keyOf = (ratio: number, s: ScheduleRef) => `${ratio}/${s.schedule}/${s.chunks}`;

/**
 * @param probes each ratio's host probes, by ratio (each run just before the row of its schedule)
 * @param plane the transport line's all-to-all on the plane the rows used; null when not measured
 */
export function benchHostModel(
  s: BenchStepSettings,
  calibration: readonly CalibrationProbe[],
  probes: ReadonlyMap<number, readonly HostProbe[]>,
  plane: MeasuredPlane | null,
): HostModel {
  const perByteMs = plane ? perByteMsOf(plane.mbps, plane.world) : 0;
  // The calibration probes run the same ops at two dilations: op lengths differ 4x, the host's launch does not.
  const calibrationOps = calibration.flatMap((p) => probeExtras(benchStepInput(s, { schedule: 'naive', chunks: 1 }, 1, p.dilation), p.steps).flatMap((step) => step.compute));
  const share = computeShare(calibrationOps);
  const costs = new Map<string, HostCosts>();
  const byRatio: Record<string, Record<string, unknown>> = {};
  for (const [ratio, list] of probes) {
    const terms: Record<string, unknown> = {};
    for (const probe of list) {
      const input = benchStepInput(s, probe.schedule, 1);
      const measured = hostCostsOf(probeExtras(input, probe.steps, perByteMs), share, perByteMs);
      const host = fitAllToAllWork(input, probe.steps, { ...measured, stallMs: probeStallMs(probe.steps) });
      costs.set(keyOf(ratio, probe.schedule), host);
      terms[stepSettingsLabel(probe.schedule)] = {
        measured_steps: probe.steps.length,
        compute_launch_ms: round(host.computeLaunchMs),
        compute_op_ms: round(host.computeOpMs),
        all_to_all_ms: round(measured.allToAllMs),
        all_to_all_work_ms: round(host.allToAllWorkMs),
        all_reduce_ms: round(host.allReduceMs),
        step_ms: round(host.stepMs),
        residual_ms: round(host.residualMs),
        stall_ms: round(host.stallMs),
      };
    }
    byRatio[String(ratio)] = terms;
  }
  const record = {
    what:
      "libs/sim predictStep: each row's op list with the sim backend's cost model, links and dilation on one rank's virtual clock, " +
      'plus the host terms below (HostCosts), each measured in this bench run on runs other than the rows',
    per_byte_ms: {
      value: perByteMs,
      source: plane
        ? `transport line: all-to-all of ${plane.world} processes on the ${plane.plane} data plane, ${plane.mbps.toFixed(0)} MB/s all ranks together (${(plane.mbps / plane.world).toFixed(1)} MB/s a rank)`
        : 'not measured (--transport-seconds 0): the data plane\'s time is all in all_to_all_work_ms',
    },
    compute_op_share: {
      value: round(share),
      source: `slope of each compute op's overshoot (measured - modeled) on its modeled ms over the calibration probes (naive, compute scale 1, dilations ${calibration.map((p) => Math.round(p.dilation)).join(' and ')}; ${calibrationOps.length} ops)`,
    },
    host_by_ratio: byRatio,
    host_of_a_row: "host_by_ratio's probe of the row's schedule at the row's ratio: the run just before the row",
    host_by_ratio_source:
      `just before each row, a probe run of its schedule (same chunks and micro-batches) at the rows' dilation (${Math.round(s.dilation)}) and compute scale 1, 1 warm-up step then the measured steps; ` +
      'from every rank\'s op records, each the median over the probe\'s steps of a mean over the step\'s ops: compute_launch_ms = mean launch gap (start - when it could start) a compute op; compute_op_ms = mean (overshoot - share x modeled); all_to_all_ms and all_reduce_ms = mean ' +
      '(launch gap + duration - the op alone on idle modeled links and the data plane\'s bytes), negative when per_byte_ms (the transport line streams at full tilt) charges more than the probe\'s all-to-alls took; step_ms = median (scheduler step - last op end); ' +
      'all_to_all_work_ms = the all-to-all term as the simulator uses it: host work after each all-to-all\'s bytes, queued on the rank\'s host port (all-to-alls in flight together share the cores that move frames), sized so the simulator\'s replay of the probe\'s own op list (with stall_ms) takes the probe\'s median step (all_to_all_ms, a mean over lone all-to-alls added as a latency, replayed overlapped probes 10-15% long); ' +
      `stall_ms = the median over the probe's steps of the largest rank's sum of what its all-to-alls took beyond ${STALL_FACTOR} x their own median over the probe's steps on that rank (a rank paused and every peer waited; queueing a schedule always has is in the median), added once to each row's step, not to the all-to-all work (a schedule would hide that behind compute; a pause it does not hide); ` +
      'residual_ms = what even no all-to-all work leaves over (the replay with none is longer than the probe), added once to each row\'s step',
  };
  const of = (ratio: number, schedule: ScheduleRef): HostCosts | undefined => costs.get(keyOf(ratio, schedule));
  return { of, record };
}
