/**
 * Acceptance: real worker processes (apps/worker, cpu backend) over real gRPC, trained by the
 * scheduler, equal the single-process reference trainer on the same global batches: every
 * step's loss within 1e-5 relative, the final parameters within 1e-4 absolute.
 */
import { parseModelConfig, TINY_MODEL, TINY_TRAIN, type ModelConfig, type TrainConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { expertsPerRank, type Placement } from '@moe/placement';
import type { StepSettings } from '@moe/schedule';
import { runTraining, type TrainingResult } from '../src/run/train-run';

const train: TrainConfig = { ...TINY_TRAIN, steps: 20 };
const TIMEOUT = 300_000;

async function trainAndCompare(options: {
  model: ModelConfig;
  workers: number;
  placement?: Placement;
  step?: Partial<StepSettings>;
}): Promise<TrainingResult> {
  const result = await runTraining({
    model: options.model,
    train,
    workers: options.workers,
    placement: options.placement,
    step: options.step,
    checkReference: true,
    rpcTimeoutMs: 120_000,
    stepTimeoutMs: 120_000,
  });
  const reference = result.reference!;
  expect(result.losses).toHaveLength(train.steps);
  result.losses.forEach((loss, step) => {
    const relative = Math.abs(loss - reference.losses[step]!) / Math.abs(reference.losses[step]!);
    expect(relative, `step ${step}: run ${loss}, reference ${reference.losses[step]}`).toBeLessThanOrEqual(1e-5);
  });
  const parity = result.parity!;
  expect(parity.params.maxAbsolute, `worst parameter ${parity.params.name}[${parity.params.index}]`).toBeLessThanOrEqual(1e-4);
  expect(parity.ok).toBe(true);
  return result;
}

describe('distributed training equals the reference trainer', () => {
  it(
    '4 workers, 8 experts top-2, 3 layers, 20 steps',
    async () => {
      const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 3 });
      const result = await trainAndCompare({ model, workers: 4 });
      expect(result.owner).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
      // Tokens are routed: every step's counts add up to tokens * topK per layer.
      const tokens = train.batchSequences * train.seqLen;
      for (const s of result.steps) expect(s.expertCounts.reduce((a, b) => a + b, 0)).toBe(tokens * model.topK * model.layers);
      // Loss goes down towards the data's entropy.
      expect(result.losses[train.steps - 1]!).toBeLessThan(result.losses[0]!);
    },
    TIMEOUT,
  );

  it(
    '3 workers with uneven experts (3,3,2), top-3',
    async () => {
      const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 3, layers: 3 });
      const result = await trainAndCompare({ model, workers: 3 });
      expect(expertsPerRank(result.owner, 3)).toEqual([3, 3, 2]);
    },
    TIMEOUT,
  );

  it(
    'forced skew: every expert on one worker, so the others receive no tokens and must not hang',
    async () => {
      const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 3 });
      const result = await trainAndCompare({ model, workers: 4, placement: [2, 2, 2, 2, 2, 2, 2, 2] });
      expect(expertsPerRank(result.owner, 4)).toEqual([0, 0, 8, 0]);
    },
    TIMEOUT,
  );

  it(
    'overlapped schedule, 2 chunks, 4 workers',
    async () => {
      const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 3 });
      await trainAndCompare({ model, workers: 4, step: { schedule: 'overlapped', chunks: 2 } });
    },
    TIMEOUT,
  );
});
