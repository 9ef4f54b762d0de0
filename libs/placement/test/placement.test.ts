import { describe, expect, it } from 'vitest';
import { expertsPerRank, parsePlacement, planExperts } from '../src/placement';
import { sliceSequences, splitSequences } from '../src/batch-split';
import { BatchSplitError, PlacementError } from '../src/errors';

describe('planExperts places every expert on one rank', () => {
  it('contiguous: equal blocks when the experts divide evenly', () => {
    expect(planExperts(8, 4, 'contiguous')).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
  });

  it('contiguous: uneven counts differ by at most one, the larger blocks first (8 on 3 is 3,3,2)', () => {
    const owner = planExperts(8, 3, 'contiguous');
    expect(owner).toEqual([0, 0, 0, 1, 1, 1, 2, 2]);
    expect(expertsPerRank(owner, 3)).toEqual([3, 3, 2]);
  });

  it('round-robin: expert e on rank e mod workers', () => {
    expect(planExperts(8, 3, 'round-robin')).toEqual([0, 1, 2, 0, 1, 2, 0, 1]);
  });

  it('contiguous is the default', () => {
    expect(planExperts(6, 2)).toEqual([0, 0, 0, 1, 1, 1]);
  });

  it('more workers than experts is allowed: the extra ranks own no expert but still hold tokens', () => {
    const owner = planExperts(2, 4, 'contiguous');
    expect(owner).toEqual([0, 1]);
    expect(expertsPerRank(owner, 4)).toEqual([1, 1, 0, 0]);
    expect(planExperts(2, 4, 'round-robin')).toEqual([0, 1]);
  });

  it('an explicit list is taken as given, even every expert on one rank', () => {
    expect(planExperts(8, 4, [2, 2, 2, 2, 2, 2, 2, 2])).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
  });

  it('refuses a list of the wrong length, naming both counts', () => {
    expect(() => planExperts(8, 4, [0, 1, 2])).toThrow(PlacementError);
    expect(() => planExperts(8, 4, [0, 1, 2])).toThrow('placement lists 3 owners but the model has 8 experts');
  });

  it('refuses a rank outside the world, naming the expert and the valid ranks', () => {
    expect(() => planExperts(4, 2, [0, 1, 2, 0])).toThrow('placement[2]=2 is not a rank of this run (0..1)');
    expect(() => planExperts(2, 2, [0, -1])).toThrow(PlacementError);
    expect(() => planExperts(2, 2, [0, 0.5])).toThrow(PlacementError);
  });

  it('refuses zero or fractional counts', () => {
    expect(() => planExperts(0, 2)).toThrow('experts=0 must be a positive integer');
    expect(() => planExperts(8, 0)).toThrow('workers=0 must be a positive integer');
    expect(() => planExperts(8, 1.5)).toThrow(PlacementError);
  });

  it('refuses an unknown rule by name', () => {
    expect(() => planExperts(8, 2, 'random' as never)).toThrow('placement "random" is not one of contiguous, round-robin');
  });
});

describe('parsePlacement reads a --placement argument', () => {
  it('accepts the rule names', () => {
    expect(parsePlacement('contiguous')).toBe('contiguous');
    expect(parsePlacement('round-robin')).toBe('round-robin');
  });

  it('accepts a comma-separated rank per expert', () => {
    expect(parsePlacement('0,0,1, 1')).toEqual([0, 0, 1, 1]);
  });

  it('refuses anything else', () => {
    expect(() => parsePlacement('0,a,1')).toThrow(PlacementError);
    expect(() => parsePlacement('zigzag')).toThrow(/not one of contiguous, round-robin or a comma-separated list/);
    expect(() => parsePlacement('')).toThrow(PlacementError);
  });
});

describe('splitSequences splits the global batch over ranks', () => {
  it('contiguous blocks of whole sequences, sizes differing by at most one', () => {
    expect(splitSequences(10, 4)).toEqual([
      { first: 0, count: 3 },
      { first: 3, count: 3 },
      { first: 6, count: 2 },
      { first: 8, count: 2 },
    ]);
  });

  it('covers every sequence exactly once, in rank order', () => {
    for (let b = 1; b <= 17; b++) {
      for (let w = 1; w <= b; w++) {
        const ranges = splitSequences(b, w);
        expect(ranges.reduce((n, r) => n + r.count, 0)).toBe(b);
        ranges.forEach((r, i) => i > 0 && expect(r.first).toBe(ranges[i - 1]!.first + ranges[i - 1]!.count));
        const counts = ranges.map((r) => r.count);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('refuses fewer sequences than workers, unless empty ranks are allowed', () => {
    expect(() => splitSequences(3, 4)).toThrow(BatchSplitError);
    expect(() => splitSequences(3, 4)).toThrow('train.batchSequences=3 is smaller than the 4 workers');
    expect(splitSequences(3, 4, true).map((r) => r.count)).toEqual([1, 1, 1, 0]);
  });

  it("slices a rank's tokens out of the global batch", () => {
    const tokens = Int32Array.from({ length: 12 }, (_, i) => i); // 4 sequences of 3
    expect([...sliceSequences(tokens, 3, { first: 1, count: 2 })]).toEqual([3, 4, 5, 6, 7, 8]);
    expect(sliceSequences(tokens, 3, { first: 4, count: 0 }).length).toBe(0);
  });
});
