/**
 * Redundant experts in the sim backend, 4 in-process ranks: under skewed routing (every token's
 * top-2 on rank 0's two experts) the rows each copy receives set each rank's modeled expert time,
 * so copies of the hot experts on other ranks take work off rank 0. Modeled times only (the cost
 * model's, not a clock), so nothing here depends on the machine's speed.
 */
import { createInMemoryTransports } from '@moe/comm';
import { initParams, parseModelConfig, replicaGradientLength, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { balancedPlacement, replicatedExperts, singleCopy, type ExpertPlacement } from '@moe/placement';
import { buildSchedule } from '@moe/schedule';
import { describe, expect, it } from 'vitest';
import { SimBackend } from '../src/backends/sim/index';
import { StepExecutor } from '../src/schedule/executor';
import { shardOf } from './support/shard';

const WORLD = 4;
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2 });
const MODELED = { hiddenSize: 64, expertFfnSize: 128, routedExperts: 8, attention: { heads: 1, qLoraRank: 0, kvLoraRank: 16, qkNopeHeadDim: 16, qkRopeHeadDim: 0, vHeadDim: 16 }, seqLen: 64, vocabSize: 256 };

/** One naive step of skewed routing on `placement`: each rank's rows received, modeled expert ms, and the outcomes. */
async function skewedStep(placement: ExpertPlacement) {
  const init = initParams(model);
  const options = { profile: 'H800', dilation: 1, model: MODELED, nodeSize: 2, routing: 'skewed' };
  const backends = Array.from({ length: WORLD }, () => new SimBackend());
  await Promise.all(
    backends.map((b, rank) => b.load(shardOf({ init, model, optimizer: TINY_TRAIN.optimizer, owner: [], placement, rank, world: WORLD, seqLen: 16, backendOptions: options }))),
  );
  const transports = createInMemoryTransports(WORLD);
  const replicas = { placement, gradientValues: replicaGradientLength(model, replicatedExperts(placement, 8)), layers: model.layers };
  const owner = [0, 0, 1, 1, 2, 2, 3, 3];
  const executors = backends.map((b, rank) => new StepExecutor(b, transports[rank]!, owner, undefined, undefined, replicas));
  const ops = buildSchedule({ kind: 'naive', layers: model.layers, chunks: 1 });
  const batch = { step: 0, inputs: new Int32Array(64), targets: new Int32Array(64), globalTokens: 64 * WORLD, globalSequences: 4 * WORLD };
  const outcomes = await Promise.all(executors.map((e, rank) => e.run(ops, { ...batch, inputs: Int32Array.from({ length: 64 }, (_, i) => (i + rank) % model.vocabSize) }, { dispatchCodec: 'f32', combineCodec: 'f32', timeoutMs: 30_000, nodeSize: 2 })));
  const expertMs = backends.map((b) => b.stepRecords().filter((r) => r.kind === 'experts').reduce((s, r) => s + r.modeledMs, 0));
  await Promise.all([...backends.map((b) => b.close()), ...transports.map((t) => t.close())]);
  return { outcomes, expertMs };
}

describe('redundant experts in the sim backend', () => {
  it('copies of the hot experts spread the rows, and the modeled expert time with them', async () => {
    const contiguous = singleCopy([0, 0, 1, 1, 2, 2, 3, 3]);
    const { placement } = balancedPlacement([[64 * WORLD, 64 * WORLD, 0, 0, 0, 0, 0, 0]], { gpus: WORLD, nodeSize: 2, groups: 1 }, 4);
    expect(replicatedExperts(placement, 8)).toEqual([0, 1]);
    const before = await skewedStep(contiguous);
    const after = await skewedStep(placement);
    // Every token went to experts 0 and 1: all on rank 0 before; spread over four ranks after.
    expect(before.expertMs[0]).toBeGreaterThan(0);
    expect(before.expertMs.slice(1).every((ms) => ms < before.expertMs[0]! / 4)).toBe(true);
    expect(Math.max(...after.expertMs)).toBeLessThan(before.expertMs[0]! / 2);
    // Tokens per physical expert, summed over ranks: the copies of 0 and 1 share all of them.
    const P = placement.physicalToLogical.length;
    const perCopy = new Array<number>(P).fill(0);
    for (const o of after.outcomes) o.physicalCounts!.subarray(0, P).forEach((c, q) => (perCopy[q]! += c));
    expect(perCopy.reduce((a, b) => a + b)).toBe(64 * WORLD * 2);
    for (let q = 0; q < P; q++) expect(perCopy[q]! > 0).toBe(placement.physicalToLogical[q]! < 2);
    // The copies' (unchanged) weights agree on every holder.
    const sums = new Map<string, Set<string>>();
    for (const o of after.outcomes) for (const r of o.replicaChecksums ?? []) sums.set(`${r.layer}/${r.expert}`, (sums.get(`${r.layer}/${r.expert}`) ?? new Set()).add(r.checksum));
    expect(sums.size).toBe(2 * model.layers);
    for (const set of sums.values()) expect(set.size).toBe(1);
  });
});
