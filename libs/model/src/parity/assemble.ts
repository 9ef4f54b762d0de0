/**
 * The full model from every rank's parameters: dense ones from rank 0 (they are replicated),
 * each routed expert from its owner. Every tensor is checked against the shapes
 * `initParams(model)` makes, so a missing, duplicated, misplaced or misshapen parameter is
 * named instead of silently compared.
 */
import type { ModelConfig } from '../config';
import { EXPERT_WEIGHTS } from '../param-names';
import { denseParams, initParams, type ModelParams } from '../params';
import type { Tensor } from '../tensor';
import { ParityError } from './parity-error';

/** One routed expert's tensors as a rank returned them. */
export interface ReturnedExpert {
  layer: number;
  expert: number;
  /** Tensors by weight name ("w1", "w3", "w2"). */
  params: ReadonlyMap<string, Tensor>;
  /** Where it came from, for errors ("FetchParams on rank 1, experts[0] (layer 0, expert 3)"). */
  where: string;
}

/** One rank's parameters: its dense replica by name, and the experts it returned. */
export interface ReturnedParams {
  dense: Map<string, Tensor>;
  experts: readonly ReturnedExpert[];
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * @param ranks [W] each rank's parameters, index = rank (only rank 0's dense ones are read)
 * @param owner [E] owner rank of each global expert
 * @param source what the ranks answered, for errors ("FetchParams")
 * @throws ParityError when a parameter is missing, duplicated, misplaced or of the wrong shape
 */
export function assembleParams(model: ModelConfig, ranks: readonly ReturnedParams[], owner: readonly number[], source: string): ModelParams {
  const params = initParams(model);
  if (ranks.length === 0) throw new ParityError(`no ${source} replies to assemble parameters from`);

  const dense = ranks[0]!.dense;
  const slots = denseParams(params);
  for (const slot of slots) {
    const got = dense.get(slot.name);
    if (!got) throw new ParityError(`${source} on rank 0 did not return dense parameter ${slot.name}`);
    if (!sameShape(got.shape, slot.tensor.shape)) {
      throw new ParityError(`${source} on rank 0: ${slot.name} has shape ${shapeText(got.shape)}, expected ${shapeText(slot.tensor.shape)}`);
    }
    slot.tensor.data.set(got.data);
    dense.delete(slot.name);
  }
  if (dense.size > 0) throw new ParityError(`${source} on rank 0 returned unknown dense parameters: ${[...dense.keys()].join(', ')}`);
  // denseParams() must hand out the model's own tensors for the copy above to land in `params`.
  if (denseParams(params).some((p, i) => p.tensor.data !== slots[i]!.tensor.data)) {
    throw new ParityError('denseParams() returned copies, not the model tensors; cannot assemble the fetched parameters into a model');
  }

  const seen = new Set<string>();
  ranks.forEach((rank, r) => {
    for (const shard of rank.experts) {
      const where = shard.where;
      if (shard.layer >= model.layers || shard.expert >= model.routedExperts) {
        throw new ParityError(`${where}: outside the model's ${model.layers} layers x ${model.routedExperts} experts`);
      }
      if (owner[shard.expert] !== r) throw new ParityError(`${where}: expert ${shard.expert} belongs to rank ${owner[shard.expert]}`);
      const key = `${shard.layer}/${shard.expert}`;
      if (seen.has(key)) throw new ParityError(`${where}: returned twice`);
      seen.add(key);
      const init = params.experts[shard.layer]![shard.expert]!;
      for (const w of EXPERT_WEIGHTS) {
        const got = shard.params.get(w);
        if (!got) throw new ParityError(`${where}: ${w} is missing`);
        if (!sameShape(got.shape, init[w].shape)) {
          throw new ParityError(`${where}: ${w} has shape ${shapeText(got.shape)}, expected ${shapeText(init[w].shape)}`);
        }
      }
      params.experts[shard.layer]![shard.expert] = { w1: shard.params.get('w1')!, w3: shard.params.get('w3')!, w2: shard.params.get('w2')! };
    }
  });
  for (let l = 0; l < model.layers; l++) {
    for (let e = 0; e < model.routedExperts; e++) {
      if (!seen.has(`${l}/${e}`)) throw new ParityError(`expert ${e} of layer ${l} was not returned by its owner, rank ${owner[e]}`);
    }
  }
  return params;
}
