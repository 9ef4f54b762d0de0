/**
 * Runs are never mixed (issue #18, point 3), against a real Redis, a real `moe serve` and real
 * cpu workers: every run has an id unique for all time (BullMQ job ids start again at 1 when the
 * queue loses its state), its report folder and checkpoint live under that id, a retried run
 * never loads another run's checkpoint, and what can never succeed is not retried.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../src/queue/index';
import { loadCheckpoint, saveCheckpoint } from '../src/run/checkpoint';
import { newRunId, RUN_ID_PATTERN } from '../src/run/run-id';
import { freePort, startTestRedis, type TestRedis } from './support/redis';
import { QueueWatch } from './support/queue-watch';
import { startMoe, stopAll, type Proc } from './support/redis-service';

let redis: TestRedis;
let env: NodeJS.ProcessEnv;
let queue: Queue;
let watch: QueueWatch;
let serve: Proc;
let schedulerPort: number;
let reportsDir: string;
const workers = new Map<string, Proc>();

const train = (steps: number, extra: Record<string, unknown> = {}) => ({ kind: 'train', workers: 2, steps, ...extra });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startWorker(id: string): Promise<Proc> {
  const proc = startMoe(id, ['worker', '--scheduler', `127.0.0.1:${schedulerPort}`, '--backend', 'cpu', '--worker-id', id, '--peer-timeout', '2500'], env);
  workers.set(id, proc);
  // A busy machine starts a cpu worker (tsx, a compute thread) slowly.
  await serve.waitFor(new RegExp(`worker ${id} registered`), 60_000);
  return proc;
}

beforeAll(async () => {
  redis = await startTestRedis();
  env = { ...process.env, REDIS_URL: redis.url, MOE_QUEUE_PREFIX: redis.prefix };
  schedulerPort = await freePort();
  reportsDir = mkdtempSync(join(tmpdir(), 'moe-run-ids-'));
  serve = startMoe(
    'moe serve',
    ['serve', '--port', String(schedulerPort), '--reports', reportsDir, '--heartbeat-interval', '500', '--heartbeat-timeout', '3000', '--rendezvous-timeout', '20000'],
    env,
  );
  await serve.waitFor(/serve: scheduler listening/);
  await Promise.all(['c-0', 'c-1', 'c-2'].map(startWorker));
  watch = await QueueWatch.open(redis, () => serve.output);
  queue = watch.queue;
}, 120_000);

afterAll(async () => {
  await watch?.close();
  await stopAll();
  await redis?.stop();
  if (reportsDir) rmSync(reportsDir, { recursive: true, force: true });
});

describe('runs are never mixed', () => {
  it('job ids start again at 1 after the queue loses its state, run ids do not: no report is overwritten', async () => {
    const first = await queue.add('train', train(3), { attempts: 1 });
    const firstDone = await watch.finished(first.id!);
    expect(await firstDone.getState(), firstDone.failedReason).toBe('completed');
    const a = firstDone.returnvalue as RunResult;
    expect(a.runId).toMatch(RUN_ID_PATTERN);
    expect(a.report.dir).toBe(join(reportsDir, a.runId));
    expect((firstDone.data as { runId: string }).runId).toBe(a.runId); // stored on the job for every later attempt
    expect(watch.progress.get(first.id!)!.every((p) => p.runId === a.runId)).toBe(true);
    const aReport = readFileSync(join(a.report.dir, 'run.json'), 'utf8');

    await queue.obliterate({ force: true }); // the queue's state is gone: job ids start again
    const second = await queue.add('train', train(4), { attempts: 1 });
    expect(second.id).toBe(first.id);
    const b = (await watch.finished(second.id!)).returnvalue as RunResult;
    expect(b.runId).toMatch(RUN_ID_PATTERN);
    expect(b.runId).not.toBe(a.runId);
    expect(readFileSync(join(a.report.dir, 'run.json'), 'utf8')).toBe(aReport);
    expect(JSON.parse(readFileSync(join(b.report.dir, 'run.json'), 'utf8'))).toMatchObject({ runId: b.runId, summary: { steps: 4 } });
  });

  it("a run id copied into another job's data is refused before it writes anything, and not retried", async () => {
    const original = await queue.add('train', train(2), { attempts: 1 });
    const runId = ((await watch.finished(original.id!)).returnvalue as RunResult).runId;
    const before = readFileSync(join(reportsDir, runId, 'run.json'), 'utf8');
    const copy = await queue.add('train', train(2, { runId }), { attempts: 3, backoff: { type: 'fixed', delay: 100 } });
    const failed = await watch.finished(copy.id!);
    expect(await failed.getState()).toBe('failed');
    expect(failed.failedReason).toMatch(new RegExp(`^invalid run: runId: ${runId} already belongs to job ${original.id}`));
    expect(failed.attemptsMade).toBe(1);
    expect(readFileSync(join(reportsDir, runId, 'run.json'), 'utf8')).toBe(before);
  });

  it("a job whose name is not its data's kind is refused, naming both", async () => {
    const job = await queue.add('nonsense', train(2), { attempts: 3 });
    const failed = await watch.finished(job.id!);
    expect(failed.failedReason).toMatch(/^invalid run: name: the job is named "nonsense" but its data.kind is "train"/);
    expect(failed.attemptsMade).toBe(1);
  });

  it("a retried training never loads another run's checkpoint: the mismatch fails the job for good", async () => {
    const job = await queue.add('train', train(2_000), { attempts: 3, backoff: { type: 'fixed', delay: 1_500 } });
    const running = await watch.progressOf(job.id!, (p) => p.phase === 'running' && p.done >= 8);
    const checkpointDir = join(reportsDir, running.runId!, 'checkpoint');
    expect(existsSync(join(checkpointDir, 'checkpoint.moe'))).toBe(true);
    workers.get(running.workers![1]!)!.child.kill('SIGKILL');
    // While the job waits out its backoff, plant another run's checkpoint in its folder (same
    // model, same batch: only the run differs), as a reused job id once did.
    const give = Date.now() + 20_000;
    while ((await job.getState()) !== 'delayed') {
      if (Date.now() > give) throw new Error(`the first attempt did not fail; serve said:\n${serve.output.slice(-3_000)}`);
      await sleep(20);
    }
    const other = newRunId();
    saveCheckpoint(checkpointDir, { ...loadCheckpoint(checkpointDir), runId: other });

    const failed = await watch.finished(job.id!);
    expect(await failed.getState()).toBe('failed');
    expect(failed.failedReason).toMatch(new RegExp(`CheckpointError: the checkpoint belongs to run ${other}, not to this run ${running.runId}`));
    expect(failed.attemptsMade).toBe(2); // the lost worker was retried once; the mismatch was not
  });

  it('moe serve warns when it binds beyond loopback without a token, and not with one', async () => {
    // Last in this file: a second service consumes the same queue while it runs.
    const open = startMoe('moe serve (open)', ['serve', '--host', '0.0.0.0', '--port', '0', '--reports', reportsDir], { ...env, MOE_CLUSTER_TOKEN: '' });
    await open.waitFor(/serve: scheduler listening/, 60_000);
    await open.stop('SIGTERM', 10_000);
    expect(open.output).toMatch(/serve: WARNING: the Scheduler service binds 0\.0\.0\.0, beyond loopback, without a cluster token: anyone who reaches it can register/);
    const guarded = startMoe('moe serve (token)', ['serve', '--host', '0.0.0.0', '--port', '0', '--reports', reportsDir], { ...env, MOE_CLUSTER_TOKEN: 'a-token' });
    await guarded.waitFor(/serve: scheduler listening/, 60_000);
    await guarded.stop('SIGTERM', 10_000);
    expect(guarded.output).not.toMatch(/WARNING/);
  });
});
