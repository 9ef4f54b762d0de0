/**
 * The compute a worker does, behind one interface. The step executor calls these methods in the
 * order its schedule says; the data plane (dispatch, combine, all-reduce) stays in the executor,
 * so a backend never touches the network. Built-in backends: `cpu` (real math of `@moe/model`,
 * off the main thread) and `sim` (modeled device time). Custom backends implement the same.
 *
 * Shapes: T = tokens this worker holds in the step, k = top-k, S = T*k slots (slot s = t*k + j),
 * H = `hiddenSize` of the backend (the columns of every row that crosses the wire).
 * All arrays are row-major Float32Array unless said otherwise.
 */
import type { ModelConfig, NamedParam, OptimizerConfig, Tensor } from '@moe/model';
import type { LinkModel } from '@moe/sim';

/** Everything LoadShard hands a worker, decoded. */
export interface Shard {
  runId: string;
  rank: number;
  worldSize: number;
  /** host:port of every rank's Peer service, by rank. */
  peers: string[];
  model: ModelConfig;
  optimizer: OptimizerConfig;
  /** [E]: rank owning each global expert. */
  expertOwner: number[];
  /** Replicated dense parameters by `denseParams()` name. */
  dense: Map<string, Tensor>;
  /** This worker's experts: `experts[layer]` maps a global expert id to its w1/w3/w2. */
  experts: Map<number, Map<string, Tensor>>[];
  seqLen: number;
  /** Backend-specific settings (LoadShard.backend_options_json, parsed). */
  backendOptions: Record<string, unknown>;
  /** Resuming: the AdamW state to start from (LoadShard.optimizer_state). Absent: fresh. */
  optimizerState?: NamedOptimizerState;
}

/**
 * AdamW state by parameter name: dense trainable names ("embedding", "layers.0.router", ...) and
 * this worker's experts as "layers.<l>.experts.<global id>.<w1|w3|w2>"; every m and v has its
 * parameter's shape. `t` = steps taken; t = 0 with empty maps is a fresh optimizer.
 */
export interface NamedOptimizerState {
  t: number;
  m: Map<string, Tensor>;
  v: Map<string, Tensor>;
}

/** This worker's slice of one step's global batch. */
export interface StepBatch {
  step: number;
  /** [T] token ids; [T] next-token targets. */
  inputs: Int32Array;
  targets: Int32Array;
  /** Divisors that make per-worker sums add up to the global means. */
  globalTokens: number;
  globalSequences: number;
}

/** Rows that arrived from one source rank for this worker's experts. */
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
}

export interface UpdateResult {
  /** Checksum of the replicated dense parameters after the update. */
  checksum: string;
}

export interface ParamsSnapshot {
  dense: NamedParam[];
  /** [layer] -> expert id -> named w1/w3/w2. */
  experts: Map<number, NamedParam[]>[];
}

export interface Backend {
  /** "cpu", "sim", or a custom backend's name; reported at Register. */
  readonly name: string;
  /** Device profile it models ("" for real compute). */
  readonly deviceProfile: string;

  /** Takes the shard; returns the checksum of the replicated dense parameters. */
  load(shard: Shard): Promise<string>;
  /** Columns of the rows this backend sends and receives (H). Valid after `load`. */
  hiddenSize(): number;
  /** top-k of the loaded model. Valid after `load`. */
  topK(): number;

  /** Starts a step: embeds the tokens. */
  beginStep(batch: StepBatch): Promise<void>;
  /** RMSNorm and router of `layer`: the rows to dispatch and their experts. */
  route(layer: number): Promise<RouteOutput>;
  /** Shared experts of `layer` on all T tokens (runs while the dispatch is in flight). */
  sharedExperts(layer: number): Promise<void>;
  /** This worker's experts on the rows of one chunk; returns output rows by source, same order. */
  experts(layer: number, chunk: number, rows: ExpertRows[]): Promise<Float32Array[]>;
  /** Weighted sum of the slot outputs [S, H] plus shared output and residual: the layer's output. */
  combineOutputs(layer: number, slotOutputs: Float32Array): Promise<void>;
  /** Final norm, head, cross-entropy and their backward; the loss of this worker's tokens. */
  lossAndHeadBackward(): Promise<{ lossSum: number; auxLoss: number }>;
  /** Backward of `combineOutputs`: the gradient of every slot output [S, H]. */
  combineOutputsBackward(layer: number): Promise<Float32Array>;
  /** Backward of `experts` for one chunk: input-gradient rows by source; expert grads accumulate. */
  expertsBackward(layer: number, chunk: number, gradRows: ExpertRows[]): Promise<Float32Array[]>;
  /** Backward of `sharedExperts`. */
  sharedExpertsBackward(layer: number): Promise<void>;
  /** Backward of `route` and the norm, given every slot's input gradient [S, H]. */
  routeBackward(layer: number, dSlotInputs: Float32Array): Promise<void>;
  /** Embedding backward; returns the flat vector to all-reduce: dense gradients then counts. */
  gradientsToReduce(): Promise<Float32Array>;
  /** AdamW on dense params (with the reduced gradients) and on local experts; bias balancing. */
  applyUpdate(reduced: Float32Array): Promise<UpdateResult>;
  /** Per-expert token counts this worker routed in the step, [layers * E]. */
  expertCounts(): Promise<Int32Array>;
  /** Current parameters (dense and this worker's experts). */
  snapshot(): Promise<ParamsSnapshot>;
  /** The AdamW state of those parameters, for a checkpoint. Backends without one leave it out. */
  optimizerState?(): Promise<NamedOptimizerState>;
  /** Releases threads and memory. */
  close(): Promise<void>;
  /**
   * The links this backend models, if any (`sim`). Valid after `load`: when it returns a model,
   * the worker wraps its peer transport in `new ShapedTransport(transport, model)` so frames take
   * the modeled links' time. Real backends leave it out.
   */
  linkModel?(): LinkModel | undefined;
  /**
   * For a backend whose compute runs on a device with a clock of its own (`sim`): the device's
   * start and end (performance.now() ms) of the compute op that ended last, and the cost model's
   * duration of it. The executor records these in the timeline, so a busy event loop (the data
   * plane's) delays when ops are issued and noticed, never how long they ran. Real backends leave it out.
   */
  deviceTiming?(): { startMs: number; endMs: number; modeledMs: number } | undefined;
}
