/**
 * `backendOptions` of the `sim` backend (LoadShard.backend_options_json), validated with zod.
 *
 * ```json
 * { "profile": "H800", "dilation": 2000, "model": { "hiddenSize": 512 }, "tokensPerRank": 256,
 *   "nodeSize": 8, "computeScale": 1, "seed": 7, "linkSharing": "port" }
 * ```
 */
import { z } from 'zod';
import { InvalidRequestError } from '../../errors';
import { deviceProfile, type DeviceProfile } from '@moe/sim';
import { resolveModeledModel, type ModeledModel } from '@moe/sim';

const positiveInt = z.int().positive();

const modeledModelSchema = z.strictObject({
  hiddenSize: positiveInt,
  expertFfnSize: positiveInt,
  routedExperts: positiveInt,
  sharedExperts: z.int().nonnegative(),
  attention: z
    .strictObject({
      heads: positiveInt,
      qLoraRank: z.int().nonnegative(),
      kvLoraRank: positiveInt,
      qkNopeHeadDim: positiveInt,
      qkRopeHeadDim: z.int().nonnegative(),
      vHeadDim: positiveInt,
    })
    .partial(),
  seqLen: positiveInt,
  vocabSize: positiveInt,
  gemmDtype: z.enum(['fp8', 'bf16', 'tf32', 'fp32']),
  mfu: z.number().gt(0).max(1),
});

export const simOptionsSchema = z.strictObject({
  /** Device profile name (H800, H100, H200, A100); may come from the SimBackend constructor instead. */
  profile: z.string().optional(),
  /** Time-dilation factor >= 1: every modeled compute op and link transfer is this many times slower. */
  dilation: z.number().min(1),
  /** The modeled layer; fields not given take DeepSeek-V3's. */
  model: modeledModelSchema.partial().optional(),
  /** Tokens per rank the modeled step holds (rows of `route().h`); default: the real batch's. */
  tokensPerRank: positiveInt.optional(),
  /** Ranks per modeled node; default: the profile's GPUs per node (8). */
  nodeSize: positiveInt.optional(),
  /** Multiplies every modeled compute duration (sets the compute-to-communication ratio); default 1. */
  computeScale: z.number().positive().optional(),
  /**
   * Multiplies the modeled link latencies; default 1. A run whose payloads are scaled down from
   * the modeled cluster's (fewer tokens, narrower rows) scales latency by the same factor to keep
   * the cluster's bandwidth-to-latency balance.
   */
  latencyScale: z.number().positive().optional(),
  /** Micro-batches per optimizer step: the modeled update costs 1/this of a full one; default 1. */
  accumulationSteps: positiveInt.optional(),
  /** Seed of the simulated routing; default 0. */
  seed: z.int().optional(),
  /** Link sharing of the modeled network, see LinkSharing in @moe/comm; default "port". */
  linkSharing: z.enum(['port', 'pair']).optional(),
  /**
   * Routing of the simulated tokens; default "uniform". "skewed": every token's top-k slots go to
   * the experts rank 0 holds under the contiguous placement (k distinct ones, spilling to the next
   * ranks' blocks only when rank 0's holds fewer than k), the worst case of a hot rank; the same
   * experts whatever the run's placement, so a balanced or replicated placement can spread them.
   */
  routing: z.enum(['uniform', 'skewed']).optional(),
});

export type SimOptionsInput = z.input<typeof simOptionsSchema>;

/** The options with every default filled in. */
export interface SimOptions {
  profile: DeviceProfile;
  dilation: number;
  model: ModeledModel;
  tokensPerRank?: number;
  nodeSize: number;
  computeScale: number;
  accumulationSteps: number;
  latencyScale: number;
  seed: number;
  linkSharing: 'port' | 'pair';
  routing: 'uniform' | 'skewed';
}

/**
 * backendOptions the sim backend cannot use; the message names each bad field and its value.
 * An InvalidRequestError, so LoadShard answers INVALID_ARGUMENT.
 */
export class SimOptionsError extends InvalidRequestError {}

const valueAt = (input: unknown, path: readonly PropertyKey[]): unknown =>
  path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined), input);

/**
 * Parses `backendOptions`; `defaultProfile` is used when it names no profile.
 * Throws SimOptionsError (bad fields) or UnknownDeviceProfileError (listing the known profiles).
 */
export function parseSimOptions(input: unknown, defaultProfile?: string): SimOptions {
  const parsed = simOptionsSchema.safeParse(input ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const field = ['backendOptions', ...issue.path.map(String)].join('.');
      const value = valueAt(input, issue.path);
      const shown = value === undefined ? '' : `=${JSON.stringify(value)}`;
      return `${field}${shown}: ${issue.message}`;
    });
    throw new SimOptionsError(`sim backend: ${problems.join('; ')}`);
  }
  const o = parsed.data;
  const profileName = o.profile ?? defaultProfile;
  if (profileName === undefined) {
    throw new SimOptionsError('sim backend: backendOptions.profile is required (one of H800, H100, H200, A100)');
  }
  const profile = deviceProfile(profileName);
  const model = resolveModeledModel(o.model);
  if (profile.tflops[model.gemmDtype] === undefined) {
    throw new SimOptionsError(
      `sim backend: backendOptions.model.gemmDtype="${model.gemmDtype}": device ${profile.name} has no ${model.gemmDtype} tensor cores; ` +
        `it has ${Object.keys(profile.tflops).join(', ')}`,
    );
  }
  return {
    profile,
    dilation: o.dilation,
    model,
    tokensPerRank: o.tokensPerRank,
    nodeSize: o.nodeSize ?? profile.gpusPerNode,
    computeScale: o.computeScale ?? 1,
    accumulationSteps: o.accumulationSteps ?? 1,
    latencyScale: o.latencyScale ?? 1,
    seed: o.seed ?? 0,
    linkSharing: o.linkSharing ?? 'port',
    routing: o.routing ?? 'uniform',
  };
}
