/** `moe worker ...`: this process becomes one worker (apps/worker/src/main.ts, same flags). */
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { WORKER_MAIN } from '../paths';

/** Hands the process to the worker's main with `args`; resolves once it is loaded (the worker then runs on). */
export async function workerCommand(args: readonly string[]): Promise<undefined> {
  process.argv = [process.argv[0]!, WORKER_MAIN, ...args];
  await import(pathToFileURL(WORKER_MAIN).href);
  return undefined;
}

/** Adds `worker` to `program` for its help; `main` hands `moe worker ...` over before commander parses it. */
export function addWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run one worker in the foreground (flags as apps/worker: --scheduler <host:port> [--host] [--port] [--backend] [--worker-id] ...)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments();
}
