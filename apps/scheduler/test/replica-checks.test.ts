/** The scheduler's check that every copy of a redundant expert stays identical, step after step. */
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError, WorkerRpcError } from '../src/errors';
import { assertReplicasAgree } from '../src/run/replica-checks';

// Expert 0 on ranks 0 and 2, expert 1 on rank 1 only; 2 layers.
const holders = [[0, 2], [1]];
const sums = (layer0: string, layer1: string) => [{ layer: 0, expert: 0, checksum: layer0 }, { layer: 1, expert: 0, checksum: layer1 }];

describe('assertReplicasAgree', () => {
  it('passes when every holder reports the same checksum for every layer', () => {
    expect(() => assertReplicasAgree([sums('a', 'b'), [], sums('a', 'b')], holders, 2, 3, 'step 3')).not.toThrow();
  });

  it('names the expert, the layer and the ranks whose copy differs', () => {
    const run = () => assertReplicasAgree([sums('a', 'b'), [], sums('a', 'c')], holders, 2, 3, 'step 3');
    expect(run).toThrow(ChecksumMismatchError);
    expect(run).toThrow('step 3: the copies of expert 0 of layer 1 diverged (rank 0 has b, rank 2 has c); rank 2 disagrees with rank 0, stopping the run');
    try {
      run();
    } catch (error) {
      expect(error).toMatchObject({ step: 3, ranks: [2], expert: { layer: 1, expert: 0 } });
    }
  });

  it('a holder that reports nothing about its copy (a worker unaware of redundant experts) is named', () => {
    expect(() => assertReplicasAgree([sums('a', 'b'), [], []], holders, 2, 0, 'step 0')).toThrow(
      'step 0: rank 2 holds a copy of expert 0 (layer 0) but reported no checksum of it; does its worker run redundant experts?',
    );
    expect(() => assertReplicasAgree([sums('a', 'b'), [], []], holders, 2, 0, 'step 0')).toThrow(WorkerRpcError);
  });

  it('refuses a checksum of an expert the rank does not hold as a redundant one', () => {
    expect(() => assertReplicasAgree([sums('a', 'b'), [{ layer: 0, expert: 1, checksum: 'x' }], sums('a', 'b')], holders, 2, 0, 'step 0')).toThrow(
      'step 0: rank 1 reported a replica checksum of expert 1 of layer 0, which is not a redundant expert it holds',
    );
  });
});
