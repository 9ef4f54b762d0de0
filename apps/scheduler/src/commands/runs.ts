/** `moe runs [id]`: recent runs of the queue with their state and outcome; with an id, that run (--wait follows it). */
import type { Command } from 'commander';
import { integer } from './flags';
import { EXIT, type OnError } from './exit';
import { locationOptions, withRedisHint, withRunQueue, type LocationFlags } from './queue-options';
import { followAndPrint } from '../queue/follow';
import { formatRun, formatRuns } from '../queue/format-runs';

interface RunsFlags extends LocationFlags {
  limit: number;
  json: boolean;
  wait: boolean;
  progress: boolean;
}

/** Prints one run or the recent ones; with an id and --wait, follows it. */
export function runsCommand(jobId: string | undefined, flags: RunsFlags, onError: OnError): Promise<number> {
  return withRunQueue(flags, onError, async (runs) => {
    if (jobId && flags.wait) return followAndPrint(runs, jobId, flags);
    if (jobId) {
      const row = await runs.get(jobId);
      console.log(flags.json ? JSON.stringify(row, null, 2) : formatRun(row));
    } else {
      const rows = await runs.list(flags.limit);
      console.log(flags.json ? JSON.stringify(rows, null, 2) : formatRuns(rows));
    }
    return EXIT.ok;
  });
}

/** Adds `runs` to `program`; the action sets `process.exitCode`. */
export function addRunsCommand(program: Command, reportError: OnError): void {
  const onError = withRedisHint(reportError);
  locationOptions(
    program
      .command('runs')
      .description('list recent runs of the queue with their state and outcome; with an id, that run (--wait follows it)')
      .argument('[id]', 'a run (job) id')
      .option('-n, --limit <n>', 'how many runs', integer('--limit', 1), 20)
      .option('--json', 'as JSON', false)
      .option('--wait', 'with an id: follow the run until it ends', false)
      .option('--no-progress', 'with --wait: no progress bar'),
  ).action(async (id: string | undefined, flags: RunsFlags) => {
    process.exitCode = await runsCommand(id, flags, onError);
  });
}
