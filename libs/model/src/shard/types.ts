/**
 * What one rank's share of a training step takes and returns: its parameters, its slice of the
 * batch, the rows that cross the wire. The worker's `Backend` interface speaks these types.
 *
 * Shapes: T = tokens this rank holds in the step, k = top-k, S = T*k slots (slot s = t*k + j),
 * H = hidden size (the columns of every row that crosses the wire).
 */
import type { ModelConfig, OptimizerConfig } from '../config';
import type { NamedParam } from '../params';
import type { Tensor } from '../tensor';

/** The parameters and settings one rank computes with (a decoded LoadShard holds them). */
export interface ShardParams {
  model: ModelConfig;
  optimizer: OptimizerConfig;
  /** Replicated dense parameters by `denseParams()` name. */
  dense: Map<string, Tensor>;
  /** This rank's experts: `experts[layer]` maps a global expert id to its w1/w3/w2. */
  experts: Map<number, Map<string, Tensor>>[];
  /** L: tokens per sequence. */
  seqLen: number;
  /** Resuming: the AdamW state to start from. Absent: fresh. */
  optimizerState?: NamedOptimizerState;
  /**
   * Redundant experts: the experts (ascending ids, the same list on every rank) that several ranks
   * hold. Their gradients are summed over the holders in the step's all-reduce (replica-grads.ts).
   * Absent or empty: every expert lives on one rank.
   */
  replicatedExperts?: readonly number[];
}

/** The checksum of one rank's copy of a replicated expert (all its weights). */
export interface ReplicaChecksum {
  layer: number;
  expert: number;
  checksum: string;
}

/**
 * AdamW state by parameter name: dense trainable names ("embedding", "layers.0.router", ...) and
 * this rank's experts as `expertParamName` names them; every m and v has its parameter's shape.
 * `t` = steps taken; t = 0 with empty maps is a fresh optimizer.
 */
export interface NamedOptimizerState {
  t: number;
  m: Map<string, Tensor>;
  v: Map<string, Tensor>;
}

/** This rank's slice of one step's global batch. */
export interface StepBatch {
  step: number;
  /** [T] token ids; [T] next-token targets. */
  inputs: Int32Array;
  targets: Int32Array;
  /** Divisors that make per-rank sums add up to the global means. */
  globalTokens: number;
  globalSequences: number;
}

/** One micro-batch of a rank's step (`StepOptions.micro_batches`): what `beginStep` is given. */
export interface MicroBatch extends StepBatch {
  /** Index in the step, 0..microBatches-1. Micro-batch 0 starts the step: gradients are zeroed. */
  microBatch: number;
  microBatches: number;
  /** Tokens this rank holds over the whole step (every micro-batch). */
  stepTokens: number;
}

/** Rows that arrived from one source rank for this rank's experts. */
export interface ExpertRows {
  source: number;
  /** [n, H] */
  rows: Float32Array;
  /** [n] global expert id of each row. */
  expertIds: Int32Array;
}

export interface RouteOutput {
  /** [T, H]: the normalised hidden states the experts take as input. */
  h: Float32Array;
  /** [S]: the global expert id of every slot (never -1). */
  expertIds: Int32Array;
  /** [S]: the combine weight of every slot (the hierarchical all-to-all weights the outputs where they are reduced). */
  weights: Float32Array;
}

/**
 * Where the routed experts' rows are summed per token, which fixes the shape they reach the
 * token's rank in: `slots`, one row per slot [S, H] (the flat all-to-all: the backend weights and
 * sums them, computes the weight gradients and gets per-slot input gradients back); `tokens`, one
 * row per token [T, H] (the hierarchical all-to-all weights and sums them within each node, so
 * only one row per token crosses back; the weight gradients come back with the input gradients).
 */
export type RoutedForm = 'slots' | 'tokens';

/**
 * Routed rows of one layer in one form. Forward (`combineOutputs`): `slots` [S, H] expert outputs;
 * `tokens` [T, H] already weighted and summed. Backward (`combineOutputsBackward`): `slots` [S, H]
 * gradients of the slot outputs (w[s] * dy[t]); `tokens` [T, H] the gradient of the combined output.
 */
export interface RoutedRows {
  form: RoutedForm;
  rows: Float32Array;
}

/**
 * The gradient reaching the routed experts' inputs (`routeBackward`): `slots` [S, H] per slot (the
 * backend has computed the weight gradients itself); `tokens` [T, H] summed per token, with
 * dWeights [S] the gradient of every slot's combine weight, computed where the outputs were reduced.
 */
export type RoutedInputGrads = { form: 'slots'; rows: Float32Array } | { form: 'tokens'; rows: Float32Array; dWeights: Float32Array };

export interface UpdateResult {
  /** Checksum of the replicated dense parameters after the update. */
  checksum: string;
  /** Checksums of this rank's copies of replicated experts after the update (absent without any). */
  replicaChecksums?: ReplicaChecksum[];
}

export interface ParamsSnapshot {
  dense: NamedParam[];
  /** [layer] -> expert id -> named w1/w3/w2. */
  experts: Map<number, NamedParam[]>[];
}
