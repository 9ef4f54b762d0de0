/**
 * A queued training run checks parity exactly as `moe train` does: the tolerance policy belongs to
 * the run (`parityTolerances`), not to a command. Real Redis, `moe serve`, two `cpu` workers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult, TrainRunSummary } from '../src/queue/index';
import { parityTolerances } from '@moe/model';
import { freePort, startTestRedis, type TestRedis } from './support/redis';
import { runMoe, startMoe, stopAll, type Proc } from './support/redis-service';

let redis: TestRedis;
let env: NodeJS.ProcessEnv;
let serve: Proc;
let reportsDir: string;

beforeAll(async () => {
  redis = await startTestRedis();
  env = { ...process.env, REDIS_URL: redis.url, MOE_QUEUE_PREFIX: redis.prefix };
  const port = await freePort();
  reportsDir = mkdtempSync(join(tmpdir(), 'moe-queue-parity-'));
  serve = startMoe('moe serve', ['serve', '--port', String(port), '--http-port', '0', '--reports', reportsDir, '--rendezvous-timeout', '20000'], env);
  await serve.waitFor(/serve: scheduler listening/);
  for (const id of ['cpu-0', 'cpu-1']) {
    startMoe(id, ['worker', '--scheduler', `127.0.0.1:${port}`, '--backend', 'cpu', '--worker-id', id], env);
    await serve.waitFor(new RegExp(`worker ${id} registered`));
  }
}, 60_000);

afterAll(async () => {
  await stopAll();
  await redis?.stop();
  if (reportsDir) rmSync(reportsDir, { recursive: true, force: true });
});

describe('moe submit train --check-reference', () => {
  it('with fp8 dispatch applies the same tolerance policy as moe train', async () => {
    const submit = await runMoe(
      ['submit', 'train', '--workers', '2', '--steps', '4', '--dispatch-codec', 'fp8', '--check-reference', '--wait', '--json'],
      env,
      90_000,
    );
    expect(submit.exit.code, submit.output).toBe(0);
    const outcome = JSON.parse(submit.stdout) as { state: string; result: RunResult };
    expect(outcome.state).toBe('completed');
    const parity = (outcome.result.summary as TrainRunSummary).parity!;
    const policy = parityTolerances({ dispatchCodec: 'fp8', combineCodec: 'f32' });
    expect(parity.lossTolerance).toBe(policy.loss);
    // JSON has no Infinity: an unbounded tolerance arrives as null.
    expect(parity.paramTolerance ?? Number.POSITIVE_INFINITY).toBe(policy.param);
    expect(parity.ok).toBe(true);
  }, 120_000);
});
