/**
 * The client side of the `runs` queue: submit a run, follow it to its end, list recent runs,
 * cancel one. `moe submit`, `moe runs` and `moe cancel` are thin over this; so are the tests.
 */
import { Queue, QueueEvents, type Job, type JobState } from 'bullmq';
import type { Redis } from 'ioredis';
import { bullConnection, cancelChannel, cancelKey, connectRedis, QUEUE_NAME, type QueueLocation } from './connection';
import { UnknownRunError } from './errors';
import type { RunJobData, RunProgress, RunResult } from './run-job';
import { newRunId, RUN_ID_PATTERN } from '../run/run-id';

export interface SubmitOptions {
  /** Attempts in all (1: no retry). Default 3. */
  attempts?: number;
  /** First retry delay, ms; doubles each retry. Default 5000. */
  backoffMs?: number;
}

export const SUBMIT_DEFAULTS: Required<SubmitOptions> = { attempts: 3, backoffMs: 5_000 };

/** Finished jobs kept for `moe runs`. */
const KEEP = { count: 1_000 };

export interface FollowHandlers {
  onProgress?: (progress: RunProgress) => void;
  /** An attempt failed and BullMQ will retry: its reason, and attempts made so far. */
  onRetry?: (reason: string, attemptsMade: number) => void;
  /** The job went back to the queue (its service stopped). */
  onRequeued?: () => void;
  /** Stops following (the run goes on); `follow` then resolves with state "detached". */
  signal?: AbortSignal;
}

export type RunOutcome =
  | { state: 'completed'; jobId: string; result: RunResult; attemptsMade: number }
  | { state: 'failed'; jobId: string; reason: string; attemptsMade: number }
  | { state: 'detached'; jobId: string };

/** One line of `moe runs`. */
export interface RunRow {
  /** BullMQ's job id (starts again at 1 when Redis loses its state). */
  id: string;
  /** The run's id, unique for all time: its report folder's name (null: a job added without one, before a service took it). */
  runId: string | null;
  kind: string;
  state: JobState | 'unknown';
  /** Attempts started so far (the one running included). */
  attemptsStarted: number;
  attemptsMade: number;
  attempts: number;
  progress: RunProgress | null;
  submittedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  result: RunResult | null;
  failedReason: string | null;
  /** A cancel was asked for and not yet carried out. */
  cancelRequested: boolean;
}

const STATES: JobState[] = ['active', 'waiting', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'];

export class RunQueue {
  private constructor(
    readonly location: QueueLocation,
    readonly queue: Queue<RunJobData, RunResult>,
    private readonly redis: Redis,
  ) {}

  /** @throws RedisUnavailableError when Redis does not answer at `location.redisUrl` */
  static async connect(location: QueueLocation): Promise<RunQueue> {
    const redis = await connectRedis(location.redisUrl);
    const queue = new Queue<RunJobData, RunResult>(QUEUE_NAME, { connection: bullConnection(location.redisUrl), prefix: location.prefix });
    queue.on('error', () => {});
    await queue.waitUntilReady();
    return new RunQueue(location, queue, redis);
  }

  /**
   * Adds the run to the queue with a new run id (`data.runId`, unless given); its job's name is
   * its kind. Retries use exponential backoff.
   */
  async submit(data: RunJobData, options: SubmitOptions = {}): Promise<Job<RunJobData, RunResult>> {
    const { attempts, backoffMs } = { ...SUBMIT_DEFAULTS, ...options };
    return this.queue.add(data.kind, { ...data, runId: data.runId ?? newRunId() }, {
      attempts,
      backoff: { type: 'exponential', delay: backoffMs },
      removeOnComplete: KEEP,
      removeOnFail: KEEP,
    });
  }

  /** A QueueEvents listener, ready: create it before `submit` so no event of the new job is missed. */
  async events(): Promise<QueueEvents> {
    const events = new QueueEvents(QUEUE_NAME, { connection: bullConnection(this.location.redisUrl), prefix: this.location.prefix });
    events.on('error', () => {});
    await events.waitUntilReady();
    return events;
  }

  /**
   * Follows job `id` (a job id or a run id) until it completes or fails for good (retries are reported through
   * `onRetry`), or until `signal` aborts. Uses `events` when given (then left open), else its own.
   */
  async follow(id: string, handlers: FollowHandlers = {}, events?: QueueEvents): Promise<RunOutcome> {
    const jobId = RUN_ID_PATTERN.test(id) ? ((await this.find(id))?.id ?? id) : id;
    const own = !events;
    const ev = events ?? (await this.events());
    try {
      return await new Promise<RunOutcome>((resolve, reject) => {
        const cleanup: (() => void)[] = [];
        const finish = (outcome: RunOutcome | Error) => {
          cleanup.forEach((f) => f());
          if (outcome instanceof Error) reject(outcome);
          else resolve(outcome);
        };
        const on = <E extends string>(event: E, listener: (args: { jobId: string } & Record<string, unknown>) => void) => {
          const wrapped = (args: { jobId: string } & Record<string, unknown>) => args.jobId === jobId && listener(args);
          ev.on(event as 'progress', wrapped as never);
          cleanup.push(() => ev.off(event as 'progress', wrapped as never));
        };
        on('progress', (args) => handlers.onProgress?.(args.data as RunProgress));
        on('delayed', () => void this.retryReason(jobId).then((r) => r && handlers.onRetry?.(r.reason, r.attemptsMade)));
        on('waiting', (args) => args.prev === 'active' && handlers.onRequeued?.());
        // Final states come from the job itself, so an event missed (or sent before we listened) is no loss.
        const check = () =>
          void this.outcome(jobId).then(
            (outcome) => outcome && finish(outcome),
            (error: Error) => finish(error),
          );
        on('completed', check);
        on('failed', check);
        const poll = setInterval(check, 1_000);
        cleanup.push(() => clearInterval(poll));
        if (handlers.signal) {
          const onAbort = () => finish({ state: 'detached', jobId });
          if (handlers.signal.aborted) return onAbort();
          handlers.signal.addEventListener('abort', onAbort, { once: true });
          cleanup.push(() => handlers.signal!.removeEventListener('abort', onAbort));
        }
        check();
      });
    } finally {
      if (own) await ev.close();
    }
  }

  private async retryReason(jobId: string): Promise<{ reason: string; attemptsMade: number } | null> {
    const job = await this.queue.getJob(jobId);
    return job?.failedReason ? { reason: job.failedReason, attemptsMade: job.attemptsMade } : null;
  }

  /** The final outcome of `jobId`, or null while it is still queued or running. */
  async outcome(jobId: string): Promise<RunOutcome | null> {
    const job = await this.queue.getJob(jobId);
    if (!job) throw new UnknownRunError(`no run ${jobId} in queue "${QUEUE_NAME}" (prefix "${this.location.prefix}"); see moe runs`);
    const state = await job.getState();
    if (state === 'completed') return { state, jobId, result: job.returnvalue, attemptsMade: job.attemptsMade };
    if (state === 'failed') return { state, jobId, reason: job.failedReason, attemptsMade: job.attemptsMade };
    return null;
  }

  /** The most recent `limit` runs, newest first. */
  async list(limit = 20): Promise<RunRow[]> {
    const jobs = (await this.queue.getJobs(STATES, 0, limit - 1, false)).filter(Boolean) as Job<RunJobData, RunResult>[];
    jobs.sort((a, b) => b.timestamp - a.timestamp || Number(b.id) - Number(a.id));
    return Promise.all(jobs.slice(0, limit).map((job) => this.row(job)));
  }

  /** One run's row, by job id or run id. @throws UnknownRunError */
  async get(id: string): Promise<RunRow> {
    const job = await this.find(id);
    if (!job) throw new UnknownRunError(`no run ${id} in queue "${QUEUE_NAME}" (prefix "${this.location.prefix}"); see moe runs`);
    return this.row(job);
  }

  /** The job of `id`: a job id, or a run id among the jobs the queue keeps. */
  async find(id: string): Promise<Job<RunJobData, RunResult> | undefined> {
    if (!RUN_ID_PATTERN.test(id)) return (await this.queue.getJob(id)) ?? undefined;
    const jobs = (await this.queue.getJobs(STATES, 0, -1, false)).filter(Boolean) as Job<RunJobData, RunResult>[];
    return jobs.find((job) => (job.data as { runId?: string }).runId === id);
  }

  private async row(job: Job<RunJobData, RunResult>): Promise<RunRow> {
    const state = await job.getState();
    const progress = typeof job.progress === 'object' && job.progress !== null && 'kind' in job.progress ? (job.progress as unknown as RunProgress) : null;
    const finished = state === 'completed' || state === 'failed';
    return {
      id: job.id!,
      runId: (job.data as { runId?: string }).runId ?? null,
      kind: job.name,
      state,
      attemptsStarted: Math.max(job.attemptsStarted ?? 0, job.attemptsMade),
      attemptsMade: job.attemptsMade,
      attempts: job.opts.attempts ?? 1,
      progress,
      submittedAt: job.timestamp,
      startedAt: job.processedOn ?? null,
      finishedAt: job.finishedOn ?? null,
      result: state === 'completed' ? (job.returnvalue ?? null) : null,
      failedReason: job.failedReason || null,
      cancelRequested: !finished && (await this.redis.exists(cancelKey(this.location, job.id!))) === 1,
    };
  }

  /**
   * Asks for `jobId` to be cancelled: a running run is stopped at once; a queued one fails as
   * cancelled when a service picks it up. Either way it is not retried. Returns the state the
   * job was in; a finished job is left as it is.
   */
  async cancel(id: string, reason = 'moe cancel'): Promise<JobState | 'unknown'> {
    const job = await this.find(id);
    if (!job) throw new UnknownRunError(`no run ${id} in queue "${QUEUE_NAME}" (prefix "${this.location.prefix}"); see moe runs`);
    const jobId = job.id!;
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return state;
    await this.redis.set(cancelKey(this.location, jobId), reason, 'EX', 7 * 24 * 3600);
    await this.redis.publish(cancelChannel(this.location), jobId);
    return state;
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
