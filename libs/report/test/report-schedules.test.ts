import { describe, expect, it } from 'vitest';
import { aggregateRuns, renderSweepSvg, buildReport, summarizeSettings, type RunSamples } from '../src';
import { simulateStep, simulateSweep, stepTimeOf } from './fixtures/report-timelines';

/** Runs of fb-overlap at 1 and 2 chunks for each ratio, beside a naive/overlapped sweep. */
function sweepWithFbOverlap(ratios: number[]): RunSamples[] {
  const runs = simulateSweep({ ratios, chunkCounts: [2, 4], steps: 3, warmupSteps: 1 });
  for (const ratio of ratios) {
    for (const chunks of [1, 2]) {
      const steps = [0, 1, 2].map((step) => {
        const timelines = simulateStep({ schedule: 'fb-overlap', chunks, layers: 2, ranks: 2, ratio, jitter: 1 + 0.01 * step });
        return { step, stepMs: stepTimeOf(timelines), timelines };
      });
      runs.push({ schedule: 'fb-overlap', chunks, ratio, warmupSteps: 1, steps });
    }
  }
  return runs;
}

describe('a report of three schedules', () => {
  const runs = sweepWithFbOverlap([0.5, 2]);
  const rows = aggregateRuns(runs);

  it('marks one winner per schedule other than naive in every setting', () => {
    for (const ratio of [0.5, 2]) {
      const winners = rows.filter((r) => r.ratio === ratio && r.winner).map((r) => r.schedule).sort();
      expect(winners).toEqual(['fb-overlap', 'overlapped']);
      for (const schedule of ['fb-overlap', 'overlapped']) {
        const mine = rows.filter((r) => r.ratio === ratio && r.schedule === schedule);
        const best = Math.min(...mine.map((r) => r.step_ms.median));
        expect(mine.find((r) => r.winner)!.step_ms.median).toBe(best);
      }
    }
  });

  it("summarises naive and each schedule's best run, with its exposed share of comm", () => {
    for (const setting of summarizeSettings(rows)) {
      expect(setting.schedules.map((s) => s.schedule).sort()).toEqual(['fb-overlap', 'naive', 'overlapped']);
      const fb = setting.schedules.find((s) => s.schedule === 'fb-overlap')!;
      const row = rows.find((r) => r.ratio === setting.ratio && r.schedule === 'fb-overlap' && r.winner)!;
      expect(fb.step_ms).toBe(row.step_ms.median);
      expect(fb.exposed_comm_share).toBeCloseTo(row.exposed_comm_ms.median / row.comm_ms.median, 12);
      expect(fb.speedup).toBeCloseTo(setting.naive_step_ms! / row.step_ms.median, 12);
    }
  });

  it('draws a sweep series per schedule', () => {
    const report = buildReport({ config: { command: 'test' }, runs, transport: null, environment: { node: 'v20', platform: 'linux', arch: 'x64', cpus: 2, cpuModel: 'cpu', date: new Date(0).toISOString() } });
    const svg = renderSweepSvg(report);
    for (const key of ['naive', 'overlapped', 'fb-overlap', 'ideal']) expect(svg).toContain(`class="point ${key}"`);
  });
});
