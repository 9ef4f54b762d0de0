/**
 * Real worker processes over gRPC with DeepSeek's communication design on: node-limited routing,
 * the hierarchical all-to-all over 2 modeled nodes, and EPLB rebalancing every few steps (experts
 * and their AdamW state move between workers), redundant experts (copies of hot experts on
 * several workers, re-planned at every rebalance). Training still equals the reference.
 */
import { parseModelConfig, TINY_MODEL, TINY_TRAIN, type TrainConfig } from '@moe/model';
import { holdersOf, replicatedExperts } from '@moe/placement';
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError } from '../src/errors';
import { runTraining } from '../src/run/train-run';

const TIMEOUT = 300_000;

describe('node-limited routing, hierarchical all-to-all and rebalancing, on real workers', () => {
  it(
    '4 workers in 2 nodes, M=1, rebalancing every 2 steps: experts move and parity holds',
    async () => {
      const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2, routerGroups: 2, routerGroupTopK: 1 });
      const train: TrainConfig = { ...TINY_TRAIN, steps: 8 };
      const result = await runTraining({
        model,
        train,
        workers: 4,
        step: { allToAll: 'hierarchical', nodeSize: 2 },
        rebalance: { every: 2 },
        checkReference: true,
        rpcTimeoutMs: 120_000,
        stepTimeoutMs: 120_000,
      });
      expect(result.rebalances.length).toBeGreaterThan(0);
      expect(result.finalOwner).not.toEqual(result.owner);
      for (const event of result.rebalances) expect(event.imbalanceAfter).toBeLessThan(event.imbalanceBefore);
      // Groups stay on one node through every rebalance (node-limited routing keeps meaning nodes).
      for (const owner of [result.owner, ...result.rebalances.map((e) => e.to)]) {
        for (const group of [[0, 1, 2, 3], [4, 5, 6, 7]]) expect(new Set(group.map((e) => Math.floor(owner[e]! / 2))).size).toBe(1);
      }
      expect(result.parity!.ok, JSON.stringify(result.parity)).toBe(true);
      expect(result.parity!.params.maxAbsolute).toBeLessThanOrEqual(1e-4);
    },
    TIMEOUT,
  );
});

describe('redundant experts on real workers', () => {
  const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2, routerGroups: 2, routerGroupTopK: 2 });
  // Expert 0 hot, expert 4 warm: EPLB gives them copies on two ranks of their node.
  const expertLoads = [[80, 5, 5, 5, 40, 5, 5, 5]];

  it(
    '4 workers in 2 nodes, 4 redundant experts, hierarchical, rebalancing every 2 steps: copies move, stay identical, parity holds',
    async () => {
      const train: TrainConfig = { ...TINY_TRAIN, steps: 8 };
      const result = await runTraining({
        model,
        train,
        workers: 4,
        step: { allToAll: 'hierarchical', nodeSize: 2 },
        redundantExperts: 4,
        expertLoads,
        rebalance: { every: 2 },
        checkReference: true,
        rpcTimeoutMs: 120_000,
        stepTimeoutMs: 120_000,
      });
      expect(result.placement.physicalToLogical).toHaveLength(12);
      expect(holdersOf(result.placement, 8)[0]!.length).toBeGreaterThan(1);
      expect(result.rebalances.length).toBeGreaterThan(0);
      for (const e of result.rebalances) expect(replicatedExperts(e.toPlacement, 8).length).toBeGreaterThan(0);
      // Every step measured tokens per physical expert, and the scheduler checked the copies (the run would have stopped).
      for (const s of result.steps) expect(s.physicalCounts).toHaveLength(2 * 12);
      // Not bit-exact: the hierarchical combine sums a token's expert outputs within its node
      // before the cross-node hop, an order of f32 additions the reference does not share.
      expect(result.parity!.ok, JSON.stringify(result.parity)).toBe(true);
      expect(result.parity!.params.maxAbsolute).toBeLessThanOrEqual(1e-4);
    },
    TIMEOUT,
  );

  it(
    'a worker that updates its copies with its own gradient (planted) is stopped at the first step, naming expert, layer and ranks',
    async () => {
      process.env['MOE_FAULT'] = 'unsummed-replica-grads';
      try {
        const run = runTraining({ model, train: { ...TINY_TRAIN, steps: 3 }, workers: 4, step: { nodeSize: 2 }, redundantExperts: 4, expertLoads, stepTimeoutMs: 60_000 });
        const error = await run.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ChecksumMismatchError);
        const mismatch = error as ChecksumMismatchError;
        expect(mismatch.step).toBe(0);
        expect(mismatch.expert).toMatchObject({ layer: 0 });
        expect(mismatch.message).toMatch(/step 0: the copies of expert \d+ of layer 0 diverged \(rank \d+ has [0-9a-f]{16}, rank \d+ has [0-9a-f]{16}.*\); ranks? [\d, ]+ disagrees? with rank \d+/);
      } finally {
        delete process.env['MOE_FAULT'];
      }
    },
    TIMEOUT,
  );
});
