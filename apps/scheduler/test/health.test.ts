/**
 * `moe health`, what docker compose's healthchecks run: ready means ready. A worker is healthy
 * only while the scheduler knows it (its registration file, kept by `moe worker --status-file`);
 * the scheduler only while Redis answers and the queue is consumed (`moe serve`'s /healthz).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTestRedis, type TestRedis } from './support/redis';
import { runMoe, startMoe, stopAll, type Proc } from './support/redis-service';

let dir: string;
beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'moe-health-'))));
afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('moe health worker', () => {
  const health = (file: string, extra: string[] = []) => runMoe(['health', 'worker', '--status-file', file, ...extra], process.env, 20_000);
  const status = (name: string, fields: object) => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify({ workerId: 'w-1', scheduler: 'scheduler:7000', ...fields }));
    return file;
  };

  it('is healthy only when the scheduler knows the worker and said so recently', async () => {
    const fresh = await health(status('fresh.json', { registered: true, at: Date.now() }));
    expect(fresh.exit.code, fresh.output).toBe(0);
    expect(fresh.stdout).toMatch(/worker w-1 registered with scheduler:7000/);

    const missing = await health(join(dir, 'none.json'));
    expect(missing.exit.code).toBe(1);
    expect(missing.stderr).toMatch(/not registered yet/);

    const forgotten = await health(status('forgotten.json', { registered: false, at: Date.now() }));
    expect(forgotten.exit.code).toBe(1);
    expect(forgotten.stderr).toMatch(/does not know it/);

    const stale = await health(status('stale.json', { registered: true, at: Date.now() - 60_000 }), ['--max-age', '15000']);
    expect(stale.exit.code).toBe(1);
    expect(stale.stderr).toMatch(/silent for \d+ ms/);
  }, 60_000);

  it('a real worker writes its registration once the scheduler has it', async () => {
    const redis = await startTestRedis();
    try {
      const env = { ...process.env, REDIS_URL: redis.url, MOE_QUEUE_PREFIX: redis.prefix };
      const port = await freePort();
      const serve = startMoe('moe serve', ['serve', '--port', String(port), '--http-port', '0', '--reports', dir], env);
      await serve.waitFor(/serve: dashboard on/, 30_000);
      const file = join(dir, 'worker-status.json');
      startMoe('w-real', ['worker', '--scheduler', `127.0.0.1:${port}`, '--backend', 'sim', '--worker-id', 'w-real', '--status-file', file], env);
      await serve.waitFor(/worker w-real registered/, 30_000);
      await expect.poll(async () => (await health(file)).exit.code, { timeout: 20_000, interval: 500 }).toBe(0);
      await serve.stop();
    } finally {
      await stopAll();
      await redis.stop();
    }
  }, 90_000);
});

describe('moe health scheduler', () => {
  let redis: TestRedis;
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    redis = await startTestRedis();
    const env = { ...process.env, REDIS_URL: redis.url, MOE_QUEUE_PREFIX: redis.prefix };
    serve = startMoe('moe serve', ['serve', '--port', String(await freePort()), '--http-port', '0', '--reports', dir], env);
    url = `${(await serve.waitFor(/serve: dashboard on (http:\/\/[\w.:[\]-]+)/, 30_000))[1]}/healthz`;
  }, 60_000);
  afterAll(async () => {
    await serve?.stop();
    await redis?.stop();
  });

  it('is healthy while Redis answers and the queue is consumed, and not once Redis is gone', async () => {
    const up = await runMoe(['health', 'scheduler', '--url', url], process.env, 20_000);
    expect(up.exit.code, up.output).toBe(0);
    expect(up.stdout).toMatch(/"redis":"ok","queue":"consuming"/);
    if (!redis.private) return; // a shared REDIS_URL is not ours to stop
    await redis.stop();
    const down = await runMoe(['health', 'scheduler', '--url', url], process.env, 20_000);
    expect(down.exit.code).toBe(1);
    expect(down.stderr).toMatch(/answered 503.*"redis":"error/);
  }, 60_000);
});
