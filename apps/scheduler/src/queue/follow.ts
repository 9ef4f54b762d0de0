/**
 * Following a queued run from the command line: a progress bar on a terminal (progress lines
 * otherwise) until the run ends, then its outcome. Ctrl-C stops following, not the run.
 */
import { lineLog, log } from '@moe/log';
import cliProgress from 'cli-progress';
import { fmtDuration } from '@moe/report';
import { EXIT, onSignals } from '../commands/exit';
import { progressText, summaryLine } from './format-runs';
import type { RunOutcome, RunQueue } from './run-queue';

/** Follows `jobId` with a progress bar (stderr), prints the outcome; returns the exit code. */
export async function followAndPrint(runs: RunQueue, jobId: string, flags: { json: boolean; progress: boolean }, events?: Awaited<ReturnType<RunQueue['events']>>): Promise<number> {
  const showBar = flags.progress && process.stderr.isTTY;
  const bar = new cliProgress.SingleBar(
    { format: `run ${jobId} [{bar}] {value}/{total} {unit} | {info}`, hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let lastLine = '';
  let lastAt = 0;
  const stopBar = () => {
    if (started) bar.stop();
    started = false;
  };
  // Progress without a terminal, retries and failure are log lines (stderr); the result is output (stdout).
  const logLine = lineLog(log());
  const detach = new AbortController();
  const release = onSignals(() => detach.abort(), ['SIGINT']);
  try {
    const outcome: RunOutcome = await runs.follow(
      jobId,
      {
        signal: detach.signal,
        onProgress: (p) => {
          const unit = `${p.unit}s`;
          if (showBar && p.total > 0) {
            if (!started) bar.start(p.total, p.done, { unit, info: progressText(p) });
            started = true;
            bar.setTotal(p.total);
            bar.update(p.done, { unit, info: progressText(p) });
          } else if (flags.progress) {
            const count = p.total ? `${p.unit} ${p.done}/${p.total}` : 'starting';
            const line = p.phase === 'waiting' ? progressText(p) : `${count}${progressText(p) ? `  ${progressText(p)}` : ''}`;
            // Without a terminal: a line per phase, then at most one a second, and the last.
            const due = p.phase !== 'running' || !lastLine || Date.now() - lastAt >= 1_000 || (p.total > 0 && p.done === p.total);
            if (line !== lastLine && due) {
              logLine(`run ${jobId}: ${line}`, { jobId, done: p.done, total: p.total });
              lastLine = line;
              lastAt = Date.now();
            }
          }
        },
        onRetry: (reason, made) => {
          stopBar();
          logLine(`run ${jobId}: attempt ${made} failed: ${reason}; retrying after the backoff`, { level: 'warn', jobId, attempt: made });
        },
        onRequeued: () => {
          stopBar();
          logLine(`run ${jobId}: back in the queue (its service stopped); it resumes when a service runs`, { level: 'warn', jobId });
        },
      },
      events,
    );
    stopBar();
    if (outcome.state === 'detached') {
      logLine(`stopped following run ${jobId}; it goes on (moe runs ${jobId} --wait, or moe cancel ${jobId})`, { jobId });
      return EXIT.sigint;
    }
    if (outcome.state === 'failed') {
      if (flags.json) console.log(JSON.stringify(outcome, null, 2));
      logLine(`moe: run ${jobId} failed after ${outcome.attemptsMade} attempt(s): ${outcome.reason}`, { level: 'error', jobId, attempts: outcome.attemptsMade });
      return EXIT.failed;
    }
    if (flags.json) {
      console.log(JSON.stringify(outcome, null, 2));
    } else {
      const r = outcome.result;
      console.log(`run ${jobId} (${r.kind}) done on attempt ${r.attempt} in ${fmtDuration(r.durationMs)} on ${r.workers.length} workers: ${summaryLine(r)}`);
      console.log(`report on the scheduler at ${r.report.dir}:`);
      for (const file of r.report.files) console.log(`  ${file}`);
    }
    return EXIT.ok;
  } finally {
    stopBar();
    release();
  }
}

