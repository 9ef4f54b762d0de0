/**
 * The requests of a run: each rank's LoadShard (its shard of the model) and each step's RunStep
 * (its slice of the batch). The scheduler never touches token payloads in flight: it hands each
 * rank its slice, and the workers exchange tokens peer to peer.
 *
 * Shapes: W = world size, E = routed experts, L = tokens per sequence.
 */
import {
  i32TensorMsg,
  modelConfigMsg,
  namedTensorMsg,
  optimizerConfigMsg,
  type ExpertShard,
  type LoadShardRequest,
  type NamedTensor,
  type RunStepRequest,
  type StepOptions,
} from '@moe/comm';
import { denseParams, expertParams, type Batch, type ModelConfig, type ModelParams, type OptimizerConfig } from '@moe/model';
import { asPlacement, hasRedundantExperts, holdersOf, primaryOwner, sliceSequences, type ExpertPlacement, type SequenceRange } from '@moe/placement';

export interface ShardPlan {
  runId: string;
  model: ModelConfig;
  optimizer: OptimizerConfig;
  /** L: tokens per sequence. */
  seqLen: number;
  /** [E] owner rank of each global expert, or a placement with redundant experts (physical copies and their ranks). */
  owner: readonly number[] | ExpertPlacement;
  /** [W] host:port of every rank's Worker/Peer services. */
  peers: readonly string[];
  /** Backend-specific settings, sent as LoadShard.backend_options_json when given. */
  backendOptions?: Record<string, unknown>;
}

/**
 * Every rank's LoadShard: all dense parameters (replicated; one encoding shared by all
 * requests) and, for every layer, exactly the experts that rank holds a copy of. With redundant
 * experts the physical placement travels too, and expert_owner names each expert's first copy.
 *
 * @returns [W] requests, index = rank
 */
export function loadShardRequests(plan: ShardPlan, params: ModelParams): LoadShardRequest[] {
  const E = plan.model.routedExperts;
  const placement = asPlacement(plan.owner);
  const holders = holdersOf(placement, E);
  const replicaFields = hasRedundantExperts(placement, E) ? { physicalToLogical: [...placement.physicalToLogical], physicalOwner: [...placement.physicalOwner] } : {};
  const dense: NamedTensor[] = denseParams(params).map((p) => namedTensorMsg(p.name, p.tensor));
  const experts: ExpertShard[][] = plan.peers.map(() => []);
  params.experts.forEach((layer, l) =>
    layer.forEach((expert, e) => {
      const shard = { layer: l, expert: e, params: expertParams(expert).map((p) => namedTensorMsg(p.name, p.tensor)) };
      for (const rank of holders[e]!) experts[rank]!.push(shard);
    }),
  );
  return plan.peers.map((_, rank) => ({
    runId: plan.runId,
    rank,
    worldSize: plan.peers.length,
    peerAddresses: [...plan.peers],
    model: modelConfigMsg(plan.model),
    optimizer: optimizerConfigMsg(plan.optimizer),
    expertOwner: primaryOwner(placement, E),
    ...replicaFields,
    denseParams: dense,
    experts: experts[rank]!,
    seqLen: plan.seqLen,
    backendOptionsJson: plan.backendOptions ? JSON.stringify(plan.backendOptions) : '',
  }));
}

/**
 * Every rank's RunStep for one step: rank r gets the sequences of `ranges[r]` (inputs and
 * targets, I32 [count * L]); the divisors are the global batch's.
 *
 * @returns [W] requests, index = rank
 */
export function runStepRequests(
  runId: string,
  step: number,
  batch: Batch,
  ranges: readonly SequenceRange[],
  options: StepOptions,
): RunStepRequest[] {
  return ranges.map((range) => ({
    runId,
    step,
    inputs: i32TensorMsg(sliceSequences(batch.inputs, batch.seqLen, range)),
    targets: i32TensorMsg(sliceSequences(batch.targets, batch.seqLen, range)),
    globalTokens: batch.sequences * batch.seqLen,
    globalSequences: batch.sequences,
    options,
  }));
}
