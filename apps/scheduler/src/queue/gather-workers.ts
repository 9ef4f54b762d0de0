/**
 * Gathers a run's workers from the serving scheduler: the first `n` live ones that answer
 * Health and are not still busy with a step of an aborted run. A worker that does not answer is
 * marked lost (it registers again if it was only slow), and the next in line takes its place.
 */
import type { LogLine } from '@moe/log';
import { RendezvousTimeoutError } from '../errors';
import { ExternalCluster } from '../control/external-cluster';
import { describeWorkers, type SchedulerService } from '../control/rendezvous';
import { WorkerHandle } from '../control/worker-client';

export interface GatherOptions {
  workers: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Deadline of each Health call. Default 2000 ms. */
  healthTimeoutMs?: number;
  log?: LogLine;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Resolves with a cluster of `workers` registered, answering, idle workers (ranks in
 * registration order); its `stop()` leaves the service and the workers running.
 *
 * @throws RendezvousTimeoutError after `timeoutMs`, naming who registered and who was busy;
 *   the signal's reason when aborted
 */
export async function gatherWorkers(scheduler: SchedulerService, options: GatherOptions): Promise<ExternalCluster> {
  const deadline = Date.now() + options.timeoutMs;
  const healthMs = options.healthTimeoutMs ?? 2_000;
  let busy: string[] = [];
  for (;;) {
    const left = deadline - Date.now();
    let cluster: ExternalCluster;
    try {
      if (left <= 0) throw new RendezvousTimeoutError('');
      cluster = await ExternalCluster.attach(scheduler, { workers: options.workers, rendezvousTimeoutMs: left, abort: options.signal });
    } catch (error) {
      if (!(error instanceof RendezvousTimeoutError)) throw error;
      const live = scheduler.liveWorkers();
      throw new RendezvousTimeoutError(
        `waited ${options.timeoutMs} ms for ${options.workers} workers; ${live.length} registered` +
          (live.length ? ` (${describeWorkers(live)})` : '') +
          (busy.length ? `, still busy with an earlier step: ${busy.join(', ')}` : '') +
          `. Start more workers (moe worker --scheduler ${scheduler.address}; in compose: docker compose up -d --scale worker=${options.workers}) ` +
          'or raise the rendezvous timeout (MOE_RENDEZVOUS_TIMEOUT_MS, or rendezvousTimeoutMs in the job)',
      );
    }
    const handles = cluster.workers.map((w, rank) => new WorkerHandle(rank, w.workerId, w.address, scheduler.token ?? ''));
    const answers = await Promise.allSettled(handles.map((h) => h.health(healthMs)));
    handles.forEach((h) => h.close());
    let dead = 0;
    busy = [];
    answers.forEach((answer, rank) => {
      const worker = cluster.workers[rank]!;
      if (answer.status === 'rejected') {
        dead++;
        scheduler.markLost(worker.workerId, `it did not answer Health: ${(answer.reason as Error).message}`);
      } else if (answer.value.state === 'running') {
        busy.push(worker.workerId);
      }
    });
    if (dead === 0 && busy.length === 0) {
      options.log?.(`workers: ${describeWorkers(cluster.workers)}`);
      return cluster;
    }
    if (options.signal?.aborted) throw options.signal.reason;
    if (busy.length) await sleep(200, options.signal);
  }
}
