import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigFileError } from '../src/errors';
import { loadRunConfig, resolveRunConfig } from '../src/run/run-config';

const dir = mkdtempSync(join(tmpdir(), 'moe-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('a run config', () => {
  it('defaults to the tiny model and training settings', () => {
    const { model, train } = loadRunConfig(undefined);
    expect(model).toEqual({ ...TINY_MODEL });
    expect(train).toEqual({ ...TINY_TRAIN, optimizer: { ...TINY_TRAIN.optimizer } });
  });

  it('takes a file\'s fields over the defaults, the optimizer field by field', () => {
    const path = file('ok.json', JSON.stringify({ model: { routedExperts: 6, topK: 3 }, train: { steps: 5, optimizer: { learningRate: 0.05 } } }));
    const { model, train } = loadRunConfig(path);
    expect(model).toMatchObject({ routedExperts: 6, topK: 3, layers: TINY_MODEL.layers });
    expect(train).toMatchObject({ steps: 5, batchSequences: TINY_TRAIN.batchSequences });
    expect(train.optimizer).toMatchObject({ learningRate: 0.05, beta1: TINY_TRAIN.optimizer.beta1 });
  });

  it('lets --steps and --seed override the file', () => {
    const { model, train } = resolveRunConfig({ train: { steps: 5 } }, { steps: 9, seed: 42 });
    expect(train.steps).toBe(9);
    expect(train.dataSeed).toBe(42);
    expect(model.seed).toBe(42);
  });

  it('refuses an impossible model with the field and the rule (ConfigError)', () => {
    const path = file('bad.json', JSON.stringify({ model: { routedExperts: 8, topK: 9 } }));
    expect(() => loadRunConfig(path)).toThrow(ConfigError);
    expect(() => loadRunConfig(path)).toThrow(/topK/);
  });

  it('refuses a file that is not JSON, not an object, or has unknown sections', () => {
    expect(() => loadRunConfig(file('broken.json', '{ "model": '))).toThrow(ConfigFileError);
    expect(() => loadRunConfig(file('broken.json', '{ "model": '))).toThrow(/is not valid JSON/);
    expect(() => loadRunConfig(file('array.json', '[]'))).toThrow(/expected an object/);
    expect(() => loadRunConfig(file('extra.json', '{ "modle": {} }'))).toThrow('unknown top-level field "modle"; only "model" and "train" are allowed');
    expect(() => loadRunConfig(file('section.json', '{ "train": 3 }'))).toThrow('"train" must be an object');
    expect(() => loadRunConfig(join(dir, 'missing.json'))).toThrow(/cannot read config file .*missing\.json/);
  });
});
