/**
 * The bench's record of how the local workers' main threads shared the machine's cores: over each
 * row's run and over the host probes its prediction stands on (sched-stat.ts says why). Per step,
 * not per second: a step's all-to-alls move the same bytes at every compute ratio, so a row that
 * waited for a core longer a step than its probes did ran on a busier host than the one its
 * prediction measured.
 */
import { stepSettingsLabel } from '@moe/schedule';
import type { HostCpu } from '@moe/report';
import { watchCpu } from '../control/sched-stat';
import type { ScheduleRef } from './bench-prediction';

interface PerStep {
  runMs: number;
  waitMs: number;
}

const keyOf = (schedule: ScheduleRef, ratio: number) => `${stepSettingsLabel(schedule)} ratio ${ratio}`;
const round = (v: number) => Number(v.toPrecision(3));

export class BenchCpu {
  private readonly probes = new Map<string, PerStep[]>();
  private readonly rows = new Map<string, PerStep>();

  /** @param pids the worker processes; none (a cluster this bench did not start) records nothing */
  constructor(private readonly pids: readonly number[]) {}

  private async watch<T extends { steps: readonly unknown[] }>(run: () => Promise<T>): Promise<{ result: T; perStep: PerStep | null }> {
    const since = watchCpu(this.pids);
    const result = await run();
    const times = since();
    const steps = result.steps.length;
    return { result, perStep: times && steps > 0 ? { runMs: times.runMs / steps, waitMs: times.waitMs / steps } : null };
  }

  /** Runs a host probe of `schedule`, watching the workers. */
  async probe<T extends { steps: readonly unknown[] }>(schedule: ScheduleRef, run: () => Promise<T>): Promise<T> {
    const { result, perStep } = await this.watch(run);
    const label = stepSettingsLabel(schedule);
    if (perStep) this.probes.set(label, [...(this.probes.get(label) ?? []), perStep]);
    return result;
  }

  /** Runs the row of `schedule` at `ratio`, watching the workers. */
  async row<T extends { steps: readonly unknown[] }>(schedule: ScheduleRef, ratio: number, run: () => Promise<T>): Promise<T> {
    const { result, perStep } = await this.watch(run);
    if (perStep) this.rows.set(keyOf(schedule, ratio), perStep);
    return result;
  }

  /** report.json's `host_cpu` of a row; null when its run or its schedule's probes were not watched. */
  of(row: ScheduleRef & { ratio: number }): HostCpu | null {
    const own = this.rows.get(keyOf(row, row.ratio));
    const probes = this.probes.get(stepSettingsLabel(row));
    if (!own || !probes?.length) return null;
    const probesWait = probes.reduce((s, p) => s + p.waitMs, 0) / probes.length;
    return { run_ms: round(own.runMs), wait_ms: round(own.waitMs), probes_wait_ms: round(probesWait), probes: probes.length };
  }
}
