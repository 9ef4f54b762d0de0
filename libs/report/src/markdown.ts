import { predictionSection } from './prediction';
import { loadLines, loadSection } from './load-section';
import { alignColumns, fmtBytes, fmtMs, fmtPercent, fmtRange, fmtRatio, fmtTimes } from './format';
import { ratiosOf } from './metrics';
import type { BenchReport, ResultRow, SettingSummary } from './types';

/** The rows the headline table shows: per setting, the naive run and each other schedule's best run. */
export function headlineRows(report: BenchReport): ResultRow[] {
  return report.results.filter((r) => r.schedule === 'naive' || r.winner);
}

const COLUMNS = [
  'ratio',
  'schedule',
  'chunks',
  'step_ms',
  'compute_ms',
  'comm_ms',
  'exposed_comm_ms',
  'overhead',
  'ideal_ms',
  'speedup',
  'efficiency',
] as const;

function cells(row: ResultRow, dash: string, times: string): string[] {
  return [
    fmtRatio(row.ratio),
    row.schedule,
    String(row.chunks),
    fmtRange(row.step_ms, dash),
    fmtRange(row.compute_ms, dash),
    fmtRange(row.comm_ms, dash),
    fmtRange(row.exposed_comm_ms, dash),
    fmtPercent(row.overhead),
    row.ideal_ms === null ? '-' : fmtMs(row.ideal_ms),
    fmtTimes(row.speedup, '-', times),
    fmtPercent(row.efficiency, '-'),
  ];
}

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], right: readonly boolean[]): string {
  const line = (cs: readonly string[]) => `| ${cs.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(header), `|${header.map((_, i) => (right[i] ? '---:' : ':---')).join('|')}|`, ...rows.map(line)].join('\n');
}

function headlineSentence(s: SettingSummary): string {
  if (s.naive_step_ms === null || s.overlapped_step_ms === null) {
    return `Compute-to-communication ratio ${fmtRatio(s.ratio)}: ${s.naive_step_ms === null ? 'no naive run' : 'no overlapped run'}, so no comparison.`;
  }
  return (
    `At a compute-to-communication ratio of ${fmtRatio(s.ratio)}, the overlapped schedule (${s.winning_chunks} chunks) ` +
    `takes ${fmtMs(s.overlapped_step_ms)} ms a step against ${fmtMs(s.naive_step_ms)} ms for naive: ` +
    `**${fmtTimes(s.speedup)} speedup**, ${fmtPercent(s.efficiency)} of the ideal overlap (${fmtMs(s.ideal_ms ?? 0)} ms); ` +
    `overhead over pure compute ${fmtPercent(s.overhead_naive)} -> ${fmtPercent(s.overhead_overlapped)}.` +
    (s.schedules ?? [])
      .filter((o) => o.schedule !== 'naive' && o.schedule !== 'overlapped')
      .map(
        (o) =>
          ` The ${o.schedule} schedule (${o.chunks} chunk${o.chunks === 1 ? '' : 's'}) takes ${fmtMs(o.step_ms)} ms: ` +
          `**${fmtTimes(o.speedup)} speedup**, ${fmtPercent(o.efficiency)} of the ideal overlap, ${fmtPercent(o.exposed_comm_share)} of its all-to-all time exposed.`,
      )
      .join('')
  );
}

/** The transport line: raw TCP against the gRPC Peer transport, their ratio, and what was measured. */
export function transportLine(report: BenchReport): string {
  const t = report.transport;
  if (!t) {
    const failed = report.config.transport_error;
    return typeof failed === 'string' ? `The transport line failed in this run (${failed}); the rows above stand without it.` : 'Transport bandwidth was not measured in this run.';
  }
  if (t.planes && t.planes.length > 0) {
    const planes = t.planes.filter((p) => p.plane !== 'tcp').map((p) => `${p.plane} ${p.mbps.toFixed(0)} MB/s (${p.ratio.toFixed(2)})`);
    return (
      `All-to-all of ${t.world ?? '?'} processes, ${fmtBytes(t.frame_bytes ?? 0)} frames, measured in the same run: raw TCP ${t.tcp_mbps.toFixed(0)} MB/s; ` +
      `${planes.join(', ')} (fraction of raw TCP; MB = 10^6 bytes).` +
      (t.used ? ` The runs above sent their frames over: ${t.used}.` : '') +
      (t.what ? ` Measured: ${t.what}.` : '') +
      hostBoundText(report)
    );
  }
  return (
    `Measured in the same run: raw TCP ${t.tcp_mbps.toFixed(0)} MB/s, gRPC ${t.grpc_mbps.toFixed(0)} MB/s; ` +
    `gRPC reaches ${t.ratio.toFixed(2)} of raw TCP (MB = 10^6 bytes)` +
    (t.what ? `. Measured: ${t.what}.` : '.') +
    hostBoundText(report)
  );
}

/** Which rows the host transport, not the modeled links, bound (empty when no row says). */
function hostBoundText(report: BenchReport): string {
  const rows = report.results.filter((r) => r.link);
  if (rows.length === 0) return '';
  const bound = rows.filter((r) => r.link!.host_bound).map((r) => `${r.schedule}${r.chunks > 1 ? ` C${r.chunks}` : ''} at ratio ${r.ratio}`);
  return bound.length === 0
    ? ` The modeled links, not the host transport, bound every row's all-to-alls.`
    : ` Bound by the host transport rather than the modeled links: ${bound.join(', ')}.`;
}

/** `report.md`: headline, the table per setting, every chunk count, transport, figures, how to reproduce. */
export function renderMarkdown(report: BenchReport): string {
  const right = COLUMNS.map((c) => !['schedule'].includes(c));
  const main = headlineRows(report).map((r) => {
    const cs = cells(r, '–', '×');
    if (r.winner) cs[2] = `**${cs[2]}**`;
    return cs;
  });
  const steps = [...new Set(report.results.map((r) => `${r.steps} measured steps after ${r.warmup_steps} warm-up`))].join('; ');
  const allHeader = ['ratio', 'schedule', 'chunks', 'step_ms', 'exposed_comm_ms', 'speedup', 'algbw_gbps', 'bytes/step', 'slowest rank', 'compute modeled', 'compute measured', 'op drift'];
  const all = report.results.map((r) => [
    fmtRatio(r.ratio),
    r.schedule,
    r.winner ? `**${r.chunks}**` : String(r.chunks),
    fmtRange(r.step_ms),
    fmtRange(r.exposed_comm_ms),
    fmtTimes(r.speedup, '-'),
    r.algbw_gbps.toFixed(3),
    fmtBytes(r.bytes_per_step),
    String(r.slowest_rank),
    r.modeled_compute_ms ? fmtRange(r.modeled_compute_ms) : '-',
    fmtRange(r.compute_ms),
    r.compute_drift === null || r.compute_drift === undefined ? '-' : `${r.compute_drift >= 0 ? '+' : ''}${(100 * r.compute_drift).toFixed(1)}%`,
  ]);
  const { command, ...settings } = report.config;
  const env = report.environment;
  const ratios = ratiosOf(report.results);
  const summary = report.summary;
  return [
    '# MoE all-to-all overlap benchmark',
    '',
    headlineSentence(summary),
    '',
    '## Results',
    '',
    `Per compute-to-communication ratio: the naive schedule and each other schedule's best run (winning chunk count in bold), all on the same global batch. ` +
      `Times in ms, median (min–max) over ${steps}. step_ms runs from the scheduler sending RunStep to the last reply; ` +
      `compute_ms, comm_ms and exposed_comm_ms are taken on the slowest worker (the one with the most compute): ` +
      `its compute stream's busy time, the time an all-to-all (dispatch, combine, and their backward) was in flight, and ` +
      `the time its compute stream sat idle while one was. overhead = (step - compute) / compute; ideal_ms = max(compute, comm) ` +
      `of the naive run; speedup = naive step / this step; efficiency = ideal / this step.`,
    '',
    markdownTable(COLUMNS, main, right),
    '',
    `Settings: ${ratios.map(fmtRatio).join(', ')} (headline ${fmtRatio(summary.headline_ratio)}).`,
    '',
    '### Every run',
    '',
    'algbw_gbps = bytes the slowest worker sent in all-to-alls / comm_ms, in 10^9 bytes/s (median over steps). ' +
      'compute modeled = the cost model\'s compute time on the slowest worker, beside compute measured (compute_ms); ' +
      'op drift = median over every modeled compute op of (measured - modeled) / modeled.',
    '',
    markdownTable(allHeader, all, allHeader.map((h) => h !== 'schedule')),
    '',
    ...predictionSection(report),
    ...loadSection(report.load),
    '## Transport',
    '',
    transportLine(report),
    '',
    '## Figures',
    '',
    "![Per-worker timeline of one step of each schedule's best run](timeline.svg)",
    '',
    '![Step time against the compute-to-communication ratio](sweep.svg)',
    '',
    '`trace.json` is in Chrome trace format: open it in https://ui.perfetto.dev or chrome://tracing (one process per worker, one track per stream).',
    '',
    '## Reproduce',
    '',
    '```sh',
    command,
    '```',
    '',
    ...(Object.keys(settings).length > 0 ? ['Settings:', '', '```json', JSON.stringify(settings, null, 2), '```', ''] : []),
    `Environment: Node ${env.node}, ${env.platform} (${env.arch}), ${env.cpus} x ${env.cpuModel}` +
      `${env.hostname ? `, host ${env.hostname}` : ''}${env.gitCommit ? `, commit ${env.gitCommit}` : ''}; ${env.date}.`,
    '',
  ].join('\n');
}

/** The headline table as aligned plain text for a terminal, with the transport line under it. */
export function formatTable(report: BenchReport): string {
  const right = COLUMNS.map((c) => c !== 'schedule');
  const rows = headlineRows(report).map((r) => {
    const cs = cells(r, '-', 'x');
    if (r.winner) cs[2] = `${cs[2]}*`;
    return cs;
  });
  return [
    ...alignColumns([[...COLUMNS], ...rows], right),
    '(ms: median (min-max); * winning chunk count; overhead, efficiency in %)',
    transportLine(report),
    ...loadLines(report.load),
  ].join('\n');
}
