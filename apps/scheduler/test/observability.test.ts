/**
 * What an operator watches, checked with the real tools: `moe serve` and two `moe worker`
 * processes (sim backend, a private Redis) log pino JSON lines that follow one run across all
 * three processes; their /metrics pass `promtool check metrics`; and a real Prometheus scraping
 * `moe serve` holds a step-time series after a quick bench run through the queue.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../src/queue/index';
import { promtoolCheck, startPrometheus, type TestPrometheus } from './support/prometheus';
import { QueueWatch } from './support/queue-watch';
import { freePort, startTestRedis, type TestRedis } from './support/redis';
import { runMoe, startMoe, stopAll, type Proc } from './support/redis-service';

const SIM = { profile: 'H800', dilation: 1, model: { hiddenSize: 64, expertFfnSize: 128 } };

let redis: TestRedis;
let env: NodeJS.ProcessEnv;
let queue: Queue;
let watch: QueueWatch;
let serve: Proc;
let httpPort: number;
let workerMetricsPort: number;
let reportsDir: string;
let prometheus: TestPrometheus | undefined;
const workers: Proc[] = [];

type LogEntry = { level: number; name: string; msg: string; runId?: string; jobId?: string; rank?: number; workerId?: string; [k: string]: unknown };

/** Every line of `text` parsed as a log entry; a line that is not JSON fails the test, named. */
function logLines(proc: Proc): LogEntry[] {
  return proc.stderr
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      try {
        return JSON.parse(line) as LogEntry;
      } catch {
        throw new Error(`${proc.name} wrote a line to stderr that is not a JSON log line: ${line}`);
      }
    });
}

const scrape = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain;.*version=0\.0\.4/);
  return res.text();
};

/** The value of the sample `name{labels}` in an exposition (labels as written, in order); undefined when absent. */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  redis = await startTestRedis();
  env = { ...process.env, REDIS_URL: redis.url, MOE_QUEUE_PREFIX: redis.prefix, MOE_LOG_LEVEL: 'info' };
  const schedulerPort = await freePort();
  httpPort = await freePort();
  workerMetricsPort = await freePort();
  reportsDir = mkdtempSync(join(tmpdir(), 'moe-obs-test-'));
  serve = startMoe('moe serve', ['serve', '--port', String(schedulerPort), '--http-port', String(httpPort), '--reports', reportsDir, '--heartbeat-interval', '300'], env);
  // Generous waits: on a loaded machine a node process with tsx takes many seconds to start.
  await serve.waitFor(/serve: scheduler listening/, 90_000);
  await serve.waitFor(/serve: HTTP on http:\/\/127\.0\.0\.1:\d+: metrics at \/metrics/, 30_000);
  for (const [i, extra] of [['--metrics-port', String(workerMetricsPort)], []].entries()) {
    const id = `o-${i}`;
    workers.push(startMoe(id, ['worker', '--scheduler', `127.0.0.1:${schedulerPort}`, '--backend', 'sim', '--worker-id', id, ...extra], env));
    await serve.waitFor(new RegExp(`worker ${id} registered`), 90_000);
  }
  watch = await QueueWatch.open(redis, () => serve.stderr);
  queue = watch.queue;
}, 300_000);

afterAll(async () => {
  await prometheus?.stop();
  await watch?.close();
  await stopAll();
  await redis?.stop();
  if (reportsDir) rmSync(reportsDir, { recursive: true, force: true });
});

describe('logs: pino JSON lines that follow a run', () => {
  it("a 2-worker run's id is on lines of the scheduler and of both workers, with its job, ranks and workers", async () => {
    const added = await queue.add('train', { kind: 'train', workers: 2, steps: 3, backendOptions: SIM });
    const job = await watch.finished(added.id!);
    expect(job.failedReason, serve.stderr.slice(-2_000)).toBeFalsy();
    const runId = (job.returnvalue as RunResult).runId;
    expect(runId).toMatch(/\S/);

    const scheduler = logLines(serve).filter((l) => l.runId === runId);
    expect(scheduler.length, serve.stderr.slice(-2_000)).toBeGreaterThan(0);
    expect(scheduler.every((l) => l.name === 'serve' && l.jobId === added.id)).toBe(true);
    expect(scheduler.some((l) => /done in/.test(l.msg))).toBe(true);
    // A worker knows the attempt's id on the wire: the run id plus "-a<attempt>".
    for (const [rank, worker] of workers.entries()) {
      const lines = logLines(worker).filter((l) => l.runId === `${runId}-a1`);
      expect(lines.length, `${worker.name}:\n${worker.stderr.slice(-2_000)}`).toBeGreaterThan(0);
      expect(lines.every((l) => l.name === 'worker' && l.workerId === worker.name && l.rank === rank)).toBe(true);
    }
  });

  it('says what happened at info and nothing per step or op: the lines of a 3-step run stay few', () => {
    const lines = [serve, ...workers].flatMap(logLines);
    expect(lines.every((l) => typeof l.time === 'number' && l.level >= 30)).toBe(true);
    // A line per op (or per step) would give dozens a worker for this run alone.
    for (const worker of workers) expect(logLines(worker).length).toBeLessThan(10);
  });

  it('an error line carries the error class and the numbers its message names', async () => {
    const added = await queue.add('train', { kind: 'train', workers: 5, steps: 1, rendezvousTimeoutMs: 300, backendOptions: SIM }, { attempts: 1 });
    const job = await watch.finished(added.id!);
    expect(job.failedReason).toMatch(/RendezvousTimeoutError/);
    const line = logLines(serve).find((l) => l.jobId === added.id && l.level === 50);
    expect(line, serve.stderr.slice(-2_000)).toMatchObject({ errClass: 'RendezvousTimeoutError', numbers: { ms: 300, workers: 5, registered: 2 } });
  });
});

describe('metrics: prom-client expositions', () => {
  it("moe serve's /metrics passes promtool check metrics and counts the run's steps, queue, workers and heartbeats", async () => {
    const text = await scrape(httpPort);
    const checked = promtoolCheck(text);
    expect(checked.said).toBe('');
    expect(checked.code).toBe(0);
    expect(sample(text, 'moe_step_duration_seconds_count{kind="train",schedule="naive"}')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'moe_steps_total{kind="train"}')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'moe_tokens_total{kind="train"}')).toBeGreaterThan(0);
    expect(sample(text, 'moe_queue_jobs{state="completed"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'moe_queue_jobs{state="failed"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'moe_run_attempts_total{kind="train",outcome="completed"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'moe_registered_workers{state="live"}')).toBe(2);
    for (const id of ['o-0', 'o-1']) expect(sample(text, `moe_worker_heartbeat_age_seconds{worker_id="${id}"}`)).toBeLessThan(10);
    expect(sample(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(text).not.toMatch(/run_?id=|job_?id=/i);
  });

  it("a worker's /metrics (--metrics-port) passes promtool and counts its steps and bytes by link class", async () => {
    const text = await scrape(workerMetricsPort);
    const checked = promtoolCheck(text);
    expect(checked.said).toBe('');
    expect(checked.code).toBe(0);
    expect(sample(text, 'moe_worker_steps_total{worker_id="o-0"}')).toBeGreaterThanOrEqual(3);
    const sent = text.split('\n').filter((l) => l.startsWith('moe_worker_sent_bytes_total{'));
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((l) => /link_class="(intra|inter|unmodeled)"/.test(l))).toBe(true);
    expect(sent.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0)).toBeGreaterThan(0);
  });
});

describe('Prometheus scraping moe serve', () => {
  it('scrapes /metrics and, after a quick bench through the queue, holds its step-time series', async () => {
    prometheus = await startPrometheus('moe-serve', [`127.0.0.1:${httpPort}`]);
    const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => {
      const give = Date.now() + timeoutMs;
      for (;;) {
        const got = await probe();
        if (got !== undefined) return got;
        if (Date.now() > give) throw new Error(`prometheus: ${what} not seen within ${timeoutMs} ms; it said:\n${prometheus!.proc.output.slice(-2_000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    await until('a successful scrape of moe serve (up == 1)', async () => ((await prometheus!.query('up{job="moe-serve"} == 1')).length ? true : undefined));

    const submit = await runMoe(
      ['submit', 'bench', '--quick', '--workers', '2', '--ratios', '1', '--chunks', '2', '--warmup', '0', '--steps', '1', '--comm-target', '20', '--transport-seconds', '0', '--wait', '--json'],
      env,
      120_000,
    );
    expect(submit.exit.code, submit.output.slice(-2_000)).toBe(0);

    // The bench ran all three schedules before submit returned; a scrape after that holds each one's series.
    const series = await until('moe_step_duration_seconds_count{kind="bench"} > 0 for every schedule', async () => {
      const result = await prometheus!.query('moe_step_duration_seconds_count{job="moe-serve",kind="bench"} > 0');
      return result.length >= 3 ? result : undefined;
    });
    expect(series.map((s) => s.metric.schedule).sort()).toEqual(['fb-overlap', 'naive', 'overlapped']);
    const exposed = await prometheus.query('sum(moe_step_exposed_comm_seconds_sum{kind="bench"}) / sum(moe_step_comm_seconds_sum{kind="bench"})');
    expect(Number(exposed[0]!.value[1])).toBeGreaterThanOrEqual(0);
  }, 180_000);
});
