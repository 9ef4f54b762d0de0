import { describe, expect, it } from 'vitest';
import { buildReport, predictionLine, renderMarkdown, reportToJson, validateReport, worstAlignment, type BenchReport } from '../src';
import { simulateSweep } from './fixtures/report-timelines';

const environment = { node: 'v20', platform: 'Linux', arch: 'x64', cpus: 2, cpuModel: 'Test CPU', date: '2025-01-01T00:00:00.000Z' };
const fresh = (): BenchReport => buildReport({ config: { command: 'npx moe bench' }, runs: simulateSweep(), transport: null, environment });

describe('predicted vs measured', () => {
  it('without predictions the report says nothing about them', () => {
    const report = fresh();
    expect(worstAlignment(report)).toBeNull();
    expect(predictionLine(report)).toBe('');
    expect(renderMarkdown(report)).not.toContain('Predicted vs measured');
  });

  it('lists each row\'s predicted beside its measured median and names the worst alignment; the report stays valid', () => {
    const report = fresh();
    report.results.forEach((row, i) => {
      const predicted = row.step_ms.median * (i === 1 ? 1.25 : 1.05);
      Object.assign(row, { predicted_step_ms: predicted, alignment: 1 - Math.abs(predicted - row.step_ms.median) / row.step_ms.median });
    });
    expect(worstAlignment(report)).toBeCloseTo(0.75, 12);
    const md = renderMarkdown(report);
    expect(md).toContain('## Predicted vs measured');
    const worst = report.results[1]!;
    expect(md).toContain(`Worst alignment: 75.0% (${worst.schedule}${worst.schedule === 'naive' ? '' : ` C${worst.chunks}`} at ratio ${worst.ratio}, faster than predicted).`);
    expect(md.split('\n').filter((l) => /^\| [\d.]+ \| (naive|overlapped) \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+% \| \d+ \| \d+ \| \d+ \|$/.test(l))).toHaveLength(report.results.length);
    expect(predictionLine(report)).toMatch(/worst 75\.0%/);
    // with the simulator's breakdown, each figure sits beside the measured one
    Object.assign(report.results[0]!, { predicted_compute_ms: 12, predicted_comm_ms: 34, predicted_exposed_comm_ms: 5 });
    const row = report.results[0]!;
    expect(renderMarkdown(report)).toContain(`% | ${row.compute_ms.median.toFixed(0)} / 12 | ${row.comm_ms.median.toFixed(0)} / 34 | ${row.exposed_comm_ms.median.toFixed(0)} / 5 |`);
    expect(validateReport(JSON.parse(reportToJson(report)))).toEqual([]);
  });

  it('with the workers\' cpu records, each row shows its wait a step beside its probes\'; a malformed record is invalid', () => {
    const report = fresh();
    report.results.forEach((row) => Object.assign(row, { predicted_step_ms: row.step_ms.median, alignment: 1 }));
    expect(renderMarkdown(report)).not.toContain('cpu wait');
    report.results.forEach((row, i) => Object.assign(row, { host_cpu: i === 0 ? null : { run_ms: 40, wait_ms: 30 + i, probes_wait_ms: 25, probes: 5 } }));
    const md = renderMarkdown(report);
    expect(md).toContain('| exposed_comm_ms | cpu wait |');
    const rows = md.split('## Predicted vs measured')[1]!.split('\n').filter((l) => /^\| [\d.]+ \| (naive|overlapped) \|/.test(l));
    expect(rows.at(0)).toMatch(/\| – \|$/);
    expect(rows.at(1)).toMatch(/\| 31 \/ 25 \|$/);
    // the worst row says how its workers' wait compared with its probes'
    Object.assign(report.results[2]!, { predicted_step_ms: report.results[2]!.step_ms.median * 0.8, alignment: 0.75 });
    expect(renderMarkdown(report)).toMatch(/Worst alignment: 75\.0% \(\S+( C\d)? at ratio [\d.]+, slower than predicted; its workers waited 32 ms a step for a core, 25 in its probes\)\./);
    expect(validateReport(JSON.parse(reportToJson(report)))).toEqual([]);
    Object.assign(report.results[1]!, { host_cpu: { run_ms: 40, wait_ms: -1, probes_wait_ms: 25, probes: 0 } });
    expect(validateReport(JSON.parse(reportToJson(report)))).toEqual([
      expect.stringMatching(/^results\[1\]\.host_cpu\.wait_ms/),
      expect.stringMatching(/^results\[1\]\.host_cpu\.probes/),
    ]);
  });
});
