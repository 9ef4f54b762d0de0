/**
 * Real worker processes over gRPC with DeepSeek's communication design on: node-limited routing,
 * the hierarchical all-to-all over 2 modeled nodes, and EPLB rebalancing every few steps (experts
 * and their AdamW state move between workers). Training still equals the reference.
 */
import { parseModelConfig, TINY_MODEL, TINY_TRAIN, type TrainConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
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
