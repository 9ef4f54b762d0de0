/**
 * `moe serve`: the scheduler as a long-running service. It serves the Scheduler gRPC service
 * (workers register and heartbeat on their own, `moe worker --scheduler host:port`) and consumes
 * the BullMQ queue `runs`, one run at a time, on the workers registered at that moment.
 *
 * A job ends one of four ways:
 * - done: its result (summary, report location) is the job's return value;
 * - a run that can never work (`InvalidRunError`, a config, placement or batch split the model
 *   refuses, a checkpoint that is not the run's, a worker refusing the shard as invalid, a
 *   parity or checksum failure) or a cancelled one fails at once, with BullMQ's
 *   `UnrecoverableError`: no retries;
 * - an infrastructure failure (a worker lost or unreachable, too few workers in time) fails the
 *   attempt: BullMQ retries it with the job's backoff;
 * - the service stopping (SIGTERM) aborts the run and puts the job back in `wait`, untouched,
 *   for the next service: no job is left in `active`.
 */
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { LogLine } from '@moe/log';
import { ConfigError } from '@moe/model';
import { StepSettingsError } from '@moe/schedule';
import {
  BatchSplitError,
  CheckpointError,
  ChecksumMismatchError,
  ConfigFileError,
  ParityError,
  PlacementError,
  RendezvousTimeoutError,
  WorkerLostError,
  WorkerProcessExitError,
  WorkerRpcError,
} from '../errors';
import { DEFAULT_RENDEZVOUS_TIMEOUT_MS, SchedulerService } from '../control/rendezvous';
import { bullConnection, cancelChannel, cancelKey, connectRedis, QUEUE_NAME, redactUrl, type QueueLocation } from './connection';
import { InvalidRunError, RunCancelledError, ServiceStoppingError } from './errors';
import { executeRun } from './execute-run';
import type { RunOutcome, ServeMetrics } from '../metrics/serve-metrics';
import { validateRunJob, type RunJobData, type RunProgress, type RunResult } from './run-job';
import { newRunId } from '../run/run-id';

/** What `RunService.health` finds. */
export interface ServiceHealth {
  ok: boolean;
  /** "ok", or "error: <why>". */
  redis: string;
  /** "consuming", "not consuming" or "stopping (<signal>)". */
  queue: string;
  /** host:port of the Scheduler gRPC service, as workers dial it on this host. */
  scheduler: string;
  /** The job running now, if any. */
  running: string | null;
}

export interface RunServiceOptions extends QueueLocation {
  /** Interface the Scheduler gRPC service binds. Default 127.0.0.1 (0.0.0.0 in a container). */
  host?: string;
  /** Its port. Default 7000; 0 picks a free one. */
  port?: number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** How long a run waits for its workers to register, unless the job says. Default 60 000 ms. */
  rendezvousTimeoutMs?: number;
  /** Reports go to `<reportsDir>/<runId>/`. */
  reportsDir: string;
  /** Lines carry jobId, and runId once the run has one; failures carry the error's class. */
  log?: LogLine;
  /** Counts attempts and observes steps when given (served at GET /metrics). */
  metrics?: ServeMetrics;
}

/**
 * Errors no retry can mend: the same data meets the same refusal. Each fails the job at once
 * (UnrecoverableError) instead of spending its attempts and backoff.
 */
function isFinal(error: unknown): boolean {
  return (
    error instanceof InvalidRunError ||
    error instanceof ConfigError ||
    error instanceof ConfigFileError ||
    error instanceof PlacementError ||
    error instanceof BatchSplitError ||
    error instanceof StepSettingsError ||
    error instanceof CheckpointError ||
    error instanceof ParityError ||
    error instanceof ChecksumMismatchError
  );
}

/** gRPC INVALID_ARGUMENT: a worker refused the request itself (bad backend options, say). */
const GRPC_INVALID_ARGUMENT = 3;

/** Infrastructure failures: another attempt, with other or recovered workers, may succeed. */
function isInfrastructure(error: unknown): boolean {
  return (
    error instanceof WorkerLostError ||
    error instanceof WorkerProcessExitError ||
    error instanceof RendezvousTimeoutError ||
    (error instanceof WorkerRpcError && error.code !== GRPC_INVALID_ARGUMENT)
  );
}

const describe = (error: unknown) => {
  const e = error as Error;
  return e?.name && e.name !== 'Error' ? `${e.name}: ${e.message}` : (e?.message ?? String(error));
};

/** Sends a job's progress to Redis at most every `intervalMs`, the latest value winning. */
class ProgressReporter {
  private latest?: RunProgress;
  private inFlight?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private lastSent = 0;

  constructor(
    private readonly job: Job,
    private readonly log: LogLine,
    private readonly intervalMs = 100,
  ) {}

  update(progress: RunProgress): void {
    this.latest = progress;
    if (!this.timer && !this.inFlight) this.schedule();
  }

  private schedule(): void {
    const wait = Math.max(0, this.lastSent + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send();
    }, wait);
  }

  private send(): void {
    const progress = this.latest;
    this.latest = undefined;
    if (!progress) return;
    this.lastSent = Date.now();
    this.inFlight = this.job
      .updateProgress(progress as unknown as object)
      .catch((error: Error) => this.log(`serve: job ${this.job.id}: progress not recorded: ${error.message}`, { level: 'warn', jobId: this.job.id, err: error }))
      .finally(() => {
        this.inFlight = undefined;
        if (this.latest && !this.timer) this.schedule();
      });
  }

  /** Sends what is pending now and waits for it. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
    if (this.latest) {
      this.send();
      await this.inFlight;
    }
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * The warning `moe serve` prints when it binds beyond loopback without a cluster token: then
 * anyone who reaches the port can register a worker (and receive model shards), and reach the
 * workers that registered (FetchParams downloads the model). Undefined when there is nothing to say.
 */
export function unauthenticatedExposure(host: string, token: string | undefined): string | undefined {
  if (token || LOOPBACK.test(host)) return undefined;
  return (
    `serve: WARNING: the Scheduler service binds ${host}, beyond loopback, without a cluster token: anyone who reaches it can ` +
    'register as a worker and be sent model shards, and its workers answer anyone (FetchParams downloads the model). ' +
    'Set MOE_CLUSTER_TOKEN (the same on every worker), and MOE_TLS_* on an untrusted network; see README, "What an unauthenticated cluster exposes"'
  );
}

export class RunService {
  private worker?: Worker<RunJobData, RunResult>;
  private current?: { jobId: string; controller: AbortController };
  private stopSignal?: string;
  private stopping?: Promise<void>;
  private readonly log: LogLine;

  private constructor(
    readonly scheduler: SchedulerService,
    private readonly subscriber: Redis,
    private readonly redis: Redis,
    private readonly options: RunServiceOptions,
  ) {
    this.log = options.log ?? (() => {});
  }

  /** host:port workers register at. */
  get address(): string {
    return this.scheduler.address;
  }

  /**
   * Connects to Redis (failing fast with `RedisUnavailableError` when it does not answer), starts
   * the Scheduler service and begins consuming the queue.
   */
  static async start(options: RunServiceOptions): Promise<RunService> {
    const log = options.log ?? (() => {});
    const redis = await connectRedis(options.redisUrl);
    const subscriber = redis.duplicate();
    subscriber.on('error', () => {});
    const scheduler = new SchedulerService({
      host: options.host,
      port: options.port ?? 7000,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      log,
    });
    try {
      await scheduler.start();
    } catch (error) {
      redis.disconnect();
      subscriber.disconnect();
      throw error;
    }
    const exposure = unauthenticatedExposure(options.host ?? '127.0.0.1', scheduler.token);
    if (exposure) log(exposure, { level: 'warn' });
    const service = new RunService(scheduler, subscriber, redis, options);
    subscriber.on('message', (_channel: string, jobId: string) => service.cancelActive(jobId));
    await subscriber.subscribe(cancelChannel(options));
    const worker = new Worker<RunJobData, RunResult>(QUEUE_NAME, (job, token) => service.process(job, token), {
      connection: bullConnection(options.redisUrl),
      prefix: options.prefix,
      concurrency: 1,
      autorun: false,
    });
    worker.on('error', (error) => log(`serve: queue: ${error.message}`, { level: 'error', err: error }));
    service.worker = worker;
    void worker.run().catch((error: Error) => log(`serve: queue worker stopped: ${error.message}`, { level: 'error', err: error }));
    await worker.waitUntilReady();
    // The address bound (0.0.0.0 in a container), not the one this host dials (scheduler.address).
    const port = scheduler.address.split(':').pop();
    const host = options.host ?? '127.0.0.1';
    const bound = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    log(
      `serve: scheduler listening on ${bound} (workers: moe worker --scheduler <this host>:${port}); ` +
        `consuming queue "${QUEUE_NAME}" (prefix "${options.prefix}") at ${redactUrl(options.redisUrl)}; reports in ${options.reportsDir}`,
    );
    return service;
  }

  /**
   * Whether this service is ready to run jobs: Redis answers a PING within `timeoutMs`, the queue
   * worker is consuming, and the Scheduler gRPC service is bound (GET /healthz, `moe health scheduler`).
   */
  async health(timeoutMs = 2_000): Promise<ServiceHealth> {
    const redis = await Promise.race([
      this.redis.ping().then(
        () => 'ok',
        (error: Error) => `error: ${error.message}`,
      ),
      new Promise<string>((resolve) => setTimeout(() => resolve(`error: no PING answer within ${timeoutMs} ms`), timeoutMs).unref()),
    ]);
    const queue = this.stopSignal ? `stopping (${this.stopSignal})` : this.worker?.isRunning() ? 'consuming' : 'not consuming';
    const ok = redis === 'ok' && queue === 'consuming' && this.scheduler.address !== '';
    return { ok, redis, queue, scheduler: this.scheduler.address, running: this.current?.jobId ?? null };
  }

  /** Aborts the running job `jobId` as cancelled; a job not running here is caught when it starts. */
  private cancelActive(jobId: string): void {
    if (!this.current || this.current.jobId !== jobId) return;
    this.log(`serve: job ${jobId}: cancel requested; stopping the run`, { jobId });
    this.current.controller.abort(new RunCancelledError(`run ${jobId} was cancelled (moe cancel) while it ran`));
  }

  private async process(job: Job<RunJobData, RunResult>, token: string | undefined): Promise<RunResult> {
    const jobId = job.id!;
    const attempt = Math.max(1, job.attemptsStarted);
    const attempts = job.opts.attempts ?? 1;
    const controller = new AbortController();
    this.current = { jobId, controller };
    const progress = new ProgressReporter(job, this.log);
    this.log(`serve: job ${jobId} (${job.name}), attempt ${attempt} of ${attempts}: started`, { jobId, attempt });
    try {
      if (this.stopSignal) throw new ServiceStoppingError(this.stopSignal);
      const cancelled = await this.redis.get(cancelKey(this.options, jobId));
      if (cancelled !== null) throw new RunCancelledError(`run ${jobId} was cancelled (moe cancel) before it started`);
      const runId = await this.ensureRunId(job);
      const run = validateRunJob(job.data, job.name);
      const result = await executeRun(run, {
        jobId,
        runId,
        owner: { queuePrefix: this.options.prefix, submittedAt: job.timestamp },
        attempt,
        scheduler: this.scheduler,
        reportsDir: this.options.reportsDir,
        rendezvousTimeoutMs: this.options.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS,
        signal: controller.signal,
        onProgress: (p) => progress.update(p),
        onStep: this.options.metrics && ((kind, step, info) => this.options.metrics!.observeStep(kind, step, info)),
        log: (line, fields) => this.log(`serve: job ${jobId}: ${line}`, { jobId, runId, ...fields }),
      });
      await progress.flush();
      this.log(`serve: job ${jobId} (run ${runId}): done in ${(result.durationMs / 1000).toFixed(1)} s; report in ${result.report.dir}`, { jobId, runId });
      this.options.metrics?.countAttempt(result.kind, 'completed');
      return result;
    } catch (raw) {
      await progress.flush();
      throw await this.failure(controller.signal.aborted ? controller.signal.reason : raw, job, token, attempt, attempts);
    } finally {
      this.current = undefined;
    }
  }

  /**
   * The job's run id: the one in its data (`RunQueue.submit` sets it), or a new one stored in the
   * data before anything starts, so every later attempt finds the same.
   */
  private async ensureRunId(job: Job<RunJobData, RunResult>): Promise<string> {
    const data = job.data as { runId?: unknown };
    if (typeof data.runId === 'string' && data.runId) return data.runId;
    const runId = newRunId();
    await job.updateData({ ...job.data, runId } as RunJobData);
    this.log(`serve: job ${job.id}: assigned run id ${runId}`, { jobId: job.id, runId });
    return runId;
  }

  /** The error BullMQ should see for `error`, after doing what that error asks (requeue, cleanup). */
  private async failure(error: unknown, job: Job, token: string | undefined, attempt: number, attempts: number): Promise<Error> {
    const jobId = job.id!;
    const kind = job.name === 'bench' ? 'bench' : 'train';
    const count = (outcome: RunOutcome) => this.options.metrics?.countAttempt(kind, outcome);
    if (error instanceof ServiceStoppingError) {
      await job.moveToWait(token);
      this.log(`serve: job ${jobId}: ${error.message}`, { level: 'warn', jobId });
      count('requeued');
      return new WaitingError();
    }
    if (error instanceof RunCancelledError) {
      await this.redis.del(cancelKey(this.options, jobId)).catch(() => 0);
      this.log(`serve: job ${jobId}: ${error.message}`, { level: 'warn', jobId });
      count('cancelled');
      return new UnrecoverableError(describe(error));
    }
    if (error instanceof InvalidRunError) {
      this.log(`serve: job ${jobId}: refused: ${error.message}`, { level: 'error', jobId, err: error });
      count('failed');
      return new UnrecoverableError(error.message);
    }
    if (error instanceof ConfigError || error instanceof ConfigFileError || error instanceof PlacementError || error instanceof BatchSplitError || error instanceof StepSettingsError) {
      this.log(`serve: job ${jobId}: refused: ${describe(error)}`, { level: 'error', jobId, err: error });
      count('failed');
      return new UnrecoverableError(`invalid run: ${describe(error)}`);
    }
    if (error instanceof WorkerRpcError && error.code === GRPC_INVALID_ARGUMENT) {
      this.log(`serve: job ${jobId}: a worker refused the run: ${error.message}`, { level: 'error', jobId, err: error });
      count('failed');
      return new UnrecoverableError(`invalid run: a worker refused it: ${error.message}`);
    }
    if (isFinal(error)) {
      // CheckpointError, ParityError, ChecksumMismatchError: the run itself is wrong, not the cluster.
      this.log(`serve: job ${jobId}: failed (not retried: another attempt cannot succeed): ${describe(error)}`, { level: 'error', jobId, err: error });
      count('failed');
      return new UnrecoverableError(describe(error));
    }
    const retry = attempt < attempts;
    this.log(
      `serve: job ${jobId}: attempt ${attempt} of ${attempts} failed${isInfrastructure(error) ? ' (infrastructure)' : ''}: ${describe(error)}` +
        (retry ? '; BullMQ retries it after its backoff' : '; no attempts left'),
      { level: retry ? 'warn' : 'error', jobId, attempt, err: error },
    );
    count(retry ? 'retried' : 'failed');
    return new Error(describe(error));
  }

  /**
   * Stops cleanly: the run in progress is aborted and its job goes back to `wait`; the queue
   * worker, the Redis connections and the Scheduler service close. Safe to call twice.
   */
  stop(signal = 'stop'): Promise<void> {
    this.stopping ??= (async () => {
      this.stopSignal = signal;
      this.current?.controller.abort(new ServiceStoppingError(signal));
      await this.worker?.close();
      await this.subscriber.quit().catch(() => this.subscriber.disconnect());
      await this.redis.quit().catch(() => this.redis.disconnect());
      await this.scheduler.close();
      this.log('serve: stopped; queue closed');
    })();
    return this.stopping;
  }
}
