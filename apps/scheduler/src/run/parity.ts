/**
 * The parity check of a run: the comparison itself is `@moe/model`'s (pure: checkParity,
 * compareParams, ...); here the model is assembled from the workers' FetchParams replies.
 */
import { namedTensorsFromMsg, type FetchParamsResponseOut } from '@moe/comm';
import { assembleParams as assembleReturned, type ModelConfig, type ModelParams } from '@moe/model';
import { asPlacement, holdersOf, primaryOwner, type ExpertPlacement } from '@moe/placement';

/**
 * The full model from FetchParams replies: dense parameters from rank 0, each expert from its
 * owner (with redundant experts: its first copy's rank; the other holders' copies, identical by
 * the per-step replica checksums, are left out), every tensor checked against the model's shapes.
 *
 * @param replies [W] FetchParams replies, index = rank
 * @param owner [E] owner rank of each global expert, or a placement with redundant experts
 * @throws ParityError when a parameter is missing, duplicated, misplaced or of the wrong shape
 */
export function assembleParams(model: ModelConfig, replies: readonly FetchParamsResponseOut[], owner: readonly number[] | ExpertPlacement): ModelParams {
  const placement = asPlacement(owner);
  const first = primaryOwner(placement, model.routedExperts);
  const holders = holdersOf(placement, model.routedExperts);
  const ranks = replies.map((reply, rank) => ({
    dense: rank === 0 ? namedTensorsFromMsg(reply.denseParams, 'FetchParams[rank 0].dense_params') : new Map(),
    experts: reply.experts.flatMap((shard, i) => {
      const where = `FetchParams on rank ${rank}, experts[${i}] (layer ${shard.layer}, expert ${shard.expert})`;
      // Another holder's copy: one copy is taken, the first one's.
      if (first[shard.expert] !== rank && holders[shard.expert]?.includes(rank)) return [];
      return [{ layer: shard.layer, expert: shard.expert, params: namedTensorsFromMsg(shard.params, where), where }];
    }),
  }));
  return assembleReturned(model, ranks, first, 'FetchParams');
}
