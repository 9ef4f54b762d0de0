/**
 * Run ids: unique for all time, so two runs never share a report folder, a checkpoint or a
 * progress line, whatever happens to the queue (BullMQ job ids start again at 1 when Redis loses
 * its state). Time-ordered, so `ls reports/` lists runs in the order they were created:
 *
 *   run-20261201-052657-3f9a1c2b7d0e    (UTC date and time, then 48 random bits)
 *
 * 48 random bits make a collision within the same second a one-in-2^24 event only after 16
 * million runs in that second.
 */
import { randomBytes } from 'node:crypto';

export const RUN_ID_PATTERN = /^run-\d{8}-\d{6}-[0-9a-f]{12}$/;

/** A new run id, `run-YYYYMMDD-HHMMSS-<12 hex>` (UTC). */
export function newRunId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `run-${stamp}-${randomBytes(6).toString('hex')}`;
}

/**
 * The id one attempt of a run uses on the wire (LoadShard, RunStep, peer frames, flight
 * records): a worker left over from an earlier attempt can never mix its frames or records
 * into a later one, while reports and checkpoints stay under the run's own id.
 */
export function attemptRunId(runId: string, attempt: number): string {
  return `${runId}-a${attempt}`;
}
