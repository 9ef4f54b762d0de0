/**
 * The BullMQ side of a run-service test: the queue `runs` on the test's Redis, the progress events
 * its jobs publish, and bounded waits for a job's end or for one of its progress events. Every
 * timeout names the job and shows what `moe serve` said, so a failure explains itself.
 */
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { RunProgress } from '../../src/queue/index';
import type { TestRedis } from './redis';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class QueueWatch {
  /** Progress events seen through QueueEvents, by job id. */
  readonly progress = new Map<string, RunProgress[]>();

  private constructor(
    readonly queue: Queue,
    readonly events: QueueEvents,
    /** What the service printed so far (a getter: a test may restart `moe serve`). */
    private readonly serveOutput: () => string,
  ) {
    events.on('progress', ({ jobId, data }) => this.progress.set(jobId, [...(this.progress.get(jobId) ?? []), data as unknown as RunProgress]));
  }

  static async open(redis: TestRedis, serveOutput: () => string): Promise<QueueWatch> {
    const connection = { url: redis.url };
    const events = new QueueEvents('runs', { connection, prefix: redis.prefix });
    await events.waitUntilReady();
    return new QueueWatch(new Queue('runs', { connection, prefix: redis.prefix }), events, serveOutput);
  }

  /** Polls until job `id` is completed or failed. */
  async finished(id: string, timeoutMs = 60_000): Promise<Job> {
    const give = Date.now() + timeoutMs;
    for (;;) {
      const state = await (await this.queue.getJob(id))!.getState();
      // the job may have ended between the two reads: fetch it again to see its final fields
      if (state === 'completed' || state === 'failed') return (await this.queue.getJob(id))!;
      if (Date.now() > give) throw new Error(`job ${id} still ${state} after ${timeoutMs} ms; serve said:\n${this.serveOutput().slice(-3_000)}`);
      await sleep(100);
    }
  }

  /** Resolves with the first progress event of job `id` that satisfies `test`. */
  async progressOf(id: string, test: (p: RunProgress) => boolean, timeoutMs = 30_000): Promise<RunProgress> {
    const give = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.progress.get(id)?.find(test);
      if (hit) return hit;
      if (Date.now() > give) throw new Error(`job ${id}: no such progress within ${timeoutMs} ms; saw ${JSON.stringify(this.progress.get(id)?.slice(-3) ?? [])}`);
      await sleep(25);
    }
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
  }
}
