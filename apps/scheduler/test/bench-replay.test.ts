/**
 * `moe bench --replay`: the bench's rows from the cost and link models alone, no processes. The
 * figures are the simulator's (not asserted as numbers); what is checked is what they mean.
 */
import { describe, expect, it } from 'vitest';
import { formatReplay, replayBench, type ReplayOptions } from '../src/run/bench-replay';
import { BENCH_DEFAULTS } from '../src/run/run-bench';

const options: ReplayOptions = { ...BENCH_DEFAULTS, ratios: [0.25, 1, 4], chunks: [2], fbChunks: [1, 2] };

describe('bench replay', () => {
  const rows = replayBench(options);
  const row = (schedule: string, chunks: number, ratio: number) => rows.find((r) => r.schedule === schedule && r.chunks === chunks && r.ratio === ratio)!;

  it('has one row per ratio and schedule, and is deterministic', () => {
    expect(rows).toHaveLength(3 * 4);
    expect(replayBench(options)).toEqual(rows);
  });

  it("sets the naive step's modeled all-to-alls to the comm target, and its compute to ratio times that", () => {
    for (const ratio of options.ratios) {
      const naive = row('naive', 1, ratio);
      expect(naive.commMs).toBeCloseTo(options.commTargetMs, 6);
      expect(naive.computeMs).toBeCloseTo(ratio * options.commTargetMs, 6);
      // naive hides nothing: every all-to-all waited for
      expect(naive.exposedCommMs).toBeCloseTo(naive.commMs, 6);
      expect(naive.speedup).toBe(1);
    }
  });

  it('derives speedup, efficiency and exposed share as the report does', () => {
    for (const r of rows) {
      const naive = row('naive', 1, r.ratio);
      expect(r.speedup).toBeCloseTo(naive.stepMs / r.stepMs, 9);
      expect(r.efficiency).toBeCloseTo(Math.max(naive.computeMs, naive.commMs) / r.stepMs, 9);
      expect(r.exposedShare).toBeCloseTo(r.exposedCommMs / r.commMs, 9);
      expect(r.stepMs).toBeGreaterThanOrEqual(Math.max(r.computeMs, r.commMs) - 1e-9);
    }
  });

  it('fb-overlap gives a shorter step than the overlapped schedule, which beats naive, at ratio 1', () => {
    expect(row('fb-overlap', 1, 1).stepMs).toBeLessThan(row('overlapped', 2, 1).stepMs);
    expect(row('overlapped', 2, 1).stepMs).toBeLessThan(row('naive', 1, 1).stepMs);
  });

  it('prints a line per row under a header', () => {
    const lines = formatReplay(rows).split('\n');
    expect(lines).toHaveLength(rows.length + 1);
    expect(lines[0]).toMatch(/^ratio\s+schedule\s+step ms/);
    expect(lines.some((l) => /^1\s+fb-overlap C1\s/.test(l))).toBe(true);
  });
});
