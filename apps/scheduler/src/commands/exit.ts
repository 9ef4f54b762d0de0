/**
 * How every `moe` command ends: its exit codes, the errors that map to them, and what SIGINT /
 * SIGTERM do while it runs.
 *
 * Exit codes: 0 done; 1 the run failed (a worker exited or was lost, an RPC failed, replicas
 * diverged, Redis unreachable); 2 bad input (usage, config file, placement, schedule, unknown
 * run); 3 the parity check exceeded its tolerance; 130 / 143 stopped by SIGINT / SIGTERM.
 */
import { lineLog, log } from '@moe/log';
import { ConfigError } from '@moe/model';
import { ScheduleError } from '@moe/schedule';
import { BatchSplitError, CheckpointError, ConfigFileError, InterruptedError, PlacementError } from '../errors';

export const EXIT = { ok: 0, failed: 1, badInput: 2, parity: 3, sigint: 130, sigterm: 143 } as const;

/** Maps an error a command caught to its exit code (and says nothing). */
export type OnError = (error: unknown) => number;

/** The exit code of a process stopped by `signal`. */
export const signalExitCode = (signal: NodeJS.Signals): number => (signal === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);

/** Calls `handler` on each of `signals` until the returned function releases it. */
export function onSignals(handler: (signal: NodeJS.Signals) => void, signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): () => void {
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}

/**
 * The first SIGINT/SIGTERM calls `stop` (a graceful stop); a second one exits at once with the
 * signal's code (children are SIGKILLed on exit). Returns the release.
 */
export function stopOnSignals(stop: (signal: NodeJS.Signals) => void): () => void {
  let count = 0;
  return onSignals((signal) => {
    if (++count > 1) process.exit(signalExitCode(signal));
    stop(signal);
  });
}

/** SIGINT/SIGTERM abort `controller` with an InterruptedError; a second signal exits at once. */
export function interruptOn(controller: AbortController): () => void {
  return stopOnSignals((signal) => {
    log().warn({ signal }, `${signal}: stopping the workers (again to force)`);
    controller.abort(new InterruptedError(signal));
  });
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof InterruptedError) return signalExitCode(error.signal);
  if (error instanceof ConfigError || error instanceof ConfigFileError || error instanceof CheckpointError || error instanceof PlacementError || error instanceof BatchSplitError || error instanceof ScheduleError) {
    return EXIT.badInput;
  }
  return EXIT.failed;
}

/** Logs `moe: <what>: <error>` at error level, with the error's class and numbers; returns the exit code. */
export function reportError(error: unknown): number {
  const code = exitCodeOf(error);
  const e = error as Error;
  const label = code === EXIT.badInput ? 'invalid input' : code === EXIT.failed ? 'run failed' : 'stopped';
  lineLog(log())(`moe: ${label}: ${e?.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e?.message ?? String(error)}`, { level: 'error', err: error, exitCode: code });
  return code;
}
