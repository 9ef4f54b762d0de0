/** `moe cancel <id>`: a running run stops now, a queued one fails as cancelled when picked up; no retry. */
import type { Command } from 'commander';
import { EXIT, type OnError } from './exit';
import { locationOptions, withRedisHint, withRunQueue, type LocationFlags } from './queue-options';

/** Cancels `jobId`, saying what that does in its state. */
export function cancelCommand(jobId: string, flags: LocationFlags, onError: OnError): Promise<number> {
  return withRunQueue(flags, onError, async (runs) => {
    const state = await runs.cancel(jobId);
    if (state === 'completed' || state === 'failed') console.log(`run ${jobId} already ${state}; nothing to cancel`);
    else if (state === 'active') console.log(`run ${jobId} is running: cancel sent; it stops now and fails as cancelled (no retry)`);
    else console.log(`run ${jobId} is ${state}: it fails as cancelled when a service picks it up (no retry)`);
    return EXIT.ok;
  });
}

/** Adds `cancel` to `program`; the action sets `process.exitCode`. */
export function addCancelCommand(program: Command, reportError: OnError): void {
  const onError = withRedisHint(reportError);
  locationOptions(
    program
      .command('cancel')
      .description('cancel a run: a running one stops now, a queued one fails as cancelled when picked up; no retry')
      .argument('<id>', 'a run (job) id'),
  ).action(async (id: string, flags: LocationFlags) => {
    process.exitCode = await cancelCommand(id, flags, onError);
  });
}
