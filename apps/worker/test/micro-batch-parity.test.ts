/**
 * Micro-batches, in process: M micro-batches per step, gradients accumulated, one update a step,
 * equal the reference trainer on the same global batch for every schedule (f32: loss 1e-5
 * relative, parameters 1e-4 absolute), on 3 and 4 ranks, with and without chunks. fb-overlap
 * splits each expert backward into input and weight gradients (experts_dgrad, experts_wgrad).
 */
import { namedParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference, type TrainConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend';
import type { CpuBackend } from '../src/backends/cpu-backend';
import { maxAbsDiff, trainInProcess } from './support/in-process-cluster';

const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2 });
// 12 sequences: 3 a rank on 4 ranks, 4/4/4 on 3; with 4 micro-batches some ranks have an empty one.
const train: TrainConfig = { ...TINY_TRAIN, batchSequences: 12, seqLen: 8, steps: 4 };
const reference = trainReference(model, train);
const referenceParams = namedParams(reference.params);
const OWNERS: Record<number, number[]> = { 3: [0, 0, 0, 1, 1, 1, 2, 2], 4: [0, 0, 1, 1, 2, 2, 3, 3] };

async function expectParity(options: { world: 3 | 4; schedule: string; chunks: number; microBatches: number; wrapBackend?: (b: CpuBackend) => Backend }) {
  const run = await trainInProcess({ model, train, owner: OWNERS[options.world]!, ...options });
  run.losses.forEach((loss, step) => {
    expect(Math.abs(loss - reference.losses[step]!) / Math.abs(reference.losses[step]!), `step ${step}`).toBeLessThan(1e-5);
  });
  for (const sums of run.checksums) expect(new Set(sums).size).toBe(1);
  const diff = maxAbsDiff(run.params, referenceParams);
  expect(diff.max, `worst parameter ${diff.name}`).toBeLessThan(1e-4);
}

describe('micro-batches equal the reference trainer on the same global batch', () => {
  it.each([
    [4, 2, 1],
    [4, 3, 1],
    [4, 4, 1],
    [3, 2, 1],
    [3, 3, 1],
    [3, 4, 1],
    [4, 2, 2],
    [4, 3, 2],
    [4, 4, 2],
    [3, 2, 2],
    [3, 3, 2],
    [3, 4, 2],
  ] as const)('fb-overlap on %i ranks, %i micro-batches, %i chunk(s)', async (world, microBatches, chunks) => {
    await expectParity({ world, schedule: 'fb-overlap', chunks, microBatches });
  });

  it.each([1, 2])(
    'fb-overlap on a backend without the split expert backward (%i chunk(s)): its experts_dgrad runs the whole backward, experts_wgrad nothing',
    async (chunks) => {
      const unsplit = (cpu: CpuBackend): Backend => Object.assign(Object.create(cpu) as CpuBackend, { expertsInputGrad: undefined, expertsWeightGrad: undefined });
      await expectParity({ world: 4, schedule: 'fb-overlap', chunks, microBatches: 3, wrapBackend: unsplit });
    },
  );

  it.each([
    ['naive', 1, 3],
    ['overlapped', 2, 4],
    ['fb-overlap', 1, 1],
  ] as const)('%s (%i chunks), %i micro-batches, 4 ranks', async (schedule, chunks, microBatches) => {
    await expectParity({ world: 4, schedule, chunks, microBatches });
  });
});
