import { namedParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference, type ModelParams, type TrainConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { maxAbsDiff, trainInProcess } from './support/in-process-cluster';

/**
 * Fully skewed routing with real math: a router bias of 1e3 on expert 0 (the bias only picks
 * experts, it does not weight them; `balancing: 'none'` never moves it) sends every token of
 * every rank to expert 0, owned by rank 0; the other ranks' experts receive nothing.
 */
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 1, layers: 2, balancing: 'none' });
const train: TrainConfig = { ...TINY_TRAIN, steps: 3 };
const skew = (params: ModelParams) => {
  for (const layer of params.layers) layer.routerBias.data[0] = 1e3;
};

describe('fully skewed routing (every token to one expert)', () => {
  it('a step completes on 4 ranks, ranks agree, and it matches the reference from the same init', async () => {
    const reference = trainReference(model, train, { mutateParams: skew });
    const run = await trainInProcess({ model, train, world: 4, owner: [0, 0, 1, 1, 2, 2, 3, 3], schedule: 'naive', mutateParams: skew });
    run.losses.forEach((loss, step) => {
      expect(Number.isFinite(loss), `step ${step}`).toBe(true);
      expect(Math.abs(loss - reference.losses[step]!) / Math.abs(reference.losses[step]!), `step ${step}`).toBeLessThan(1e-5);
    });
    for (const sums of run.checksums) expect(new Set(sums).size).toBe(1);
    const diff = maxAbsDiff(run.params, namedParams(reference.params));
    expect(diff.max, `worst parameter ${diff.name}`).toBeLessThan(1e-4);
    // Only rank 0 sends expert outputs back: ranks 1..3 receive all their tokens' rows from it,
    // while they themselves only dispatch (and all-reduce).
    expect(run.bytesSent[0]).toBeGreaterThan(run.bytesSent[1]!);
    // Experts 1..7 never saw a token: their weights are exactly the init.
    const untouched = namedParams(trainReference(model, { ...train, steps: 0 }, { mutateParams: skew }).params);
    const idle = [...run.params].filter(([name]) => /^layers\.\d+\.experts\.[1-7]\./.test(name));
    expect(idle.length).toBeGreaterThan(0);
    const hot = [...run.params].filter(([name]) => /^layers\.\d+\.experts\.0\./.test(name));
    expect(Math.max(...hot.map(([name, t]) => maxAbsDiff(new Map([[name, t]]), new Map([[name, untouched.get(name)!]])).max))).toBeGreaterThan(0);
    for (const [name, t] of idle) {
      expect(maxAbsDiff(new Map([[name, t]]), new Map([[name, untouched.get(name)!]])).max, name).toBe(0);
    }
  });
});
