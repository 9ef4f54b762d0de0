import { describe, expect, it } from 'vitest';
import { BatchSplitError, microBatchTokens, splitMicroBatches } from '../src';

describe('splitMicroBatches', () => {
  it('covers a rank\'s sequences once, in order, sizes differing by at most one, larger first', () => {
    expect(splitMicroBatches(10, 4).map((r) => r.count)).toEqual([3, 3, 2, 2]);
    for (const [sequences, m] of [[10, 4], [4, 4], [7, 3], [1, 1], [64, 5]] as const) {
      let next = 0;
      for (const r of splitMicroBatches(sequences, m)) {
        expect(r.first).toBe(next);
        next += r.count;
      }
      expect(next).toBe(sequences);
    }
  });

  it('leaves the last micro-batches empty when a rank holds fewer sequences than micro-batches', () => {
    expect(splitMicroBatches(2, 4).map((r) => r.count)).toEqual([1, 1, 0, 0]);
    expect(splitMicroBatches(0, 3).map((r) => r.count)).toEqual([0, 0, 0]);
  });

  it('refuses a count that is not a positive integer', () => {
    expect(() => splitMicroBatches(4, 0)).toThrow(BatchSplitError);
    expect(() => splitMicroBatches(4, 1.5)).toThrow(/microBatches=1.5/);
  });

  it('slices whole sequences', () => {
    const tokens = Int32Array.from({ length: 12 }, (_, i) => i);
    const [a, b] = splitMicroBatches(3, 2);
    expect([...microBatchTokens(tokens, 4, a!)]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([...microBatchTokens(tokens, 4, b!)]).toEqual([8, 9, 10, 11]);
  });
});
