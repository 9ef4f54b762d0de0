/**
 * The compute a worker does, behind one interface. The step executor calls these methods in the
 * order its schedule says; the data plane (dispatch, combine, all-reduce) stays in the executor,
 * so a backend never touches the network. Built-in backends: `cpu` (real math of `@moe/model`,
 * off the main thread) and `sim` (modeled device time). Custom backends implement the same.
 *
 * Micro-batches: a step may split this worker's batch into M micro-batches (StepOptions.
 * micro_batches); every per-micro-batch method takes the micro-batch's index last, and a backend
 * keeps the state of each (several may be between forward and backward at once: `fb-overlap`).
 * Gradients accumulate over the step's micro-batches; `gradientsToReduce` and `applyUpdate` run once.
 *
 * Shapes: T = tokens this worker holds in the micro-batch, k = top-k, S = T*k slots (slot s = t*k + j),
 * H = `hiddenSize` of the backend (the columns of every row that crosses the wire).
 * All arrays are row-major Float32Array unless said otherwise.
 *
 * Routed rows come in the all-to-all's form (`RoutedForm`): `slots` [S, H] with the flat one (the
 * backend weights and sums them, and computes the weight gradients); `tokens` [T, H] with the
 * hierarchical one, which weights and sums them within each node on the way back and returns the
 * weight gradients with the input gradients. The backward's form is always the forward's.
 */
import type { ExpertRows, MicroBatch, NamedOptimizerState, ParamsSnapshot, RoutedInputGrads, RoutedRows, RouteOutput, ShardParams, UpdateResult } from '@moe/model';
import type { ExpertPlacement } from '@moe/placement';
import type { LinkModel } from '@moe/sim';

export type { ExpertRows, MicroBatch, NamedOptimizerState, ParamsSnapshot, RoutedForm, RoutedInputGrads, RoutedRows, RouteOutput, StepBatch, UpdateResult } from '@moe/model';

/** Everything LoadShard hands a worker, decoded: the parameters (`ShardParams`) and where the rank sits. */
export interface Shard extends ShardParams {
  runId: string;
  rank: number;
  worldSize: number;
  /** host:port of every rank's Peer service, by rank. */
  peers: string[];
  /** [E]: rank owning each global expert (with redundant experts: the rank of its first copy). */
  expertOwner: number[];
  /**
   * Redundant experts (LoadShard.physical_to_logical / physical_owner): every physical copy and
   * its rank; `replicatedExperts` (ShardParams) lists the experts several ranks hold. Absent: one copy each.
   */
  replicaPlacement?: ExpertPlacement;
  /** Backend-specific settings (LoadShard.backend_options_json, parsed). */
  backendOptions: Record<string, unknown>;
}

export interface Backend {
  /** "cpu", "sim", or a custom backend's name; reported at Register. */
  readonly name: string;
  /** Device profile it models ("" for real compute). */
  readonly deviceProfile: string;
  /**
   * The most micro-batches a step may hold: a backend that keeps state per micro-batch (the
   * `microBatch` argument of its methods) says so here; absent: 1. Advertised at Register.
   */
  readonly maxMicroBatches?: number;
  /**
   * The backend runs a placement with redundant experts: `gradientsToReduce` appends the
   * replicated experts' gradient blocks and `applyUpdate` takes their sums (`@moe/model`'s
   * replica-grads.ts layout) and reports their checksums. Absent: a LoadShard with experts on
   * several ranks is refused, naming the backend.
   */
  readonly sumsReplicaGradients?: boolean;

  /** Takes the shard; returns the checksum of the replicated dense parameters. */
  load(shard: Shard): Promise<string>;
  /** Columns of the rows this backend sends and receives (H). Valid after `load`. */
  hiddenSize(): number;
  /** top-k of the loaded model. Valid after `load`. */
  topK(): number;

  /** Starts a micro-batch: embeds its tokens (micro-batch 0 also starts the step: zeroes the gradients). */
  beginStep(batch: MicroBatch): Promise<void>;
  /** RMSNorm and router of `layer`: the rows to dispatch, their experts and their combine weights. */
  route(layer: number, microBatch: number): Promise<RouteOutput>;
  /** Shared experts of `layer` on all T tokens (runs while the dispatch is in flight). */
  sharedExperts(layer: number, microBatch: number): Promise<void>;
  /** This worker's experts on the rows of one chunk; returns output rows by source, same order. */
  experts(layer: number, chunk: number, rows: ExpertRows[], microBatch: number): Promise<Float32Array[]>;
  /** The routed output (slots: weighted sum of [S, H]; tokens: [T, H] as given) plus shared output and residual: the layer's output. */
  combineOutputs(layer: number, routed: RoutedRows, microBatch: number): Promise<void>;
  /** Final norm, head, cross-entropy and their backward; the loss of this micro-batch's tokens (global divisors). */
  lossAndHeadBackward(microBatch: number): Promise<{ lossSum: number; auxLoss: number }>;
  /** Backward of `combineOutputs`, in its form: slots: the gradient of every slot output [S, H]; tokens: of the routed output [T, H]. */
  combineOutputsBackward(layer: number, microBatch: number): Promise<RoutedRows>;
  /** Backward of `experts` for one chunk: input-gradient rows by source; expert grads accumulate. */
  expertsBackward(layer: number, chunk: number, gradRows: ExpertRows[], microBatch: number): Promise<Float32Array[]>;
  /**
   * The two halves of `expertsBackward`, for schedules that defer weight gradients (`fb-overlap`'s
   * `experts_dgrad` and `experts_wgrad` ops): the input-gradient rows first, keeping what the
   * chunk's weight gradients need; then, once those rows are on their way, the weight gradients.
   * Together they must equal `expertsBackward`. A backend has both or neither: without them the
   * executor runs `expertsBackward` for `experts_dgrad` and nothing for `experts_wgrad`.
   */
  expertsInputGrad?(layer: number, chunk: number, gradRows: ExpertRows[], microBatch: number): Promise<Float32Array[]>;
  expertsWeightGrad?(layer: number, chunk: number, microBatch: number): Promise<void>;
  /** Backward of `sharedExperts`. */
  sharedExpertsBackward(layer: number, microBatch: number): Promise<void>;
  /** Backward of `route` and the norm, given the routed inputs' gradient: per slot [S, H], or per token [T, H] with the weight gradients [S]. */
  routeBackward(layer: number, grads: RoutedInputGrads, microBatch: number): Promise<void>;
  /** Once per step, after every micro-batch's backward: embedding backward; returns the flat vector to all-reduce: dense gradients then counts. */
  gradientsToReduce(): Promise<Float32Array>;
  /** AdamW on dense params (with the reduced gradients) and on local experts; bias balancing. */
  applyUpdate(reduced: Float32Array): Promise<UpdateResult>;
  /** Per-expert token counts this worker routed in the step (every micro-batch), [layers * E]. */
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
