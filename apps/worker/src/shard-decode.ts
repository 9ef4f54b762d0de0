import {
  int32FromMsg,
  modelConfigFromMsg,
  namedTensorsFromMsg,
  type LoadShardRequestOut,
  type OptimizerStateMsgOut,
  type RunStepRequestOut,
} from '@moe/comm';
import { denseShapes, expertShapes, isRouterBias, parseExpertParamName, parseModelConfig, type ModelConfig, type Tensor } from '@moe/model';
import { BatchSplitError, checkPlacement, holdersOf, PlacementError, primaryOwner, replicatedExperts, type ExpertPlacement } from '@moe/placement';
import type { MicroBatch, NamedOptimizerState, Shard, StepBatch } from './backend';
import { microBatchesOf } from './schedule/micro-batches';
import { ScheduleError, stepSettingsFromWire, type ScheduleSpec, type StepSettings } from '@moe/schedule';
import type { ExecuteSettings } from './schedule/executor';
import { InvalidRequestError } from './errors';

/** LoadShard as a `Shard`, checked: config valid, experts exactly the ones this rank owns. */
export function decodeShard(req: LoadShardRequestOut): Shard {
  if (!req.runId) throw new InvalidRequestError('LoadShard: run_id is empty');
  if (!req.model) throw new InvalidRequestError('LoadShard: model config is missing');
  const model = parseModelConfig(modelConfigFromMsg(req.model), 'LoadShard.model');
  if (req.worldSize < 1 || req.rank >= req.worldSize) {
    throw new InvalidRequestError(`LoadShard: rank ${req.rank} is outside world_size ${req.worldSize}`);
  }
  if (req.peerAddresses.length !== req.worldSize) {
    throw new InvalidRequestError(`LoadShard: ${req.peerAddresses.length} peer addresses for world_size ${req.worldSize}`);
  }
  if (req.expertOwner.length !== model.routedExperts) {
    throw new InvalidRequestError(`LoadShard: expert_owner has ${req.expertOwner.length} entries for ${model.routedExperts} routed experts`);
  }
  const badOwner = req.expertOwner.findIndex((r) => r >= req.worldSize);
  if (badOwner >= 0) {
    throw new InvalidRequestError(`LoadShard: expert_owner[${badOwner}]=${req.expertOwner[badOwner]} is not a rank below ${req.worldSize}`);
  }
  const replicaPlacement = decodeReplicaPlacement(req, model.routedExperts);
  // [E] the ranks holding each expert: its owner, or every rank with a copy.
  const holders = replicaPlacement ? holdersOf(replicaPlacement, model.routedExperts) : req.expertOwner.map((r) => [r]);
  if (!Number.isInteger(req.seqLen) || req.seqLen < 1) throw new InvalidRequestError(`LoadShard: seq_len=${req.seqLen} must be positive`);
  if (!req.optimizer) throw new InvalidRequestError('LoadShard: optimizer config is missing');

  const experts = Array.from({ length: model.layers }, () => new Map<number, Map<string, Tensor>>());
  for (const [i, shard] of req.experts.entries()) {
    if (shard.layer >= model.layers) throw new InvalidRequestError(`LoadShard: experts[${i}] has layer ${shard.layer} of ${model.layers}`);
    if (!holders[shard.expert]?.includes(req.rank)) {
      throw new InvalidRequestError(
        `LoadShard: experts[${i}] is expert ${shard.expert}, held by rank${holders[shard.expert]!.length > 1 ? 's' : ''} ${holders[shard.expert]!.join(', ')}, not by this rank ${req.rank}`,
      );
    }
    if (experts[shard.layer]!.has(shard.expert)) {
      throw new InvalidRequestError(`LoadShard: expert ${shard.expert} of layer ${shard.layer} arrived twice`);
    }
    experts[shard.layer]!.set(shard.expert, namedTensorsFromMsg(shard.params, `LoadShard.experts[${i}]`));
  }
  const owned = holders.filter((ranks) => ranks.includes(req.rank)).length;
  experts.forEach((layer, l) => {
    if (layer.size !== owned) {
      throw new InvalidRequestError(`LoadShard: layer ${l} carries ${layer.size} experts but this rank owns ${owned}`);
    }
  });

  let backendOptions: Record<string, unknown> = {};
  if (req.backendOptionsJson) {
    try {
      backendOptions = JSON.parse(req.backendOptionsJson) as Record<string, unknown>;
    } catch (error) {
      throw new InvalidRequestError(`LoadShard: backend_options_json is not JSON (${(error as Error).message})`);
    }
  }
  const dense = namedTensorsFromMsg(req.denseParams, 'LoadShard.dense_params');
  checkShapes(dense, experts, model);
  const optimizerState = req.optimizerState ? decodeOptimizerState(req.optimizerState, dense, experts) : undefined;
  return {
    runId: req.runId,
    rank: req.rank,
    worldSize: req.worldSize,
    peers: [...req.peerAddresses],
    model,
    optimizer: { ...req.optimizer },
    expertOwner: [...req.expertOwner],
    dense,
    experts,
    seqLen: req.seqLen,
    backendOptions,
    optimizerState,
    ...(replicaPlacement ? { replicaPlacement, replicatedExperts: replicatedExperts(replicaPlacement, model.routedExperts) } : {}),
  };
}

/**
 * LoadShard.physical_to_logical / physical_owner, checked: undefined when empty (one copy of each
 * expert); else a whole placement whose first copy of each expert sits where expert_owner says.
 */
function decodeReplicaPlacement(req: LoadShardRequestOut, experts: number): ExpertPlacement | undefined {
  const physicalToLogical = req.physicalToLogical ?? [];
  const physicalOwner = req.physicalOwner ?? [];
  if (physicalToLogical.length === 0 && physicalOwner.length === 0) return undefined;
  const placement = { physicalToLogical: [...physicalToLogical], physicalOwner: [...physicalOwner] };
  try {
    checkPlacement(placement, experts, req.worldSize);
  } catch (error) {
    if (error instanceof PlacementError) throw new InvalidRequestError(`LoadShard.physical_to_logical/physical_owner: ${error.message}`);
    throw error;
  }
  const first = primaryOwner(placement, experts);
  const wrong = first.findIndex((r, e) => r !== req.expertOwner[e]);
  if (wrong >= 0) {
    throw new InvalidRequestError(`LoadShard: expert_owner[${wrong}]=${req.expertOwner[wrong]} but the first physical copy of expert ${wrong} is on rank ${first[wrong]}; expert_owner must name each expert's first copy`);
  }
  return placement;
}

/** "[16, 32]" */
const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** Every dense parameter present with its model shape, none unknown; every expert w1/w3/w2 shaped [H,F]/[H,F]/[F,H]. */
function checkShapes(dense: Map<string, Tensor>, experts: Map<number, Map<string, Tensor>>[], model: ModelConfig): void {
  const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  const expected = denseShapes(model);
  for (const [name, shape] of expected) {
    const t = dense.get(name);
    if (!t) throw new InvalidRequestError(`LoadShard.dense_params: ${name} is missing (the model has ${expected.size} dense parameters)`);
    if (!same(t.shape, shape)) throw new InvalidRequestError(`LoadShard.dense_params: ${name} has shape ${shapeText(t.shape)}, the model needs ${shapeText(shape)}`);
  }
  const unknown = [...dense.keys()].filter((n) => !expected.has(n));
  if (unknown.length) throw new InvalidRequestError(`LoadShard.dense_params: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a parameter of the model`);
  const wanted: Record<string, number[]> = expertShapes(model);
  experts.forEach((layer, l) =>
    layer.forEach((named, e) => {
      for (const [w, shape] of Object.entries(wanted)) {
        const t = named.get(w);
        if (!t) throw new InvalidRequestError(`LoadShard: expert ${e} of layer ${l} has no ${w}`);
        if (!same(t.shape, shape)) throw new InvalidRequestError(`LoadShard: expert ${e} of layer ${l}: ${w} has shape ${shapeText(t.shape)}, the model needs ${shapeText(shape)}`);
      }
      const extra = [...named.keys()].filter((n) => !(n in wanted));
      if (extra.length) throw new InvalidRequestError(`LoadShard: expert ${e} of layer ${l} carries unknown tensors ${extra.join(', ')} (expected w1, w3, w2)`);
    }),
  );
}

/**
 * LoadShard.optimizer_state, checked: m and v name the same parameters, each one this shard
 * holds (dense by name, experts as `expertParamName` names them), with its number of values.
 */
function decodeOptimizerState(
  msg: OptimizerStateMsgOut,
  dense: Map<string, Tensor>,
  experts: Map<number, Map<string, Tensor>>[],
): NamedOptimizerState {
  const m = namedTensorsFromMsg(msg.m, 'LoadShard.optimizer_state.m');
  const v = namedTensorsFromMsg(msg.v, 'LoadShard.optimizer_state.v');
  if (msg.step === 0 && (m.size > 0 || v.size > 0)) {
    throw new InvalidRequestError(`LoadShard.optimizer_state: step is 0 but it carries ${m.size} first moments`);
  }
  const paramOf = (name: string): Tensor | undefined => {
    const e = parseExpertParamName(name);
    if (e) return experts[e.layer]?.get(e.expert)?.get(e.weight);
    return isRouterBias(name) ? undefined : dense.get(name);
  };
  for (const [what, map, other] of [
    ['m', m, v],
    ['v', v, m],
  ] as const) {
    for (const [name, t] of map) {
      const p = paramOf(name);
      if (!p) throw new InvalidRequestError(`LoadShard.optimizer_state.${what}: ${name} is not a trained parameter of this shard`);
      if (p.data.length !== t.data.length) {
        throw new InvalidRequestError(`LoadShard.optimizer_state.${what}: ${name} has ${t.data.length} values, the parameter ${p.data.length}`);
      }
      if (!other.has(name)) throw new InvalidRequestError(`LoadShard.optimizer_state: ${name} has ${what} but no ${what === 'm' ? 'v' : 'm'}`);
    }
  }
  if (msg.step > 0) {
    const trained = [
      ...[...dense.keys()].filter((name) => !name.endsWith('router_bias')),
      ...experts.flatMap((layer, l) => [...layer].flatMap(([id, ws]) => [...ws.keys()].map((w) => `layers.${l}.experts.${id}.${w}`))),
    ];
    const missing = trained.filter((name) => !m.has(name));
    if (missing.length > 0) {
      throw new InvalidRequestError(
        `LoadShard.optimizer_state: step ${msg.step} but no moments for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''} (every trained parameter of the shard needs m and v)`,
      );
    }
  }
  return { t: msg.step, m, v };
}

/** RunStep as a batch, a schedule and settings, checked against the loaded shard. */
export function decodeStep(
  req: RunStepRequestOut,
  shard: Shard,
  timeoutMs: number,
  maxMicroBatches = 1,
): { batch: StepBatch; microBatches: MicroBatch[]; schedule: ScheduleSpec; settings: ExecuteSettings } {
  const inputs = int32FromMsg(req.inputs, 'RunStep.inputs');
  const targets = int32FromMsg(req.targets, 'RunStep.targets');
  if (inputs.length !== targets.length) {
    throw new InvalidRequestError(`RunStep: ${inputs.length} inputs but ${targets.length} targets`);
  }
  if (inputs.length % shard.seqLen !== 0) {
    throw new InvalidRequestError(`RunStep: ${inputs.length} tokens is not a whole number of sequences of ${shard.seqLen}`);
  }
  const vocab = shard.model.vocabSize;
  for (const [what, list] of [
    ['inputs', inputs],
    ['targets', targets],
  ] as const) {
    const bad = list.findIndex((t) => t < 0 || t >= vocab);
    if (bad >= 0) throw new InvalidRequestError(`RunStep.${what}[${bad}]=${list[bad]} is outside the vocabulary 0..${vocab - 1}`);
  }
  if (req.globalTokens < inputs.length || req.globalSequences < inputs.length / shard.seqLen) {
    throw new InvalidRequestError(
      `RunStep: global_tokens=${req.globalTokens}, global_sequences=${req.globalSequences} are smaller than this worker's slice (${inputs.length} tokens)`,
    );
  }
  let step: StepSettings;
  try {
    step = stepSettingsFromWire(req.options, 'RunStep.options');
  } catch (error) {
    if (error instanceof ScheduleError) throw new InvalidRequestError(error.message);
    throw error;
  }
  if (step.microBatches > maxMicroBatches) {
    throw new InvalidRequestError(
      `RunStep.options.micro_batches=${step.microBatches}: this worker's backend keeps at most ${maxMicroBatches} micro-batch${maxMicroBatches === 1 ? '' : 'es'} apart`,
    );
  }
  if (step.allToAll === 'hierarchical' && shard.worldSize % step.nodeSize !== 0) {
    throw new InvalidRequestError(`RunStep.options.node_size=${step.nodeSize} does not split the ${shard.worldSize} ranks into whole nodes (hierarchical all-to-all)`);
  }
  const batch: StepBatch = { step: req.step, inputs, targets, globalTokens: req.globalTokens, globalSequences: req.globalSequences };
  let microBatches: MicroBatch[];
  try {
    microBatches = microBatchesOf(batch, shard.seqLen, step.microBatches);
  } catch (error) {
    if (error instanceof BatchSplitError) throw new InvalidRequestError(`RunStep: ${error.message}`);
    throw error;
  }
  return {
    batch,
    microBatches,
    schedule: { kind: step.schedule, chunks: step.chunks, layers: shard.model.layers, microBatches: step.microBatches },
    settings: { dispatchCodec: step.dispatchCodec, combineCodec: step.combineCodec, timeoutMs, allToAll: step.allToAll, nodeSize: step.nodeSize },
  };
}
