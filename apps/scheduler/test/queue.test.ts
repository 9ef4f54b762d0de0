/**
 * The run service against a real Redis (a private redis-server, see support/redis.ts): `moe serve`
 * and `moe worker` processes, runs put on the BullMQ queue `runs` by `moe submit` or by a plain
 * BullMQ client. Train runs use sim workers with a tiny modeled layer: steps of a few ms.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchRunSummary, RunResult } from '../src/queue/index';
import { freePort, startTestRedis, type TestRedis } from './support/redis';
import { QueueWatch } from './support/queue-watch';
import { runMoe, startMoe, stopAll, type Proc } from './support/redis-service';

const SIM = { profile: 'H800', dilation: 1, model: { hiddenSize: 64, expertFfnSize: 128 } };
const train = (steps: number, extra: Record<string, unknown> = {}) => ({ kind: 'train', workers: 2, steps, backendOptions: SIM, ...extra });

let redis: TestRedis;
let env: NodeJS.ProcessEnv;
let queue: Queue;
let watch: QueueWatch;
let serve: Proc;
let schedulerPort: number;
let reportsDir: string;
const workers = new Map<string, Proc>();

function startServe(): Proc {
  return startMoe(
    'moe serve',
    ['serve', '--port', String(schedulerPort), '--http-port', '0', '--reports', reportsDir, '--heartbeat-interval', '500', '--heartbeat-timeout', '3000', '--rendezvous-timeout', '20000'],
    env,
  );
}

async function startWorker(id: string): Promise<Proc> {
  const proc = startMoe(id, ['worker', '--scheduler', `127.0.0.1:${schedulerPort}`, '--backend', 'sim', '--worker-id', id, '--peer-timeout', '2500'], env);
  workers.set(id, proc);
  // A loaded machine starts a worker process slowly.
  await serve.waitFor(new RegExp(`worker ${id} registered`), 60_000);
  return proc;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  redis = await startTestRedis();
  env = { ...process.env, REDIS_URL: redis.url, MOE_QUEUE_PREFIX: redis.prefix };
  schedulerPort = await freePort();
  reportsDir = mkdtempSync(join(tmpdir(), 'moe-queue-test-'));
  serve = startServe();
  await serve.waitFor(/serve: scheduler listening/);
  await Promise.all(['t-0', 't-1', 't-2'].map(startWorker));
  watch = await QueueWatch.open(redis, () => serve.output);
  queue = watch.queue;
}, 120_000);

afterAll(async () => {
  await watch?.close();
  await stopAll();
  await redis?.stop();
  if (reportsDir) rmSync(reportsDir, { recursive: true, force: true });
});

describe('moe serve: runs as jobs on the BullMQ queue "runs"', () => {
  it('a submitted quick benchmark completes with its summary as the job result, and progress events along the way', async () => {
    const submit = await runMoe(
      ['submit', 'bench', '--quick', '--workers', '2', '--ratios', '1', '--chunks', '2', '--warmup', '0', '--steps', '1', '--comm-target', '20', '--transport-seconds', '0', '--wait', '--json'],
      env,
      // The bench probes the host and runs skewed-routing runs too: ~15 s on a quiet machine, a minute on a loaded one.
      180_000,
    );
    expect(submit.exit.code, submit.output).toBe(0);
    const outcome = JSON.parse(submit.stdout) as { state: string; jobId: string; result: RunResult };
    expect(outcome.state).toBe('completed');

    const job = (await queue.getJob(outcome.jobId))!;
    expect(job.name).toBe('bench');
    expect(job.returnvalue).toEqual(outcome.result);
    const result = job.returnvalue as RunResult;
    const summary = result.summary as BenchRunSummary;
    expect(result.kind).toBe('bench');
    expect(result.workers.map((w) => w.backend)).toEqual(['sim', 'sim']);
    expect(summary.speedup).toBeGreaterThan(0);
    expect(summary.headline_ratio).toBe(1);
    expect(result.report.dir).toBe(join(reportsDir, result.runId));
    expect(result.runId).toMatch(/^run-\d{8}-\d{6}-[0-9a-f]{12}$/);
    expect(result.report.files.some((f) => f.endsWith('report.json'))).toBe(true);
    for (const file of result.report.files) expect(existsSync(file), file).toBe(true);
    expect(JSON.parse(readFileSync(join(result.report.dir, 'report.json'), 'utf8')).summary.speedup).toBeCloseTo(summary.speedup!, 4);

    const seen = watch.progress.get(outcome.jobId) ?? [];
    expect(seen[0]).toMatchObject({ kind: 'bench', phase: 'waiting', attempt: 1 });
    const running = seen.filter((p) => p.phase === 'running' && p.total > 0);
    expect(running.length).toBeGreaterThan(0);
    expect(running.every((p) => p.unit === 'run' && p.done <= p.total && p.workers?.length === 2)).toBe(true);
    expect(seen.some((p) => typeof p.stepMs === 'number' && p.stepMs > 0)).toBe(true);
    expect(seen.at(-1)).toMatchObject({ phase: 'done' });
    expect(seen.at(-1)!.done).toBe(seen.at(-1)!.total);
    // `moe submit --wait` showed it too (no terminal here: progress lines on stderr).
    expect(submit.stderr).toMatch(new RegExp(`run ${outcome.jobId}: run \\d+/\\d+`));
  }, 200_000);

  it('a config that can never work fails at once, with a reason that names the field, and is not retried', async () => {
    const opts = { attempts: 3, backoff: { type: 'fixed', delay: 100 } };
    const cases = [
      { data: train(5, { config: { model: { topK: 99 } } }), field: /topK/ },
      { data: { kind: 'bench', workers: 0 }, field: /workers/ },
      { data: train(5, { schedule: 'sideways' }), field: /schedule/ },
      { data: { kind: 'deploy' }, field: /kind/ },
    ];
    const jobs = await Promise.all(cases.map((c) => queue.add(String(c.data.kind), c.data, opts)));
    for (const [i, added] of jobs.entries()) {
      const job = await watch.finished(added.id!);
      expect(await job.getState()).toBe('failed');
      expect(job.failedReason).toMatch(/^invalid run: /);
      expect(job.failedReason).toMatch(cases[i]!.field);
      expect(job.attemptsMade).toBe(1);
      expect(job.stacktrace).toHaveLength(1);
      expect(job.finishedOn! - job.processedOn!).toBeLessThan(1_000);
      expect(watch.progress.get(added.id!)).toBeUndefined(); // refused before anything started
    }
  });

  it('moe submit refuses a bad config before it reaches the queue, naming the field', async () => {
    const before = await queue.count();
    const submit = await runMoe(['submit', 'bench', '--workers', '3', '--node-size', '2'], env);
    expect(submit.exit.code).toBe(2);
    expect(submit.stderr).toMatch(/invalid run: nodeSize: 3 workers are not a whole number of nodes of 2/);
    expect(await queue.count()).toBe(before);
  });

  it('a run waits for the number of workers it asks for, uses one that registers meanwhile, and times out with a clear error', async () => {
    const waiting = await queue.add('train', train(10, { workers: 4 }), { attempts: 1 });
    await watch.progressOf(waiting.id!, (p) => p.phase === 'waiting');
    await sleep(300);
    expect(await waiting.getState()).toBe('active');
    await startWorker('t-3');
    const done = await watch.finished(waiting.id!);
    expect(await done.getState()).toBe('completed');
    expect((done.returnvalue as RunResult).workers.map((w) => w.workerId).sort()).toEqual(['t-0', 't-1', 't-2', 't-3']);

    const tooMany = await queue.add('train', train(10, { workers: 6, rendezvousTimeoutMs: 800 }), { attempts: 1 });
    const failed = await watch.finished(tooMany.id!);
    expect(failed.failedReason).toMatch(/^RendezvousTimeoutError: waited 800 ms for 6 workers; 4 registered \(t-/);
    expect(failed.failedReason).toMatch(/Start more workers .*docker compose up -d --scale worker=6/);
  });

  it('a running job can be cancelled: it stops at once and fails as cancelled, without retries', async () => {
    const job = await queue.add('train', train(5_000), { attempts: 3, backoff: { type: 'fixed', delay: 100 } });
    await watch.progressOf(job.id!, (p) => p.phase === 'running' && p.done >= 2);
    const cancel = await runMoe(['cancel', job.id!], env);
    expect(cancel.exit.code, cancel.output).toBe(0);
    expect(cancel.stdout).toMatch(/is running: cancel sent/);
    const ended = await watch.finished(job.id!, 10_000);
    expect(await ended.getState()).toBe('failed');
    expect(ended.failedReason).toMatch(/^RunCancelledError: run \d+ was cancelled/);
    expect(ended.attemptsMade).toBe(1);
    expect(ended.finishedOn! - ended.processedOn!).toBeLessThan(20_000);
  });

  it('a run that loses a worker is retried with backoff and completes on the workers left', async () => {
    const job = await queue.add('train', train(150), { attempts: 3, backoff: { type: 'fixed', delay: 300 } });
    const first = await watch.progressOf(job.id!, (p) => p.attempt === 1 && p.phase === 'running' && p.done >= 3);
    const victim = first.workers![1]!;
    workers.get(victim)!.child.kill('SIGKILL');

    const done = await watch.finished(job.id!, 40_000);
    expect(await done.getState(), done.failedReason).toBe('completed');
    const result = done.returnvalue as RunResult;
    expect(result.attempt).toBe(2);
    expect(result.workers.map((w) => w.workerId)).not.toContain(victim);
    expect(done.attemptsMade).toBe(2); // one failed attempt + the one that completed
    expect(done.stacktrace).toHaveLength(1);
    expect(done.failedReason).toMatch(/WorkerRpcError|WorkerLostError/);
    expect(done.failedReason).toContain(victim);
    expect(watch.progress.get(job.id!)!.some((p) => p.attempt === 2 && p.phase === 'done')).toBe(true);
  });

  it('moe runs lists recent runs with their state', async () => {
    const runs = await runMoe(['runs', '--json'], env);
    expect(runs.exit.code, runs.output).toBe(0);
    const rows = JSON.parse(runs.stdout) as { id: string; kind: string; state: string; failedReason: string | null }[];
    expect(rows.length).toBeGreaterThanOrEqual(8);
    expect(Number(rows[0]!.id)).toBeGreaterThan(Number(rows.at(-1)!.id)); // newest first
    expect(rows.filter((r) => r.state === 'completed').map((r) => r.kind)).toEqual(expect.arrayContaining(['bench', 'train']));
    expect(rows.some((r) => r.state === 'failed' && /cancelled/.test(r.failedReason ?? ''))).toBe(true);
    const table = await runMoe(['runs', '--limit', '3'], env);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+RUN\s+KIND\s+STATE\s+ATTEMPT\s+PROGRESS/);
    expect(table.stdout.trim().split('\n')).toHaveLength(4);
  });

  it('SIGTERM aborts the current run, puts its job back in the queue and exits; no job is left active, and the next service runs it', async () => {
    const job = await queue.add('train', train(120), { attempts: 3, backoff: { type: 'fixed', delay: 100 } });
    await watch.progressOf(job.id!, (p) => p.phase === 'running' && p.done >= 3);
    const t0 = Date.now();
    const stopped = serve;
    const exit = await stopped.stop('SIGTERM', 15_000);
    const stopMs = Date.now() - t0;
    const said = () => `serve said:\n${stopped.output.slice(-3_000)}`;
    expect(exit, said()).toEqual({ code: 0, signal: null });
    expect(stopped.stderr).toMatch(/serve: stopped; queue closed/);
    expect(stopMs).toBeLessThan(10_000);
    expect(await job.getState(), said()).toBe('waiting');
    expect((await queue.getJobCounts('active')).active).toBe(0);

    serve = startServe();
    const done = await watch.finished(job.id!, 40_000);
    expect(await done.getState(), `${done.failedReason}; ${said()}; the next serve said:\n${serve.output.slice(-3_000)}`).toBe('completed');
    expect((done.returnvalue as RunResult).summary).toMatchObject({ steps: 120 });
    expect((await queue.getJobCounts('active')).active).toBe(0);
  });
});
