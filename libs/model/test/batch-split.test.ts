import { describe, expect, it } from 'vitest';
import { checkSplit, parseModelConfig, ShapeError, TINY_MODEL, TINY_TRAIN, trainReference, type BatchSplit } from '../src/index';

const model = parseModelConfig({ ...TINY_MODEL, balancing: 'aux' });
const train = { ...TINY_TRAIN, steps: 3 };
const T = train.batchSequences * train.seqLen;
const half = T / 2;
const twoRanksTwoChunks: BatchSplit = {
  ranks: [
    { begin: 0, end: half },
    { begin: half, end: T },
  ],
  chunks: [
    [
      { begin: 0, end: half / 2 },
      { begin: half, end: half + half / 2 },
    ],
    [
      { begin: half / 2, end: half },
      { begin: half + half / 2, end: T },
    ],
  ],
};

describe('a batch split changes only the order of the reference\'s gradient sums', () => {
  it('two ranks and two chunks train to the same losses and parameters within float32 rounding', () => {
    const whole = trainReference(model, train);
    const split = trainReference(model, train, { mirror: { split: twoRanksTwoChunks } });
    split.losses.forEach((loss, step) => expect(Math.abs(loss - whole.losses[step]!)).toBeLessThan(1e-6));
    const a = split.params.head.data;
    const b = whole.params.head.data;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1e-5);
  });

  it('refuses a split that does not cover the batch rank after rank, naming the rank', () => {
    expect(() => checkSplit({ ranks: [{ begin: 0, end: 10 }, { begin: 12, end: T }], chunks: [] }, T)).toThrow(ShapeError);
    expect(() => checkSplit({ ranks: [{ begin: 0, end: 10 }, { begin: 12, end: T }], chunks: [] }, T)).toThrow(/rank 1 holds tokens \[12/);
    expect(() => checkSplit({ ranks: [{ begin: 0, end: T - 1 }], chunks: [] }, T)).toThrow(/hold 255 tokens, the batch has 256/);
    expect(() => checkSplit({ ranks: [{ begin: 0, end: T }], chunks: [[{ begin: 0, end: T + 1 }]] }, T)).toThrow(/chunk 0 of rank 0/);
  });
});
