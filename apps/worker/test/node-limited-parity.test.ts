/**
 * Node-limited routing trained on several ranks grouped into 2 nodes equals the reference
 * trainer. Groups are laid out so that each group's experts live on one node (contiguous
 * placement), which is what makes the limit a limit on nodes.
 */
import { namedParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference, type TrainConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { maxAbsDiff, trainInProcess } from './support/in-process-cluster';

const train: TrainConfig = { ...TINY_TRAIN, steps: 6 };

/** Contiguous owners: experts e·world/E on rank floor(e·world/E). */
const contiguous = (experts: number, world: number) => Array.from({ length: experts }, (_, e) => Math.floor((e * world) / experts));

async function expectParity(
  modelFields: object,
  world: number,
  step: { allToAll?: 'flat' | 'hierarchical'; nodeSize?: number; schedule?: string; chunks?: number; microBatches?: number } = {},
) {
  const model = parseModelConfig({ ...TINY_MODEL, layers: 2, ...modelFields });
  const reference = trainReference(model, train);
  const run = await trainInProcess({ model, train, world, owner: contiguous(model.routedExperts, world), schedule: step.schedule ?? 'naive', ...step });
  run.losses.forEach((loss, step) => {
    expect(Math.abs(loss - reference.losses[step]!) / Math.abs(reference.losses[step]!), `step ${step}`).toBeLessThan(1e-5);
  });
  for (const sums of run.checksums) expect(new Set(sums).size).toBe(1);
  const diff = maxAbsDiff(run.params, namedParams(reference.params));
  expect(diff.max, `worst parameter ${diff.name}`).toBeLessThan(1e-4);
  return run;
}

describe('node-limited routing on ranks grouped into 2 nodes equals the reference', () => {
  it.each([1, 2])('4 ranks (2 per node), 8 experts in 2 groups, M=%i', async (M) => {
    await expectParity({ routedExperts: 8, topK: 2, routerGroups: 2, routerGroupTopK: M }, 4);
  });

  it.each([1, 2])('8 ranks (4 per node), 16 experts in 2 groups, top-4, M=%i', async (M) => {
    await expectParity({ routedExperts: 16, topK: 4, routerGroups: 2, routerGroupTopK: M }, 8);
  });

  it.each([1, 2, 3])('8 ranks, 16 experts in 4 groups (2 per node), top-4, M=%i', async (M) => {
    await expectParity({ routedExperts: 16, topK: 4, routerGroups: 4, routerGroupTopK: M }, 8);
  });
});

describe('the hierarchical all-to-all trains as the reference does', () => {
  it.each([1, 2])('4 ranks in 2 nodes, node-limited M=%i, naive schedule', async (M) => {
    await expectParity({ routedExperts: 8, topK: 2, routerGroups: 2, routerGroupTopK: M }, 4, { allToAll: 'hierarchical', nodeSize: 2 });
  });

  it.each([1, 2, 3])('8 ranks in 2 nodes, 16 experts in 4 groups, top-4, node-limited M=%i, naive schedule', async (M) => {
    await expectParity({ routedExperts: 16, topK: 4, routerGroups: 4, routerGroupTopK: M }, 8, { allToAll: 'hierarchical', nodeSize: 4 });
  });

  it('4 ranks in 2 nodes, fb-overlap with 2 micro-batches (two layers between forward and backward at once)', async () => {
    await expectParity({ routedExperts: 8, topK: 2 }, 4, { allToAll: 'hierarchical', nodeSize: 2, schedule: 'fb-overlap', microBatches: 2 });
  });

  it('8 ranks in 2 nodes, 16 experts top-4, overlapped schedule with 2 chunks', async () => {
    await expectParity({ routedExperts: 16, topK: 4, routerGroups: 2, routerGroupTopK: 2 }, 8, { allToAll: 'hierarchical', nodeSize: 4, schedule: 'overlapped', chunks: 2 });
  });

  it('sends fewer inter-node bytes than the flat all-to-all on the same training', async () => {
    const fields = { routedExperts: 16, topK: 4 };
    const flat = await expectParity(fields, 8, { allToAll: 'flat', nodeSize: 4 });
    const hier = await expectParity(fields, 8, { allToAll: 'hierarchical', nodeSize: 4 });
    const inter = (run: typeof flat) => run.linkBytes.reduce((sum, b) => sum + b.inter, 0);
    expect(inter(hier)).toBeLessThan(inter(flat));
    expect(inter(flat)).toBeGreaterThan(0);
  });

  it('with M=1 (top-2, a group per node) a token that leaves its node crosses once each way where the flat one crosses twice', async () => {
    // One step: both runs route the same tokens. Every remote token has both its experts on the
    // other node: the flat all-to-alls carry 2 rows for it each, the hierarchical ones 1 (in all
    // four: dispatch, combine, and their backwards).
    const model = parseModelConfig({ ...TINY_MODEL, layers: 2, routedExperts: 8, topK: 2, routerGroups: 2, routerGroupTopK: 1 });
    const oneStep = { ...train, steps: 1 };
    const inter = async (allToAll: 'flat' | 'hierarchical') => {
      const run = await trainInProcess({ model, train: oneStep, world: 4, owner: contiguous(8, 4), schedule: 'naive', allToAll, nodeSize: 2 });
      return run.linkBytes.reduce((sum, b) => sum + b.inter, 0);
    };
    const [flat, hier] = [await inter('flat'), await inter('hierarchical')];
    expect(hier).toBeGreaterThan(0);
    expect(flat).toBe(2 * hier);
  });
});
