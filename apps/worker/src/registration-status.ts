/**
 * The worker's registration, kept in a small JSON file for a health check that runs as another
 * process (`moe health worker`, docker compose's healthcheck): whether the scheduler knows this
 * worker, and when it last said so. Written whole and renamed into place, so a reader never sees
 * half a file.
 */
import { renameSync, writeFileSync } from 'node:fs';

export interface RegistrationStatus {
  workerId: string;
  /** host:port of the scheduler this worker registers with. */
  scheduler: string;
  /** The scheduler's last word: it knows this worker (true) or not any more (false). */
  registered: boolean;
  /** When it said so, `Date.now()` ms: a stale time means the scheduler went silent. */
  at: number;
}

/** Writes `status` to `file`; a failure is logged, never thrown (health reporting must not stop the worker). */
export function writeRegistrationStatus(file: string, status: RegistrationStatus, log: (line: string) => void): void {
  const partial = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(partial, `${JSON.stringify(status)}\n`);
    renameSync(partial, file);
  } catch (error) {
    log(`worker ${status.workerId}: cannot write its registration status to ${file}: ${(error as Error).message}`);
  }
}
