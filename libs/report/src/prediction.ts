/**
 * Predicted beside measured: the cluster simulator's step time for each row of a bench report
 * (`ResultRow.predicted_step_ms`, filled by the bench) against the measured median, and the
 * alignment 1 - |predicted - measured| / measured (SimAI's measure; 1 is exact).
 */
import { stepSettingsLabel } from '@moe/schedule';
import type { BenchReport, ResultRow } from './types';

const predicted = (report: BenchReport): ResultRow[] => report.results.filter((r) => typeof r.predicted_step_ms === 'number');
const alignmentOf = (r: ResultRow) => r.alignment ?? 1 - Math.abs(r.predicted_step_ms! - r.step_ms.median) / r.step_ms.median;
/** The row of the smallest alignment (`rows` not empty). */
const worstRow = (rows: readonly ResultRow[]): ResultRow => rows.reduce((a, b) => (alignmentOf(b) < alignmentOf(a) ? b : a));

/** The smallest alignment of any row; null when no row carries a prediction. */
export function worstAlignment(report: BenchReport): number | null {
  const rows = predicted(report);
  return rows.length === 0 ? null : alignmentOf(worstRow(rows));
}

const fmtRatio = (r: number) => String(Number(r.toPrecision(3)));

/** The worst row's alignment, which row it is, and how its workers' wait for a core compared with its probes'. */
function worstSays(rows: readonly ResultRow[]): string {
  const worst = worstRow(rows);
  const label = `${stepSettingsLabel(worst)} at ratio ${fmtRatio(worst.ratio)}, ${worst.step_ms.median > worst.predicted_step_ms! ? 'slower' : 'faster'} than predicted`;
  const cpu = worst.host_cpu;
  const why = cpu ? ` (${label}; its workers waited ${cpu.wait_ms.toFixed(0)} ms a step for a core, ${cpu.probes_wait_ms.toFixed(0)} in its probes)` : ` (${label})`;
  return `${(100 * alignmentOf(worst)).toFixed(1)}%${why}`;
}

/** report.md's "Predicted vs measured" section; empty when no row carries a prediction. */
export function predictionSection(report: BenchReport): string[] {
  const rows = predicted(report);
  if (rows.length === 0) return [];
  const lines = [
    '## Predicted vs measured',
    '',
    'The cluster simulator (libs/sim) replays each row\'s op list with the sim backend\'s cost model, links and dilation on a virtual clock, ' +
      'plus what the local cluster\'s host adds (launch and overshoot of each compute op, each all-to-all\'s frames and waits, the data plane\'s bytes, the control plane; an all-to-all\'s host term is work queued on its rank\'s host, sized so the simulator replays the probe\'s own step), ' +
      'each measured in the same run on probe runs, never on the rows (config.prediction names every term and its source); ' +
      'alignment = 1 - |predicted - measured| / measured, on the median step. Beside the step: measured / predicted compute, comm and exposed comm, where a miss comes from.',
  ];
  const cpu = rows.some((r) => r.host_cpu);
  if (cpu) {
    lines[lines.length - 1] +=
      ' cpu wait: ms a step that the workers\' main threads sat runnable but waiting for a core in the row\'s run (the kernel\'s schedstat, mean over workers), ' +
      'beside the same over the probes of its schedule: a row that waited longer than its probes ran on a busier host than its prediction measured.';
  }
  lines.push(
    '',
    `| ratio | schedule | chunks | measured step_ms | predicted step_ms | alignment | compute_ms | comm_ms | exposed_comm_ms |${cpu ? ' cpu wait |' : ''}`,
    `|---:|:---|---:|---:|---:|---:|---:|---:|---:|${cpu ? '---:|' : ''}`,
  );
  const pair = (measured: number, predicted: number | undefined) => (predicted === undefined ? `${measured.toFixed(0)}` : `${measured.toFixed(0)} / ${predicted.toFixed(0)}`);
  const wait = (r: ResultRow) => (r.host_cpu ? `${r.host_cpu.wait_ms.toFixed(0)} / ${r.host_cpu.probes_wait_ms.toFixed(0)}` : '–');
  for (const r of rows) {
    lines.push(
      `| ${fmtRatio(r.ratio)} | ${r.schedule} | ${r.chunks} | ${r.step_ms.median.toFixed(1)} | ${r.predicted_step_ms!.toFixed(1)} | ${(100 * r.alignment!).toFixed(1)}% | ` +
        `${pair(r.compute_ms.median, r.predicted_compute_ms)} | ${pair(r.comm_ms.median, r.predicted_comm_ms)} | ${pair(r.exposed_comm_ms.median, r.predicted_exposed_comm_ms)} |` +
        (cpu ? ` ${wait(r)} |` : ''),
    );
  }
  lines.push('', `Worst alignment: ${worstSays(rows)}.`, '');
  return lines;
}

/** One line for the terminal; empty when no row carries a prediction. */
export function predictionLine(report: BenchReport): string {
  const rows = predicted(report);
  if (rows.length === 0) return '';
  const mean = rows.reduce((s, r) => s + alignmentOf(r), 0) / rows.length;
  return `simulator prediction of step_ms: alignment ${(100 * mean).toFixed(1)}% on average over ${rows.length} rows, worst ${worstSays(rows)}`;
}
