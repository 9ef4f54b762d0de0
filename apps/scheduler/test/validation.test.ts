/**
 * Validation before anything starts (issue #18, point 5): a model or batch too big for memory
 * is refused naming the field (not 8 s later with `RangeError: Invalid typed array length`),
 * against a configurable ceiling; in the queue such a run is invalid (never retried).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkMemory, ConfigError, estimateMemory, initParams, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { InvalidRunError, validateRunJob } from '../src/queue/index';
import { MEMORY_LIMIT_ENV, resolveRunConfig } from '../src/run/run-config';
import { REPO_ROOT } from '../src/paths';

const dir = mkdtempSync(join(tmpdir(), 'moe-validation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => delete process.env[MEMORY_LIMIT_ENV]);

const refusal = (f: () => unknown): ConfigError => {
  try {
    f();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
};

describe('sizes are checked against memory before anything is allocated', () => {
  it('hiddenSize 1e9 is refused naming model.hiddenSize, whatever the limit', () => {
    const error = refusal(() => resolveRunConfig({ model: { hiddenSize: 1e9 } }));
    expect(error.field).toBe('model.hiddenSize');
    expect(error.rule).toBe('memory');
    expect(error.message).toMatch(/^model\.hiddenSize=1000000000 makes a tensor of 3\.20e\+10 values, more than one array can hold/);
  });

  it('a batch too big for the ceiling names the batch field; the ceiling is MOE_MEMORY_LIMIT_MB', () => {
    process.env[MEMORY_LIMIT_ENV] = '64';
    const error = refusal(() => resolveRunConfig({ train: { batchSequences: 4096, seqLen: 4096 } }));
    expect(error.field).toMatch(/^train\.(batchSequences|seqLen)$/);
    expect(error.message).toMatch(/over MOE_MEMORY_LIMIT_MB=64 of 0\.063 GiB; make train\.\w+ smaller or raise the limit/);
    // The tiny defaults fit easily.
    expect(() => resolveRunConfig({})).not.toThrow();
  });

  it('the estimate counts what initParams allocates', () => {
    const model = { ...TINY_MODEL, hiddenSize: 24, expertFfnSize: 40, routedExperts: 6, sharedExperts: 2, layers: 3 };
    const params = initParams(model);
    const all = [params.embedding, params.finalNorm, params.head, ...params.layers.flatMap((l) => [l.norm, l.router, l.routerBias, ...l.shared.flatMap((e) => [e.w1, e.w3, e.w2])]), ...params.experts.flat().flatMap((e) => [e.w1, e.w3, e.w2])];
    expect(estimateMemory(model, TINY_TRAIN).params).toBe(all.reduce((n, t) => n + t.data.length, 0));
    expect(() => checkMemory(model, TINY_TRAIN, 1)).toThrow(ConfigError);
  });

  it('in the queue, such a run is invalid, naming the field (so it is never retried)', () => {
    let error: unknown;
    try {
      validateRunJob({ kind: 'train', config: { model: { hiddenSize: 1e9 } } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidRunError);
    expect((error as InvalidRunError).field).toBe('config.model.hiddenSize');
    expect((error as Error).message).toMatch(/^invalid run: config: model\.hiddenSize=1000000000 makes a tensor/);
  });

  it('moe train refuses it before starting anything: exit 2, the field named', () => {
    const path = join(dir, 'huge.json');
    writeFileSync(path, JSON.stringify({ model: { hiddenSize: 1e9 } }));
    const run = spawnSync(process.execPath, ['bin/moe.mjs', 'train', '--config', path, '--workers', '2'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/ConfigError: model\.hiddenSize=1000000000 makes a tensor/);
    expect(run.stderr).not.toMatch(/RangeError|Invalid typed array length/);
  });
});

describe('every count of a job is bounded', () => {
  it.each([
    [{ kind: 'train', workers: 40_000 }, 'workers', /^invalid run: workers: Too big: expected number to be <=1024 \(got 40000\)$/],
    [{ kind: 'train', steps: 1e12 }, 'steps', /Too big/],
    [{ kind: 'train', chunks: 100_000 }, 'chunks', /Too big/],
    [{ kind: 'bench', ratios: Array.from({ length: 100 }, () => 1) }, 'ratios', /Too big/],
    [{ kind: 'bench', measuredSteps: 1e9 }, 'measuredSteps', /Too big/],
    [{ kind: 'train', rpcTimeoutMs: 1e12 }, 'rpcTimeoutMs', /Too big/],
  ])('%j is refused naming %s', (data, field, rule) => {
    let error: unknown;
    try {
      validateRunJob(data);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidRunError);
    expect((error as InvalidRunError).field).toBe(field);
    expect((error as Error).message).toMatch(rule);
  });
});

