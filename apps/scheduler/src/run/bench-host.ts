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
   * Host costs of a row of `schedule`: from every probe of the same schedule and chunks in the
   * bench (one a ratio, each run just before a row), their steps pooled; undefined when none was probed.
   *
   * Why pooled: a probe's 3 steps move by a tenth from run to run on a shared 2-core host (the same
   * run again and again: medians 444-545 ms a step), and a row took that whole error from its one
   * probe. Replayed on the records of two default benches: each row from the probe just before it,
   * 3 and 4 rows under 0.9 alignment (worst 81.9%, 84.5%); from all five probes of its schedule,
   * 0 and 1 (worst 91.1%, 83.5%), average 95.5% / 95.0% -> 96.6% / 96.5%. (Before every schedule
   * had a warm-up run, the first ratio's probes were cold and pooling them hurt.)
   */
  of(schedule: ScheduleRef): HostCosts | undefined;
  /** report.json's config.prediction: every term, its value and where it was measured. */
  record: Record<string, unknown>;
}

const round = (v: number) => Number(v.toPrecision(4));

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
  // every probe of a schedule, whichever ratio's row it ran before: their steps in one list
  const pooled = new Map<string, { schedule: ScheduleRef; probes: number; steps: ProbeStep[] }>();
  for (const list of probes.values()) {
    for (const probe of list) {
      const label = stepSettingsLabel(probe.schedule);
      const entry = pooled.get(label) ?? { schedule: probe.schedule, probes: 0, steps: [] };
      entry.probes++;
      entry.steps.push(...probe.steps);
      pooled.set(label, entry);
    }
  }
  const costs = new Map<string, HostCosts>();
  const bySchedule: Record<string, Record<string, unknown>> = {};
  for (const [label, { schedule, probes: count, steps }] of pooled) {
    const input = benchStepInput(s, schedule, 1);
    const measured = hostCostsOf(probeExtras(input, steps, perByteMs), share, perByteMs);
    const host = fitAllToAllWork(input, steps, { ...measured, stallMs: probeStallMs(steps) });
    costs.set(label, host);
    bySchedule[label] = {
      probes: count,
      measured_steps: steps.length,
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
    host_by_schedule: bySchedule,
    host_of_a_row: "host_by_schedule's terms of the row's schedule and chunks: every probe of it in this bench, their steps pooled",
    host_by_schedule_source:
      `just before each row, a probe run of its schedule (same chunks and micro-batches) at the rows' dilation (${Math.round(s.dilation)}) and compute scale 1, 1 warm-up step then the measured steps; ` +
      'a schedule\'s probes (one a ratio) pooled; from every rank\'s op records, each the median over the pooled steps of a mean over the step\'s ops: compute_launch_ms = mean launch gap (start - when it could start) a compute op; compute_op_ms = mean (overshoot - share x modeled); all_to_all_ms and all_reduce_ms = mean ' +
      '(launch gap + duration - the op alone on idle modeled links and the data plane\'s bytes), negative when per_byte_ms (the transport line streams at full tilt) charges more than the probe\'s all-to-alls took; step_ms = median (scheduler step - last op end); ' +
      'all_to_all_work_ms = the all-to-all term as the simulator uses it: host work after each all-to-all\'s bytes, queued on the rank\'s host port (all-to-alls in flight together share the cores that move frames), sized so the simulator\'s replay of the probe\'s own op list (with stall_ms) takes the probe\'s median step (all_to_all_ms, a mean over lone all-to-alls added as a latency, replayed overlapped probes 10-15% long); ' +
      `stall_ms = the median over the pooled steps of the largest rank's sum of what its all-to-alls took beyond ${STALL_FACTOR} x their own median over the pooled steps on that rank (a rank paused and every peer waited; queueing a schedule always has is in the median), added once to each row's step, not to the all-to-all work (a schedule would hide that behind compute; a pause it does not hide); ` +
      'residual_ms = what even no all-to-all work leaves over (the replay with none is longer than the probe), added once to each row\'s step',
  };
  const of = (schedule: ScheduleRef): HostCosts | undefined => costs.get(stepSettingsLabel(schedule));
  return { of, record };
}
