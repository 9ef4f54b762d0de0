/**
 * The parity check of a run: the comparison itself is `@moe/model`'s (pure: checkParity,
 * compareParams, ...); here the model is assembled from the workers' FetchParams replies.
 */
import { namedTensorsFromMsg, type FetchParamsResponseOut } from '@moe/comm';
import { assembleParams as assembleReturned, type ModelConfig, type ModelParams } from '@moe/model';

/**
 * The full model from FetchParams replies: dense parameters from rank 0, each expert from its
 * owner, every tensor checked against the model's shapes.
 *
 * @param replies [W] FetchParams replies, index = rank
 * @param owner [E] owner rank of each global expert
 * @throws ParityError when a parameter is missing, duplicated, misplaced or of the wrong shape
 */
export function assembleParams(model: ModelConfig, replies: readonly FetchParamsResponseOut[], owner: readonly number[]): ModelParams {
  const ranks = replies.map((reply, rank) => ({
    dense: rank === 0 ? namedTensorsFromMsg(reply.denseParams, 'FetchParams[rank 0].dense_params') : new Map(),
    experts: reply.experts.map((shard, i) => {
      const where = `FetchParams on rank ${rank}, experts[${i}] (layer ${shard.layer}, expert ${shard.expert})`;
      return { layer: shard.layer, expert: shard.expert, params: namedTensorsFromMsg(shard.params, where), where };
    }),
  }));
  return assembleReturned(model, ranks, owner, 'FetchParams');
}
