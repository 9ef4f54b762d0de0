import { describe, expect, it } from 'vitest';
import {
  buildReport,
  collectEnvironment,
  formatTable,
  fromOpRecord,
  renderMarkdown,
  reportToJson,
  ReportError,
  toStepSample,
  validateReport,
  type BenchReport,
  type ReportEnvironment,
} from '../src';
import { simulateSweep } from './fixtures/report-timelines';

const environment: ReportEnvironment = {
  node: 'v20.19.0',
  platform: 'Linux 6.1',
  arch: 'x64',
  cpus: 2,
  cpuModel: 'Test CPU',
  date: '2025-01-01T00:00:00.000Z',
};
const command = 'npx moe bench --workers 2 --steps 6 --warmup 2 --ratios 0.25,0.5,1,2,4 --chunks 2,4,8';
const runs = simulateSweep();
const report = buildReport({ config: { command, workers: 2 }, runs, transport: { tcpMbps: 2000, grpcMbps: 400 }, environment });

describe('buildReport', () => {
  it('makes a report the validator accepts, before and after a JSON round trip', () => {
    expect(validateReport(report)).toEqual([]);
    expect(validateReport(JSON.parse(reportToJson(report)))).toEqual([]);
  });

  it('has one result row per (schedule, chunks, ratio), with the names DESIGN.md gives', () => {
    expect(report.results).toHaveLength(runs.length);
    for (const key of ['step_ms', 'compute_ms', 'comm_ms', 'exposed_comm_ms', 'overhead', 'ideal_ms', 'speedup', 'efficiency', 'algbw_gbps']) {
      expect(report.results[0]).toHaveProperty(key);
    }
    expect(report.results[0]!.step_ms).toEqual({ min: expect.any(Number), median: expect.any(Number), max: expect.any(Number) });
  });

  it('summarizes the headline setting (ratio 1) at the top, and every setting in summary.settings', () => {
    const { summary } = report;
    expect(summary.headline_ratio).toBe(1);
    expect(summary.settings.map((s) => s.ratio)).toEqual([0.25, 0.5, 1, 2, 4]);
    const naive = report.results.find((r) => r.ratio === 1 && r.schedule === 'naive')!;
    const best = report.results.find((r) => r.ratio === 1 && r.winner)!;
    expect(summary.winning_chunks).toBe(best.chunks);
    expect(summary.speedup).toBeCloseTo(naive.step_ms.median / best.step_ms.median);
    expect(summary.efficiency).toBeCloseTo(naive.ideal_ms! / best.step_ms.median);
    expect(summary.overhead_naive).toBe(naive.overhead);
    expect(summary.overhead_overlapped).toBe(best.overhead);
    // The simulated cluster gains from overlap everywhere.
    for (const s of summary.settings) expect(s.speedup!).toBeGreaterThan(1);
  });

  it('carries the transport figures with gRPC as a fraction of raw TCP', () => {
    expect(report.transport).toEqual({ tcp_mbps: 2000, grpc_mbps: 400, ratio: 0.2 });
    expect(buildReport({ config: { command }, runs, environment }).transport).toBeNull();
  });

  it('refuses a report that does not say how to reproduce it', () => {
    expect(() => buildReport({ config: { command: '' }, runs, environment })).toThrow(ReportError);
  });
});

describe('validateReport', () => {
  const copy = (): BenchReport => JSON.parse(JSON.stringify(report)) as BenchReport;

  it('names the path of each problem', () => {
    const bad = copy() as unknown as Record<string, any>;
    bad.schema = 'moe-bench/0';
    delete bad.results[1].comm_ms;
    bad.results[2].step_ms.min = 1e9;
    bad.summary.speedup = 'fast';
    bad.transport = { tcp_mbps: 1 };
    const problems = validateReport(bad);
    expect(problems).toContain('schema: expected "moe-bench/1", got "moe-bench/0"');
    expect(problems).toContain('results[1].comm_ms: expected {min, median, max}, got undefined');
    expect(problems.some((p) => p.startsWith('results[2].step_ms: min=1000000000'))).toBe(true);
    expect(problems).toContain('summary.speedup: expected a finite number or null, got string');
    expect(problems).toContain('transport.grpc_mbps: expected a finite number, got undefined');
  });

  it('refuses a second row for the same run and a non-object', () => {
    const bad = copy();
    bad.results.push(bad.results[0]!);
    expect(validateReport(bad).some((p) => p.includes('a second row for naive C1 ratio 0.25'))).toBe(true);
    expect(validateReport([])).toEqual(['report: expected an object, got an array']);
  });
});

describe('collectEnvironment', () => {
  it('reports node, platform and CPUs, and leaves the host name out unless asked', () => {
    const env = collectEnvironment({ now: new Date(0) });
    expect(env.node).toBe(process.version);
    expect(env.cpus).toBeGreaterThan(0);
    expect(env.date).toBe('1970-01-01T00:00:00.000Z');
    expect(env.hostname).toBeUndefined();
    expect(typeof collectEnvironment({ hostname: true }).hostname).toBe('string');
  });
});

describe('fromOpRecord', () => {
  it('converts a wire record and refuses an unknown stream by name', () => {
    const record = { name: 'dispatch', stream: 'comm', layer: 1, chunk: 2, microBatch: 0, startMs: 1, endMs: 3, bytesSent: 64, direction: 'forward' };
    expect(fromOpRecord(record)).toEqual(record);
    expect(() => fromOpRecord({ ...record, stream: 'gpu' })).toThrow(/stream="gpu"/);
    expect(() => fromOpRecord({ ...record, endMs: 0 })).toThrow(/not an interval/);
  });
});

describe('report.md and the terminal table', () => {
  const md = renderMarkdown(report);

  it('has a table row for naive and the best overlapped run of every setting', () => {
    const tableRows = md.split('\n').filter((l) => /^\| (0\.25|0\.5|1|2|4) \| (naive|overlapped) \| (\*\*)?\d/.test(l));
    expect(tableRows.filter((l) => l.includes('| naive |'))).toHaveLength(5 * 2); // headline table + every-run table
    for (const s of report.summary.settings) {
      expect(md).toContain(`| ${s.ratio} | overlapped | **${s.winning_chunks}** |`);
    }
  });

  it('has the transport line, the figures and the exact command line', () => {
    expect(md).toContain('raw TCP 2000 MB/s, gRPC 400 MB/s; gRPC reaches 0.20 of raw TCP');
    expect(md).toContain("![Per-worker timeline of one step of each schedule's best run](timeline.svg)");
    expect(md).toContain(`\`\`\`sh\n${command}\n\`\`\``);
  });

  it('says so when the transport line failed, and that the rows stand without it', () => {
    const failed = { ...report, transport: null, config: { ...report.config, transport_error: 'all-to-all rank 2 said nothing for 120 s, waiting for socket run alltoall-7 to report' } };
    expect(renderMarkdown(failed)).toContain('The transport line failed in this run (all-to-all rank 2 said nothing for 120 s, waiting for socket run alltoall-7 to report); the rows above stand without it.');
    expect(renderMarkdown({ ...report, transport: null })).toContain('Transport bandwidth was not measured in this run.');
  });

  it('prints an aligned table: every row as wide as the header, columns lined up', () => {
    const lines = formatTable(report).split('\n');
    const table = lines.slice(0, 11);
    const end = (line: string, word: string) => line.indexOf(word) + word.length;
    const speedupEnd = end(table[0]!, 'speedup');
    for (const line of table.slice(1)) expect(line[speedupEnd - 1]).toBe('x');
    expect(lines.at(-1)).toMatch(/raw TCP 2000 MB\/s/);
  });
});

describe('toStepSample', () => {
  it('converts every rank\'s wire timeline, and names the ranks that sent none', () => {
    const record = { name: 'combine', stream: 'comm', layer: 0, chunk: 0, microBatch: 0, startMs: 0, endMs: 2, bytesSent: 8, direction: 'forward' };
    expect(toStepSample({ step: 3, stepMs: 5, timelines: [[record], [record]] }).timelines[1]).toEqual([record]);
    expect(() => toStepSample({ step: 3, stepMs: 5, timelines: [[record], [], []] })).toThrow(
      'step 3: ranks 1, 2 sent no timeline; a report needs every worker to record one (StepOptions.record_timeline)',
    );
  });
});
