import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BENCH_DEFAULTS, runBench } from '../src/run/run-bench';
import { validateReport, validateTrace } from '@moe/report';

const out = mkdtempSync(join(tmpdir(), 'moe-bench-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('moe bench on a local cluster of sim workers', () => {
  it('writes a valid report with a naive, an overlapped and an fb-overlap row per ratio on the same micro-batches, and a trace with every op', async () => {
    const ran: string[] = [];
    const result = await runBench({
      ...BENCH_DEFAULTS,
      workers: 4,
      ratios: [0.5, 2],
      chunks: [2],
      fbChunks: [1],
      microBatches: 2,
      tokensPerRank: 256,
      warmupSteps: 1,
      measuredSteps: 1,
      commTargetMs: 60,
      transportSeconds: 0.2,
      out,
      command: 'test',
      onProgress: (done, total, label) => ran.push(`${done}/${total} ${label}`),
    });
    const report = JSON.parse(readFileSync(result.files.json, 'utf8'));
    expect(validateReport(report)).toEqual([]);
    // every schedule warms up, unmeasured, before the calibration (a worker's first steps of a schedule run slow)
    expect(ran.slice(0, 4)).toEqual(['1/19 warm-up: naive', '2/19 warm-up: overlapped C2', '3/19 warm-up: fb-overlap C1', expect.stringMatching(/^4\/19 calibration at dilation/)]);
    expect(ran).toHaveLength(19);
    expect(report.config.warmup_runs).toMatchObject({ steps: 6, compute_scale: 1, dilation: expect.any(Number) });
    for (const ratio of [0.5, 2]) {
      const rows = report.results.filter((r: { ratio: number }) => r.ratio === ratio);
      expect(rows.map((r: { schedule: string }) => r.schedule).sort()).toEqual(['fb-overlap', 'naive', 'overlapped']);
    }
    expect(report.config).toMatchObject({ micro_batches: 2, tokens_per_rank: 256, schedules: ['naive', 'overlapped C2', 'fb-overlap C1'] });
    expect(report.summary.schedules.map((s: { schedule: string }) => s.schedule).sort()).toEqual(['fb-overlap', 'naive', 'overlapped']);
    // the timeline draws one panel a schedule, each micro-batch's ops marked
    const svg = readFileSync(result.files.timelineSvg, 'utf8');
    expect(svg.match(/<g class="panel"/g)).toHaveLength(3);
    expect(svg).toContain('data-schedule="fb-overlap"');
    expect(svg).toMatch(/<rect class="micro-batch"/);
    expect(svg).toContain('>micro-batch 1 (strip, M1)</text>');
    // every row carries the simulator's prediction beside the measurement (its accuracy is a figure, not a test)
    for (const row of report.results) expect(row.alignment).toBeCloseTo(1 - Math.abs(row.predicted_step_ms - row.step_ms.median) / row.step_ms.median, 4); // report.json rounds each of the three figures to 6 digits, so the recomputed ratio can differ by ~1e-5
    for (const row of report.results) expect(row).toMatchObject({ predicted_compute_ms: expect.any(Number), predicted_comm_ms: expect.any(Number), predicted_exposed_comm_ms: expect.any(Number) });
    // every input of the prediction, its value and where it was measured: the data plane's bytes, the overshoot's growth, and each ratio's probe of each schedule
    const prediction = report.config.prediction;
    expect(prediction.per_byte_ms.value).toBeGreaterThan(0);
    expect(prediction.per_byte_ms.source).toMatch(/^transport line: all-to-all of 4 processes on the socket data plane/);
    expect(prediction.compute_op_share.source).toMatch(/calibration probes/);
    // one probe of each schedule before each of its rows (ratios 0.5 and 2), pooled per schedule
    expect(Object.keys(prediction.host_by_schedule).sort()).toEqual(['fb-overlap C1', 'naive', 'overlapped C2']);
    expect(prediction.host_by_schedule['overlapped C2']).toMatchObject({ probes: 2, measured_steps: 6, all_to_all_ms: expect.any(Number), compute_launch_ms: expect.any(Number) });
    expect(report.config.calibration).toMatchObject({ tries: expect.any(Number), probe_dilations: [expect.any(Number), expect.any(Number)] });
    expect(report.transport.tcp_mbps).toBeGreaterThan(0);
    expect(report.transport.grpc_mbps).toBeGreaterThan(0);
    // complete records: every setting that shapes a figure, what bound each row, what the transport line measured
    expect(report.config).toMatchObject({ accumulation_steps: 1, latency_scale: 0.01, dilation: expect.any(Number) });
    expect(Object.keys(report.config.compute_scales).map(Number).sort()).toEqual([0.5, 2]);
    for (const row of report.results) {
      expect(row.link, `${row.schedule} C${row.chunks} ratio ${row.ratio}`).toMatchObject({ host_bound: expect.any(Boolean), host_transport_ms: expect.any(Number), modeled_link_ms: expect.any(Number) });
      expect(row.link.modeled_link_ms).toBeGreaterThan(0);
    }
    // the workers' main threads on the cores (Linux schedstat), a step of each row beside its schedule's probes
    for (const row of report.results) {
      expect(row.host_cpu, `${row.schedule} C${row.chunks} ratio ${row.ratio}`).toMatchObject({ run_ms: expect.any(Number), wait_ms: expect.any(Number), probes_wait_ms: expect.any(Number), probes: 2 });
      expect(row.host_cpu.run_ms).toBeGreaterThan(0);
    }
    expect(readFileSync(result.files.markdown, 'utf8')).toMatch(/exposed_comm_ms \| cpu wait \|/);
    expect(report.transport.what).toMatch(/^an all-to-all among 4 processes/);
    expect(readFileSync(result.files.markdown, 'utf8')).toMatch(/Measured: an all-to-all among 4 processes/);
    // the all-to-all on every data plane, and the one the sim workers' frames went out over (auto: socket)
    expect(report.transport.planes.map((p: { plane: string }) => p.plane)).toEqual(['tcp', 'grpc', 'socket', 'socket-tcp']);
    expect(report.transport.used).toBe('socket');
    for (const row of report.results) expect(row.modeled_compute_ms.median).toBeGreaterThan(0);

    const trace = JSON.parse(readFileSync(result.files.trace, 'utf8'));
    expect(validateTrace(trace)).toEqual([]);
    // one process per worker, both streams, and every op kind of a step on every worker
    const events = trace.traceEvents.filter((e: { ph: string }) => e.ph === 'X');
    expect(new Set(events.map((e: { pid: number }) => e.pid))).toEqual(new Set([0, 1, 2, 3]));
    for (const kind of ['route', 'dispatch', 'experts', 'combine', 'post', 'loss', 'combine_bwd', 'experts_bwd', 'dispatch_bwd', 'allreduce', 'update']) {
      for (const pid of [0, 1, 2, 3]) {
        expect(events.some((e: { pid: number; name: string }) => e.pid === pid && e.name.startsWith(kind)), `${kind} on rank ${pid}`).toBe(true);
      }
    }
    for (const file of [result.files.markdown, result.files.timelineSvg, result.files.sweepSvg]) {
      expect(readFileSync(file, 'utf8').length).toBeGreaterThan(100);
    }

    // Expert load: the headline naive run's tokens per expert (2 layers x 8) and per GPU, then skewed
    // routing (top-2 on rank 0's two experts) without and with 4 redundant experts.
    const { sweep, skewed } = report.load;
    expect(sweep.load.expertLoads).toHaveLength(2);
    expect(sweep.load.expertLoads[0]).toHaveLength(8);
    const [plain, replicated] = skewed.rows;
    expect(plain).toMatchObject({ redundant_experts: 0, imbalance: 4, tokens_per_gpu: [expect.any(Number), 0, 0, 0] });
    expect(replicated.redundant_experts).toBe(4);
    expect(replicated.load.physical.physicalToLogical).toHaveLength(12);
    expect(replicated.imbalance).toBeLessThan(2);
    // The same tokens, spread over the copies.
    expect(replicated.tokens_per_gpu.reduce((a: number, b: number) => a + b)).toBe(plain.tokens_per_gpu[0]);
    expect(report.config.skewed).toMatchObject({ routing: 'skewed', top_k: 2, redundant_experts: 4 });
    expect(readFileSync(result.files.loadHeatmapSvg!, 'utf8').match(/<svg /g)).toHaveLength(4);
    expect(readFileSync(result.files.markdown, 'utf8')).toContain('## Expert load');
  }, 400_000); // 4 sim workers, 2 calibration runs, 6 host probes, 6 rows, 2 skewed runs and the transport line on a loaded 2-core machine
});
