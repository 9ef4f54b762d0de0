import { namedParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference, type TrainConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { maxAbsDiff, trainInProcess } from './support/in-process-cluster';

const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 3 });
const train: TrainConfig = { ...TINY_TRAIN, steps: 8 };
const reference = trainReference(model, train);
const referenceParams = namedParams(reference.params);

function expectParity(run: Awaited<ReturnType<typeof trainInProcess>>, lossTolerance = 1e-5, paramTolerance = 1e-4) {
  run.losses.forEach((loss, step) => {
    expect(Math.abs(loss - reference.losses[step]!) / Math.abs(reference.losses[step]!), `step ${step}`).toBeLessThan(lossTolerance);
  });
  for (const sums of run.checksums) expect(new Set(sums).size).toBe(1);
  const diff = maxAbsDiff(run.params, referenceParams);
  expect(diff.max, `worst parameter ${diff.name}`).toBeLessThan(paramTolerance);
}

describe('a step run by the executor on several ranks equals the reference trainer', () => {
  it('naive schedule, 4 ranks, contiguous placement', async () => {
    expectParity(await trainInProcess({ model, train, world: 4, owner: [0, 0, 1, 1, 2, 2, 3, 3], schedule: 'naive' }));
  });

  it('naive schedule, 3 ranks with 3/3/2 experts', async () => {
    expectParity(await trainInProcess({ model, train, world: 3, owner: [0, 0, 0, 1, 1, 1, 2, 2], schedule: 'naive' }));
  });

  it('every expert on one rank: the others receive nothing and do not hang', async () => {
    expectParity(await trainInProcess({ model, train, world: 3, owner: [1, 1, 1, 1, 1, 1, 1, 1], schedule: 'naive' }));
  });

  it.each([2, 4])('overlapped schedule with %i chunks', async (chunks) => {
    expectParity(await trainInProcess({ model, train, world: 4, owner: [0, 0, 1, 1, 2, 2, 3, 3], schedule: 'overlapped', chunks }));
  });
});
