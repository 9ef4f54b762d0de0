/** The run queue: `moe serve` (RunService), `moe submit` / `runs` / `cancel` (RunQueue), the job's data, progress and result. */
export { benchJobData, trainJobData } from '../commands/submit';
export { followAndPrint } from './follow';
export { formatRun, formatRuns, summaryLine } from './format-runs';
export { QUEUE_NAME, DEFAULT_PREFIX, DEFAULT_REDIS_URL, queueLocationFromEnv, type QueueLocation } from './connection';
export { InvalidRunError, RedisUnavailableError, RunCancelledError, ServiceStoppingError, UnknownRunError } from './errors';
export { executeRun, type RunContext } from './execute-run';
export { gatherWorkers, type GatherOptions } from './gather-workers';
export { RunQueue, SUBMIT_DEFAULTS, type FollowHandlers, type RunOutcome, type RunRow, type SubmitOptions } from './run-queue';
export { RunService, type RunServiceOptions } from './run-service';
export {
  benchJobSchema,
  runJobSchema,
  trainJobSchema,
  validateRunJob,
  RUN_KINDS,
  type BenchJobData,
  type BenchRunSummary,
  type RunJobData,
  type RunKind,
  type RunProgress,
  type RunResult,
  type TrainJobData,
  type TrainRunSummary,
  type ValidRun,
} from './run-job';
