/**
 * Checkpoints: a run stopped after a checkpoint and resumed from it reproduces the losses of the
 * uninterrupted run (real worker processes); the file is written atomically and checked on read.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, type TrainConfig } from '@moe/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_FILE, loadCheckpoint, saveCheckpoint } from '../src/run/checkpoint';
import { LocalCluster } from '../src/control/local-cluster';
import { CheckpointError } from '../src/errors';
import { runTraining } from '../src/run/train-run';

const model = parseModelConfig({ ...TINY_MODEL, hiddenSize: 16, expertFfnSize: 16, routedExperts: 4, layers: 2 });
const train: TrainConfig = { ...TINY_TRAIN, batchSequences: 4, seqLen: 16, steps: 6 };
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'moe-ckpt-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('checkpoint file', () => {
  it('round-trips parameters, optimizer state and losses, and leaves no temp file', () => {
    const dir = tempDir();
    const params = initParams(model);
    const m = new Map([['embedding', { shape: [16, 16], data: Float32Array.from({ length: 256 }, (_, i) => i / 7) }]]);
    const v = new Map([['embedding', { shape: [16, 16], data: Float32Array.from({ length: 256 }, (_, i) => i / 9) }]]);
    saveCheckpoint(dir, { runId: 'r', step: 3, model, train, losses: [3, 2, 1], auxLosses: [0, 0, 0], params, optimizer: { t: 3, m, v } });
    expect(readdirSync(dir)).toEqual([CHECKPOINT_FILE]);
    const back = loadCheckpoint(dir);
    expect(back.step).toBe(3);
    expect(back.model).toEqual(model);
    expect(back.losses).toEqual([3, 2, 1]);
    expect(back.optimizer.t).toBe(3);
    expect([...back.optimizer.m.get('embedding')!.data]).toEqual([...m.get('embedding')!.data]);
    expect([...back.params.head.data]).toEqual([...params.head.data]);
    expect([...back.params.experts[1]![3]!.w2.data]).toEqual([...params.experts[1]![3]!.w2.data]);
  });

  it('refuses a corrupt or truncated file with a CheckpointError that says which', () => {
    const dir = tempDir();
    saveCheckpoint(dir, { runId: 'r', step: 1, model, train, losses: [1], auxLosses: [0], params: initParams(model), optimizer: { t: 0, m: new Map(), v: new Map() } });
    const path = join(dir, CHECKPOINT_FILE);
    const bytes = readFileSync(path);
    bytes[bytes.length - 5] ^= 0xff;
    writeFileSync(path, bytes);
    expect(() => loadCheckpoint(dir)).toThrow(/sha256 .* \(corrupt\)/);
    writeFileSync(path, bytes.subarray(0, bytes.length - 8));
    expect(() => loadCheckpoint(dir)).toThrow(/truncated/);
    expect(() => loadCheckpoint(tempDir())).toThrow(CheckpointError);
  });
});

describe('resume from a checkpoint (real worker processes)', () => {
  let cluster: LocalCluster;
  beforeAll(async () => {
    cluster = await LocalCluster.start({ workers: 2, rendezvousTimeoutMs: 30_000 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a run stopped after step 3 and resumed for steps 3..5 has the losses of an uninterrupted 6-step run', async () => {
    const whole = await runTraining({ model, train, workers: 2, cluster });

    const dir = tempDir();
    const first = await runTraining({ model, train: { ...train, steps: 3 }, workers: 2, cluster, checkpointDir: dir, checkpointEvery: 3 });
    expect(first.losses).toHaveLength(3);
    const checkpoint = loadCheckpoint(dir);
    expect(checkpoint.step).toBe(3);
    expect(checkpoint.optimizer.t).toBe(3);
    // Every trained tensor has m and v: dense trainables and all 2 x 4 experts' w1, w3, w2.
    expect([...checkpoint.optimizer.m.keys()].filter((n) => n.includes('.experts.'))).toHaveLength(2 * 4 * 3);

    const resumed = await runTraining({ model, train, workers: 2, cluster, resume: checkpoint });
    expect(resumed.steps.map((s) => s.step)).toEqual([3, 4, 5]);
    expect(resumed.losses).toHaveLength(6);
    resumed.losses.forEach((loss, step) => {
      const relative = Math.abs(loss - whole.losses[step]!) / Math.abs(whole.losses[step]!);
      expect(relative, `step ${step}: resumed ${loss}, uninterrupted ${whole.losses[step]}`).toBeLessThanOrEqual(1e-6);
    });
  }, 45_000);

  it('refuses to resume a checkpoint of another model', async () => {
    const dir = tempDir();
    saveCheckpoint(dir, { runId: 'r', step: 1, model, train, losses: [1], auxLosses: [0], params: initParams(model), optimizer: { t: 0, m: new Map(), v: new Map() } });
    const other = parseModelConfig({ ...model, layers: 3 });
    await expect(runTraining({ model: other, train, workers: 2, cluster, resume: loadCheckpoint(dir) })).rejects.toThrow(/checkpoint's model/);
  });
});
