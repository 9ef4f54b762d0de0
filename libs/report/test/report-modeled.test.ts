/**
 * Modeled against measured compute per row (a modeled device's ops carry the cost model's
 * duration), and the transport line with the all-to-all of every data plane.
 */
import { describe, expect, it } from 'vitest';
import { aggregateRuns, buildReport, formatTable, fromOpRecord, renderMarkdown, type OpRecordData, type ReportEnvironment, type StepSample } from '../src';

const op = (name: string, stream: OpRecordData['stream'], startMs: number, endMs: number, modeledMs?: number): OpRecordData => ({
  name,
  stream,
  layer: 0,
  chunk: -1,
  startMs,
  endMs,
  bytesSent: 0,
  direction: 'forward',
  ...(modeledMs === undefined ? {} : { modeledMs }),
});

/** Rank 0: experts measured 11 ms on a 10 ms model, post 5.5 on 5; rank 1: 8 ms on 8 (less compute). */
const step = (n: number): StepSample => ({
  step: n,
  stepMs: 30,
  timelines: [
    [op('experts', 'compute', 0, 11, 10), op('dispatch', 'comm', 11, 20), op('post', 'compute', 20, 25.5, 5)],
    [op('experts', 'compute', 0, 8, 8), op('dispatch', 'comm', 8, 20)],
  ],
});

const environment: ReportEnvironment = { node: 'v20', platform: 'Linux', arch: 'x64', cpus: 2, cpuModel: 'Test CPU', date: '2025-01-01T00:00:00.000Z' };

describe('modeled against measured compute', () => {
  const rows = aggregateRuns([{ schedule: 'naive', chunks: 1, ratio: 1, warmupSteps: 1, steps: [0, 1, 2].map(step) }]);

  it('sets the slowest worker\'s modeled compute beside its measured compute, and the median drift over every modeled op', () => {
    expect(rows[0]!.compute_ms.median).toBeCloseTo(16.5);
    expect(rows[0]!.modeled_compute_ms).toEqual({ min: 15, median: 15, max: 15 });
    // drifts per step: +10% (experts), +10% (post), 0% (rank 1's experts): median +10%
    expect(rows[0]!.compute_drift).toBeCloseTo(0.1);
  });

  it('leaves both out (null) when no op carries a model (cpu)', () => {
    const plain = (n: number): StepSample => ({ step: n, stepMs: 10, timelines: [[op('experts', 'compute', 0, 5)]] });
    const [row] = aggregateRuns([{ schedule: 'naive', chunks: 1, ratio: 1, warmupSteps: 0, steps: [plain(0)] }]);
    expect(row!.modeled_compute_ms).toBeNull();
    expect(row!.compute_drift).toBeNull();
  });

  it('reads modeled_ms off the wire, where 0 means none', () => {
    const wire = { name: 'experts', stream: 'compute', layer: 0, chunk: 0, startMs: 0, endMs: 2, bytesSent: 0, direction: 'forward' };
    expect(fromOpRecord({ ...wire, modeledMs: 1.5 }).modeledMs).toBe(1.5);
    expect(fromOpRecord({ ...wire, modeledMs: 0 })).not.toHaveProperty('modeledMs');
  });

  it('shows modeled, measured and drift in the every-run table of report.md', () => {
    const report = buildReport({ config: { command: 'moe bench' }, runs: [{ schedule: 'naive', chunks: 1, ratio: 1, warmupSteps: 1, steps: [0, 1, 2].map(step) }], environment });
    const md = renderMarkdown(report);
    expect(md).toContain('| compute modeled | compute measured | op drift |');
    expect(md).toContain('| 15.0 (15.0–15.0) | 16.5 (16.5–16.5) | +10.0% |');
  });
});

describe('the transport line', () => {
  const runs = [{ schedule: 'naive' as const, chunks: 1, ratio: 1, warmupSteps: 0, steps: [step(0)] }];
  it('gives the all-to-all of every data plane as a fraction of raw TCP, with its runs and CPU per MB, and the plane the runs used', () => {
    const report = buildReport({
      config: { command: 'moe bench' },
      runs,
      environment,
      transport: {
        tcpMbps: 1000,
        grpcMbps: 250,
        planes: [
          { plane: 'tcp', mbps: 1000 },
          { plane: 'grpc', mbps: 250 },
          { plane: 'socket', mbps: 900, runs: [700, 900, 950], cpuMsPerMb: 1.7 },
        ],
        frameBytes: 131072,
        world: 4,
        used: 'socket',
      },
    });
    expect(report.transport!.planes).toEqual([
      { plane: 'tcp', mbps: 1000, ratio: 1 },
      { plane: 'grpc', mbps: 250, ratio: 0.25 },
      { plane: 'socket', mbps: 900, ratio: 0.9, runs_mbps: [700, 900, 950], cpu_ms_per_mb: 1.7 },
    ]);
    const line = formatTable(report).split('\n').at(-1)!;
    expect(line).toMatch(/^All-to-all of 4 processes, 131 kB frames, measured in the same run: raw TCP 1000 MB\/s; grpc 250 MB\/s \(0\.25\), socket 900 MB\/s \(0\.90\)/);
    expect(line).toContain('The runs above sent their frames over: socket.');
  });
});
