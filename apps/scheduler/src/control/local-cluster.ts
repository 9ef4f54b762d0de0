/**
 * A cluster is a scheduler service and the workers registered with it, in rank order.
 * `LocalCluster` starts the workers itself, as child processes on this machine, and stops them
 * on every way out: `stop()`, an error, the process exiting (SIGKILL of any child left) and,
 * through the parent guard each child preloads, even this process being killed.
 */
import { readableLine, type LogLine } from '@moe/log';
import { RendezvousTimeoutError } from '../errors';
import { RunGuard } from './run-guard';
import { DEFAULT_RENDEZVOUS_TIMEOUT_MS, SchedulerService, type RegisteredWorker } from './rendezvous';
import { WorkerProcess } from './worker-process';

/** What a run needs from a cluster, however its workers were started. */
export interface Cluster {
  readonly scheduler: SchedulerService;
  /** The run's workers, index = rank. */
  readonly workers: readonly RegisteredWorker[];
  /** Calls `listener` when the cluster breaks (a worker lost, or its process gone); returns the unsubscribe function. */
  onFailure(listener: (error: Error) => void): () => void;
  /** Stops what this cluster started. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SchedulerSettings {
  /** Interface the scheduler (and local workers) bind. Default 127.0.0.1. */
  host?: string;
  /** Scheduler port; 0 (default) picks a free one. */
  port?: number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** How long to wait for the workers to register. Default 60 000 ms. */
  rendezvousTimeoutMs?: number;
  log?: LogLine;
  /** Cluster token (see SchedulerServiceOptions.token); local workers get it in their environment. Default `MOE_CLUSTER_TOKEN`. */
  token?: string;
}

/**
 * The most worker processes one machine starts (`moe train`, `moe cluster`, `moe bench`): each is
 * a Node process of some 100 MiB; more is a typo, not a plan. Runs across machines use `moe serve`.
 */
export const MAX_LOCAL_WORKERS = 64;

export interface LocalClusterOptions extends SchedulerSettings {
  workers: number;
  /** Backend of every worker. Default "cpu". */
  backend?: string;
  /** More flags for every worker, passed through as given. */
  workerArgs?: readonly string[];
  /** Script each worker process runs instead of apps/worker/src/main.ts (tests). */
  workerEntry?: string;
  /** Log every line the workers print, prefixed with their id. */
  echoWorkerOutput?: boolean;
  /** SIGTERM-to-SIGKILL grace when stopping. Default 5000 ms. */
  stopGraceMs?: number;
}

export class LocalCluster implements Cluster {
  workers: RegisteredWorker[] = [];
  /** The first worker failure, handed to every run on this cluster. */
  private readonly failures = new RunGuard();
  private stopping?: Promise<void>;
  private readonly killAll = () => this.processes.forEach((p) => p.kill());
  private readonly unsubscribe: (() => void)[] = [];

  private constructor(
    readonly scheduler: SchedulerService,
    readonly processes: WorkerProcess[],
    private readonly options: LocalClusterOptions,
  ) {
    process.on('exit', this.killAll);
  }

  /**
   * Starts the scheduler service and `workers` worker processes, and resolves once all of them
   * registered (ranks in registration order). Rejects, with everything stopped, when a process
   * exits first (`WorkerProcessExitError`: which one, its exit code, its last stderr lines) or
   * when they do not all register in time (`RendezvousTimeoutError`).
   */
  static async start(options: LocalClusterOptions & { abort?: AbortSignal }): Promise<LocalCluster> {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new RangeError(`workers=${options.workers} must be a positive integer`);
    }
    const log = options.log ?? (() => {});
    if (options.workers > MAX_LOCAL_WORKERS) {
      throw new RangeError(`workers=${options.workers} is more than this machine's limit of ${MAX_LOCAL_WORKERS} local worker processes (MAX_LOCAL_WORKERS)`);
    }
    const ids = Array.from({ length: options.workers }, (_, i) => `w-${i}`);
    const scheduler = new SchedulerService({
      host: options.host,
      port: options.port,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      log: options.log,
      token: options.token,
      // This scheduler serves the workers it starts, and no stranger.
      admit: { ids },
    });
    const address = await scheduler.start();
    log(`scheduler listening on ${address}`);
    const processes = ids.map(
      (workerId, i) =>
        new WorkerProcess({
          workerId,
          scheduler: address,
          host: options.host,
          backend: options.backend,
          extraArgs: options.workerArgs,
          entry: options.workerEntry,
          token: scheduler.token ?? '',
          onLine: options.echoWorkerOutput ? (line) => log(`[w-${i}] ${readableLine(line)}`) : undefined,
        }),
    );
    const cluster = new LocalCluster(scheduler, processes, options);
    const early = new AbortController();
    const offEarly = processes.map((p) => p.onExit(() => !p.stopping && early.abort(p.exitError('before it registered'))));
    const onAbort = () => early.abort(options.abort!.reason);
    if (options.abort?.aborted) onAbort();
    options.abort?.addEventListener('abort', onAbort, { once: true });
    const timeoutMs = options.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS;
    try {
      cluster.workers = await scheduler.waitForWorkers(options.workers, timeoutMs, early.signal);
    } catch (error) {
      await cluster.stop();
      if (error instanceof RendezvousTimeoutError) {
        const silent = processes.filter((p) => !scheduler.liveWorkers().some((w) => w.workerId === p.workerId));
        throw new RendezvousTimeoutError(
          `${error.message}. Started here but never registered: ${silent.map((p) => `${p.workerId} (pid ${p.pid})`).join(', ')}` +
            (silent[0]?.outputTail().length ? `; ${silent[0].workerId}'s last output:\n  ${silent[0].outputTail().join('\n  ')}` : ''),
        );
      }
      throw error;
    } finally {
      offEarly.forEach((off) => off());
      options.abort?.removeEventListener('abort', onAbort);
    }
    cluster.watch();
    return cluster;
  }

  private watch(): void {
    for (const p of this.processes) {
      this.unsubscribe.push(
        p.onExit(() => {
          if (p.stopping) return;
          const rank = this.scheduler.rankOf(p.workerId);
          this.fail(p.exitError(rank >= 0 ? `while it held rank ${rank}` : 'while the cluster was up'));
        }),
      );
    }
    // Only the run's workers matter: another worker coming and going does not touch the run.
    this.unsubscribe.push(this.scheduler.onLost((worker, error) => this.scheduler.rankOf(worker.workerId) >= 0 && this.fail(error)));
  }

  private fail(error: Error): void {
    if (this.stopping) return;
    this.failures.fail(error);
  }

  onFailure(listener: (error: Error) => void): () => void {
    return this.failures.onFailure(listener);
  }

  /** "rank 0: w-2 at 127.0.0.1:40211 (cpu, pid 1234)" per line. */
  describe(): string[] {
    return this.workers.map((w, rank) => `rank ${rank}: ${w.workerId} at ${w.address} (${w.backend || '?'}, pid ${w.pid})`);
  }

  /** Resolves when any worker process ends (for `moe cluster`, which runs until told to stop). */
  anyExit(): Promise<WorkerProcess> {
    return Promise.race(this.processes.map((p) => p.exited.then(() => p)));
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.unsubscribe.forEach((off) => off());
      this.scheduler.expectDepartures();
      await Promise.all(this.processes.map((p) => p.stop(this.options.stopGraceMs ?? 5_000)));
      await this.scheduler.close();
      process.off('exit', this.killAll);
    })();
    return this.stopping;
  }
}
