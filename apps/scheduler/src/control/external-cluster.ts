import type { Cluster, SchedulerSettings } from './local-cluster';
import { DEFAULT_RENDEZVOUS_TIMEOUT_MS, describeWorkers, SchedulerService, type RegisteredWorker } from './rendezvous';

/**
 * A cluster of workers started elsewhere (`moe worker --scheduler host:port`): the scheduler
 * service waits until `workers` of them registered. `stop()` closes the service (when this
 * cluster started it) and leaves the workers running; they register again with the next
 * scheduler at that address.
 */
export class ExternalCluster implements Cluster {
  private constructor(
    readonly scheduler: SchedulerService,
    readonly workers: RegisteredWorker[],
    /** False for `attach`: the service outlives this cluster (`moe serve`). */
    private readonly ownsScheduler = true,
  ) {}

  /**
   * The first `workers` live workers of a scheduler service that is already serving (`moe serve`,
   * one run after another): waits up to `rendezvousTimeoutMs` for them to register. `stop()`
   * leaves the service and the workers running.
   */
  static async attach(
    scheduler: SchedulerService,
    options: { workers: number; rendezvousTimeoutMs?: number; abort?: AbortSignal },
  ): Promise<ExternalCluster> {
    const workers = await scheduler.waitForWorkers(options.workers, options.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS, options.abort);
    return new ExternalCluster(scheduler, workers, false);
  }

  static async start(options: SchedulerSettings & { workers: number; abort?: AbortSignal }): Promise<ExternalCluster> {
    const log = options.log ?? (() => {});
    // A scheduler for this one run: the first `workers` to register are taken, later ones told so.
    const scheduler = new SchedulerService({ ...options, admit: { count: options.workers } });
    const address = await scheduler.start();
    log(`scheduler listening on ${address}; waiting for ${options.workers} workers (moe worker --scheduler ${address})`);
    try {
      const workers = await scheduler.waitForWorkers(options.workers, options.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS, options.abort);
      log(`${workers.length} workers registered: ${describeWorkers(workers)}`);
      return new ExternalCluster(scheduler, workers);
    } catch (error) {
      await scheduler.close();
      throw error;
    }
  }

  onFailure(listener: (error: Error) => void): () => void {
    // Only the run's workers matter; a spare one coming and going does not break the run.
    return this.scheduler.onLost((worker, error) => this.scheduler.rankOf(worker.workerId) >= 0 && listener(error));
  }

  stop(): Promise<void> {
    return this.ownsScheduler ? this.scheduler.close() : Promise.resolve();
  }
}
