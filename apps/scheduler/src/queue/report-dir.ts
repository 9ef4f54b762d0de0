/**
 * A run's report folder, `<reportsDir>/<runId>/`, belongs to one job for all time. The first
 * attempt records the job in `<dir>/owner.json`; later attempts of the same job find themselves
 * there; any other job (a run id copied into another job's data, a second queue sharing the
 * reports folder) is refused before it writes a byte, so no report is overwritten and no folder
 * mixes two runs.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidRunError } from './errors';

export const OWNER_FILE = 'owner.json';

export interface ReportOwner {
  runId: string;
  jobId: string;
  /** The queue's key prefix. */
  queuePrefix: string;
  /** The job's creation time (BullMQ `job.timestamp`, ms): with the id, it names one job for all time. */
  submittedAt: number;
}

/**
 * Creates `dir` for `owner`, or checks that it is already `owner`'s.
 * @throws InvalidRunError (field "runId") when another job owns it
 */
export function claimReportDir(dir: string, owner: ReportOwner): void {
  const file = join(dir, OWNER_FILE);
  if (existsSync(file)) {
    let found: Partial<ReportOwner> = {};
    try {
      found = JSON.parse(readFileSync(file, 'utf8')) as Partial<ReportOwner>;
    } catch {
      // unreadable: treated as another job's, below
    }
    const same = found.runId === owner.runId && found.jobId === owner.jobId && found.queuePrefix === owner.queuePrefix && found.submittedAt === owner.submittedAt;
    if (!same) {
      throw new InvalidRunError(
        `invalid run: runId: ${owner.runId} already belongs to job ${found.jobId ?? '?'} of queue prefix "${found.queuePrefix ?? '?'}" ` +
          `submitted at ${found.submittedAt ? new Date(found.submittedAt).toISOString() : '?'} (see ${file}); submit the run without a runId and one is assigned`,
        'runId',
      );
    }
    return;
  }
  if (existsSync(dir)) {
    throw new InvalidRunError(`invalid run: runId: the report folder ${dir} exists and belongs to no job; submit the run without a runId and one is assigned`, 'runId');
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(owner, null, 2)}\n`);
}
