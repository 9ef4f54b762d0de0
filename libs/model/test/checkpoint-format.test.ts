/** The checkpoint format: bytes that round-trip a run's state, and refusal of bytes that were changed. */
import { describe, expect, it } from 'vitest';
import { CheckpointError, decodeCheckpoint, encodeCheckpoint, initParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, type Checkpoint } from '../src/index';

const model = parseModelConfig({ ...TINY_MODEL, layers: 2, routedExperts: 4 });
const checkpoint = (): Checkpoint => ({
  runId: 'r',
  step: 2,
  model,
  train: TINY_TRAIN,
  losses: [3, 2],
  auxLosses: [0, 0],
  params: initParams(model),
  optimizer: { t: 2, m: new Map([['head', { shape: [1, 2], data: Float32Array.from([1, 2]) }]]), v: new Map([['head', { shape: [1, 2], data: Float32Array.from([3, 4]) }]]) },
});

describe('checkpoint format', () => {
  it('decodes what it encodes', () => {
    const c = checkpoint();
    const back = decodeCheckpoint(encodeCheckpoint(c), 'mem');
    expect(back.losses).toEqual([3, 2]);
    expect(back.optimizer.t).toBe(2);
    expect([...back.optimizer.v.get('head')!.data]).toEqual([3, 4]);
    expect([...back.params.experts[1]![3]!.w1.data]).toEqual([...c.params.experts[1]![3]!.w1.data]);
  });

  it('refuses a changed byte, a cut body and another format, naming which', () => {
    const bytes = encodeCheckpoint(checkpoint());
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => decodeCheckpoint(flipped, 'mem')).toThrow(/sha256 of the body .* \(corrupt\)/);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4), 'mem')).toThrow(/\(truncated\?\)/);
    expect(() => decodeCheckpoint(Buffer.from('hello\nworld\n'), 'mem')).toThrow(CheckpointError);
  });
});
