/**
 * `moe health scheduler|worker`: whether this service is ready (docker compose's healthchecks).
 * The check itself is plain JavaScript in bin/moe-health.mjs, which bin/moe.mjs runs before
 * loading tsx and this CLI (healthchecks run every few seconds in every container); this entry
 * lists it in `moe --help` and runs the same code when the CLI is loaded some other way.
 */
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { HEALTH_MAIN } from '../paths';

export async function healthCommand(args: readonly string[]): Promise<number> {
  const { health } = (await import(pathToFileURL(HEALTH_MAIN).href)) as { health: (args: readonly string[]) => Promise<number> };
  return health(args);
}

/** Adds `health` to `program` for its help; `main` hands `moe health ...` over before commander parses it. */
export function addHealthCommand(program: Command): void {
  program
    .command('health')
    .description('is this service ready? scheduler: its /healthz (Redis answers, queue consumed); worker: registered (MOE_WORKER_STATUS_FILE). Exit 0 yes, 1 no')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments();
}
