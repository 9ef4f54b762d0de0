import {
  int32FromMsg,
  modelConfigFromMsg,
  namedTensorsFromMsg,
  type CodecName,
  type LoadShardRequestOut,
  type RunStepRequestOut,
} from '@moe/comm';
import { parseModelConfig, type Tensor } from '@moe/model';
import type { Shard, StepBatch } from './backend';
import type { ScheduleSpec } from './schedule/ops';
import type { StepSettings } from './schedule/executor';
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
  if (!Number.isInteger(req.seqLen) || req.seqLen < 1) throw new InvalidRequestError(`LoadShard: seq_len=${req.seqLen} must be positive`);
  if (!req.optimizer) throw new InvalidRequestError('LoadShard: optimizer config is missing');

  const experts = Array.from({ length: model.layers }, () => new Map<number, Map<string, Tensor>>());
  for (const [i, shard] of req.experts.entries()) {
    if (shard.layer >= model.layers) throw new InvalidRequestError(`LoadShard: experts[${i}] has layer ${shard.layer} of ${model.layers}`);
    if (req.expertOwner[shard.expert] !== req.rank) {
      throw new InvalidRequestError(
        `LoadShard: experts[${i}] is expert ${shard.expert}, owned by rank ${req.expertOwner[shard.expert]}, not by this rank ${req.rank}`,
      );
    }
    if (experts[shard.layer]!.has(shard.expert)) {
      throw new InvalidRequestError(`LoadShard: expert ${shard.expert} of layer ${shard.layer} arrived twice`);
    }
    experts[shard.layer]!.set(shard.expert, namedTensorsFromMsg(shard.params, `LoadShard.experts[${i}]`));
  }
  const owned = req.expertOwner.filter((r) => r === req.rank).length;
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
  return {
    runId: req.runId,
    rank: req.rank,
    worldSize: req.worldSize,
    peers: [...req.peerAddresses],
    model,
    optimizer: { ...req.optimizer },
    expertOwner: [...req.expertOwner],
    dense: namedTensorsFromMsg(req.denseParams, 'LoadShard.dense_params'),
    experts,
    seqLen: req.seqLen,
    backendOptions,
  };
}

const DISPATCH_CODECS: Record<string, CodecName> = { F32: 'f32', DTYPE_UNSPECIFIED: 'f32', BF16: 'bf16', FP8_E4M3: 'fp8' };
const COMBINE_CODECS: Record<string, CodecName> = { F32: 'f32', DTYPE_UNSPECIFIED: 'f32', BF16: 'bf16' };

/** RunStep as a batch, a schedule and settings, checked against the loaded shard. */
export function decodeStep(
  req: RunStepRequestOut,
  shard: Shard,
  timeoutMs: number,
): { batch: StepBatch; schedule: ScheduleSpec; settings: StepSettings } {
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
  const options = req.options;
  const kind = options?.schedule === 'OVERLAPPED' ? 'overlapped' : 'naive';
  const chunks = kind === 'overlapped' ? Math.max(1, options?.chunks ?? 1) : 1;
  const dispatchCodec = DISPATCH_CODECS[options?.dispatchCodec ?? 'F32'];
  const combineCodec = COMBINE_CODECS[options?.combineCodec ?? 'F32'];
  if (!dispatchCodec) throw new InvalidRequestError(`RunStep: dispatch codec ${options?.dispatchCodec} is not one of F32, BF16, FP8_E4M3`);
  if (!combineCodec) throw new InvalidRequestError(`RunStep: combine codec ${options?.combineCodec} is not one of F32, BF16`);
  return {
    batch: {
      step: req.step,
      inputs,
      targets,
      globalTokens: req.globalTokens,
      globalSequences: req.globalSequences,
    },
    schedule: { kind, chunks, layers: shard.model.layers },
    settings: { dispatchCodec, combineCodec, timeoutMs },
  };
}
