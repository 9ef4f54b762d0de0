import { denseParams, expertParams, type ModelConfig, type ModelParams, type OptimizerConfig, type Tensor } from '@moe/model';
import { holdersOf, primaryOwner, replicatedExperts, type ExpertPlacement } from '@moe/placement';
import type { Shard } from '../../src/backend';

const clone = (t: Tensor): Tensor => ({ shape: [...t.shape], data: new Float32Array(t.data) });

/**
 * Rank `rank`'s shard of `init`, as LoadShard would carry it: every dense parameter and the
 * experts `owner` gives this rank, each a copy (ranks in one process must not share arrays).
 * With `placement` (redundant experts) the owner map is its first copies' and the rank holds
 * every expert it has a copy of.
 */
export function shardOf(options: {
  init: ModelParams;
  model: ModelConfig;
  optimizer: OptimizerConfig;
  owner: number[];
  placement?: ExpertPlacement;
  rank: number;
  world: number;
  seqLen: number;
  runId?: string;
  backendOptions?: Record<string, unknown>;
}): Shard {
  const { init, rank, placement } = options;
  const E = options.model.routedExperts;
  const owner = placement ? primaryOwner(placement, E) : options.owner;
  const holders = placement ? holdersOf(placement, E) : owner.map((r) => [r]);
  return {
    runId: options.runId ?? 'test',
    rank,
    worldSize: options.world,
    peers: [],
    model: options.model,
    optimizer: options.optimizer,
    expertOwner: owner,
    dense: new Map(denseParams(init).map((p) => [p.name, clone(p.tensor)])),
    experts: init.experts.map(
      (layer) =>
        new Map(
          layer.flatMap((e, id) => (holders[id]!.includes(rank) ? [[id, new Map(expertParams(e).map((p) => [p.name, clone(p.tensor)]))] as const] : [])),
        ),
    ),
    seqLen: options.seqLen,
    backendOptions: options.backendOptions ?? {},
    ...(placement ? { replicaPlacement: placement, replicatedExperts: replicatedExperts(placement, E) } : {}),
  };
}
