/** Configs: defaults fill what is missing; impossible configs are refused naming field, rule and numbers. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseModelConfig, parseTrainConfig, TINY_MODEL, TINY_TRAIN } from '../src/index';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('parseModelConfig', () => {
  it('fills missing fields with the TINY_MODEL values and accepts TINY_MODEL itself', () => {
    expect(parseModelConfig({})).toEqual(TINY_MODEL);
    expect(parseModelConfig(TINY_MODEL)).toEqual(TINY_MODEL);
    expect(parseModelConfig({ topK: 1, scoreFunction: 'sigmoid' })).toMatchObject({ topK: 1, scoreFunction: 'sigmoid', routedExperts: 8 });
  });

  it('refuses top-k above the routed experts, with both numbers and the field', () => {
    const e = configError(() => parseModelConfig({ ...TINY_MODEL, topK: 9 }));
    expect(e.message).toBe('top_k=9 exceeds routed experts=8 (model.topK)');
    expect(e.field).toBe('model.topK');
    expect(e.rule).toBe('top-k-within-experts');
  });

  it('refuses zero layers', () => {
    const e = configError(() => parseModelConfig({ layers: 0 }));
    expect(e.message).toBe('model.layers must be a positive integer, got 0');
    expect(e.field).toBe('model.layers');
  });

  it('refuses a non-integer size', () => {
    const e = configError(() => parseModelConfig({ hiddenSize: 31.5 }));
    expect(e.message).toBe('model.hiddenSize must be a positive integer, got 31.5');
    expect(e.rule).toBe('positive-integer');
  });

  it('refuses an unknown score function, listing the known ones', () => {
    const e = configError(() => parseModelConfig({ scoreFunction: 'tanh' }));
    expect(e.message).toBe(`model.scoreFunction must be one of 'softmax', 'sigmoid', got "tanh"`);
    expect(e.field).toBe('model.scoreFunction');
  });

  it('refuses negative rates and a misspelt field', () => {
    expect(() => parseModelConfig({ biasUpdateSpeed: -0.1 })).toThrow('model.biasUpdateSpeed must be a non-negative finite number, got -0.1');
    expect(() => parseModelConfig({ topk: 2 })).toThrow(/model\.topk is not a known field/);
    expect(() => parseModelConfig('big')).toThrow('model must be an object, got "big"');
  });

  it('reports every problem in one message; field is the first one', () => {
    const e = configError(() => parseModelConfig({ hiddenSize: 31.5, layers: 0, routedExperts: 4, topK: 6 }, 'config.model'));
    expect(e.problems.map((p) => p.field)).toEqual(['config.model.hiddenSize', 'config.model.layers', 'config.model.topK']);
    expect(e.field).toBe('config.model.hiddenSize');
    expect(e.message).toContain('3 config problems');
    expect(e.message).toContain('config.model.hiddenSize must be a positive integer, got 31.5');
    expect(e.message).toContain('config.model.layers must be a positive integer, got 0');
    expect(e.message).toContain('top_k=6 exceeds routed experts=4 (config.model.topK)');
  });
});

describe('parseTrainConfig', () => {
  it('fills defaults, the nested optimizer included', () => {
    expect(parseTrainConfig({})).toEqual(TINY_TRAIN);
    expect(parseTrainConfig({ optimizer: { learningRate: 3e-4 } }).optimizer).toEqual({ ...TINY_TRAIN.optimizer, learningRate: 3e-4 });
  });

  it('refuses a negative learning rate and a beta of 1, naming the nested paths', () => {
    const e = configError(() => parseTrainConfig({ seqLen: 0, optimizer: { learningRate: -0.1, beta2: 1 } }));
    expect(e.problems.map((p) => p.field)).toEqual(['train.seqLen', 'train.optimizer.learningRate', 'train.optimizer.beta2']);
    expect(e.message).toContain('train.optimizer.learningRate must be a positive finite number, got -0.1');
    expect(e.message).toContain('train.optimizer.beta2 must be a number in [0, 1), got 1');
  });
});
