/**
 * Acceptance for micro-batches and fb-overlap: real worker processes (cpu backend) over real
 * gRPC equal the reference trainer on the same global batch (loss 1e-5 relative, parameters 1e-4
 * absolute), and every op of the step is recorded with its micro-batch.
 */
import { parseModelConfig, TINY_MODEL, TINY_TRAIN, type TrainConfig } from '@moe/model';
import type { StepSettingsInput } from '@moe/schedule';
import { describe, expect, it } from 'vitest';
import { runTraining } from '../src/run/train-run';

const TIMEOUT = 300_000;
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2 });
// 12 sequences: 3 a worker on 4 workers (4 micro-batches: one empty), 4 a worker on 3.
const train: TrainConfig = { ...TINY_TRAIN, batchSequences: 12, steps: 5 };

async function expectParity(workers: number, step: StepSettingsInput) {
  const result = await runTraining({ model, train, workers, step: { ...step, recordTimeline: true }, checkReference: true, rpcTimeoutMs: 120_000, stepTimeoutMs: 120_000 });
  const reference = result.reference!;
  result.losses.forEach((loss, s) => {
    expect(Math.abs(loss - reference.losses[s]!) / Math.abs(reference.losses[s]!), `step ${s}: run ${loss}, reference ${reference.losses[s]}`).toBeLessThanOrEqual(1e-5);
  });
  expect(result.parity!.params.maxAbsolute, `worst parameter ${result.parity!.params.name}`).toBeLessThanOrEqual(1e-4);
  expect(result.parity!.ok).toBe(true);
  // every rank ran every micro-batch's ops, and the step's update ops once
  for (const timeline of result.steps.at(-1)!.timelines) {
    const microBatches = new Set(timeline.map((op) => op.microBatch));
    expect([...microBatches].sort()).toEqual([-1, ...Array.from({ length: step.microBatches ?? 1 }, (_, m) => m)]);
    expect(timeline.filter((op) => op.name === 'update')).toHaveLength(1);
  }
}

describe('fb-overlap and micro-batches across worker processes equal the reference trainer', () => {
  it('fb-overlap, 4 workers, 4 micro-batches', () => expectParity(4, { schedule: 'fb-overlap', microBatches: 4 }), TIMEOUT);
  it('fb-overlap, 3 workers, 3 micro-batches, 2 chunks', () => expectParity(3, { schedule: 'fb-overlap', chunks: 2, microBatches: 3 }), TIMEOUT);
  it('fb-overlap, 4 workers, 2 micro-batches, 2 chunks', () => expectParity(4, { schedule: 'fb-overlap', chunks: 2, microBatches: 2 }), TIMEOUT);
  it('naive, 3 workers, 4 micro-batches', () => expectParity(3, { schedule: 'naive', microBatches: 4 }), TIMEOUT);
});
