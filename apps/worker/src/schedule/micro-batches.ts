import { microBatchTokens, splitMicroBatches, type SequenceRange } from '@moe/placement';
import type { MicroBatch, StepBatch } from '../backend';

/**
 * This worker's step batch as `count` micro-batches of whole sequences, split by the one rule of
 * `@moe/placement` (splitMicroBatches). Inputs and targets are views of the batch's arrays.
 * (fewer sequences than `count`: the last micro-batches are empty, see splitMicroBatches).
 */
export function microBatchesOf(batch: StepBatch, seqLen: number, count: number): MicroBatch[] {
  const sequences = batch.inputs.length / seqLen;
  return splitMicroBatches(sequences, count).map((range: SequenceRange, microBatch) => ({
    ...batch,
    inputs: microBatchTokens(batch.inputs, seqLen, range),
    targets: microBatchTokens(batch.targets, seqLen, range),
    microBatch,
    microBatches: count,
    stepTokens: batch.inputs.length,
  }));
}

/** A step of one micro-batch: the whole batch. */
export const wholeBatch = (batch: StepBatch): MicroBatch[] => [{ ...batch, microBatch: 0, microBatches: 1, stepTokens: batch.inputs.length }];
