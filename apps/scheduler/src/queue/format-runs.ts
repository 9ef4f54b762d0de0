/** How `moe submit` and `moe runs` print runs: one-line summaries, the table, one run in full. */
import { fmtDuration } from '@moe/report';
import type { RunRow } from './run-queue';
import type { BenchRunSummary, RunProgress, RunResult, TrainRunSummary } from './run-job';

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(0)}%`);

/** One line: what a finished run came to. */
export function summaryLine(result: RunResult): string {
  if (result.kind === 'bench') {
    const s = result.summary as BenchRunSummary;
    return (
      `speedup ${s.speedup === null ? '-' : `${s.speedup.toFixed(2)}x`}, efficiency ${pct(s.efficiency)}, ` +
      `overhead naive ${pct(s.overhead_naive)} / overlapped ${pct(s.overhead_overlapped)} at ratio ${s.headline_ratio}` +
      (s.winning_chunks ? ` (${s.winning_chunks} chunks)` : '')
    );
  }
  const s = result.summary as TrainRunSummary;
  return (
    `${s.steps} steps, final loss ${s.final_loss?.toFixed(6) ?? '-'} vs entropy ${s.entropy.toFixed(4)}, median step ${fmtDuration(s.median_step_ms)}` +
    (s.parity ? `, parity ${s.parity.ok ? 'ok' : 'FAILED'}` : '')
  );
}

export function progressText(p: RunProgress): string {
  if (p.phase === 'waiting') return `waiting for workers (attempt ${p.attempt})`;
  const parts = [p.label, p.stepMs !== undefined ? `step ${fmtDuration(p.stepMs)}` : '', p.loss !== undefined ? `loss ${p.loss.toFixed(4)}` : ''];
  return parts.filter(Boolean).join(', ');
}

const ago = (t: number | null, now: number) => {
  if (!t) return '-';
  const s = Math.max(0, (now - t) / 1000);
  return s < 60 ? `${s.toFixed(0)}s ago` : s < 3600 ? `${(s / 60).toFixed(0)}m ago` : s < 86400 ? `${(s / 3600).toFixed(1)}h ago` : `${(s / 86400).toFixed(1)}d ago`;
};

const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 3)}...` : text);

function outcomeText(row: RunRow): string {
  if (row.cancelRequested) return 'cancel requested';
  if (row.result) return `${summaryLine(row.result)}; report ${row.result.report.dir}`;
  if (row.failedReason) {
    // A table row is one line: the first line of the reason (details such as the flight
    // recorder's summary follow on later lines; `moe runs <id>` shows them whole).
    const reason = row.failedReason.split('\n')[0]!;
    return row.state === 'failed' ? reason : `last attempt: ${reason}`;
  }
  return '';
}

function progressCell(row: RunRow): string {
  const p = row.progress;
  if (!p) return '-';
  if (p.phase === 'waiting') return 'waiting for workers';
  // A count of steps done, not a step index ("4/10 steps": steps 0 to 3 are done).
  return p.total ? `${p.done}/${p.total} ${p.unit}s` : 'starting';
}

/** `moe runs <id>`: one run in full. */
export function formatRun(row: RunRow, now = Date.now()): string {
  const lines: [string, string][] = [
    ['run', `${row.runId ?? '(no run id yet)'} (${row.kind}, job ${row.id})`],
    ['state', row.state + (row.cancelRequested ? ' (cancel requested)' : '')],
    ['attempt', `${row.attemptsStarted} of ${row.attempts}`],
    ['progress', progressCell(row) + (row.progress?.workers ? ` on ${row.progress.workers.join(', ')}` : '')],
    ['submitted', ago(row.submittedAt, now)],
  ];
  if (row.finishedAt && row.startedAt) lines.push(['took', fmtDuration(row.finishedAt - row.startedAt)]);
  if (row.result) {
    lines.push(['result', summaryLine(row.result)]);
    lines.push(['report', `${row.result.report.dir} (on the scheduler)`]);
  }
  if (row.failedReason) lines.push([row.state === 'failed' ? 'failed' : 'last failure', row.failedReason]);
  return lines.map(([k, v]) => `${k.padEnd(12)} ${v}`).join('\n');
}

/** The `moe runs` table. */
export function formatRuns(rows: readonly RunRow[], now = Date.now()): string {
  if (rows.length === 0) return 'no runs in the queue';
  const table = [
    ['ID', 'RUN', 'KIND', 'STATE', 'ATTEMPT', 'PROGRESS', 'SUBMITTED', 'TOOK', 'OUTCOME'],
    ...rows.map((r) => [
      r.id,
      r.runId ?? '-',
      r.kind,
      r.state,
      `${r.attemptsStarted}/${r.attempts}`,
      progressCell(r),
      ago(r.submittedAt, now),
      r.finishedAt && r.startedAt ? fmtDuration(r.finishedAt - r.startedAt) : r.state === 'active' ? 'running' : '-',
      clip(outcomeText(r), 140),
    ]),
  ];
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  return table.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n');
}

