import {
  allReduceSum,
  allToAllStrategy,
  dispatchLayout,
  type AllToAllBackwardHandle,
  type AllToAllHandle,
  type AllToAllMode,
  type CodecName,
  type DispatchLayout,
  type HopTiming,
  type LinkBytes,
  type FrameKey,
  type Phase,
  type ReceivedRows,
  type Transport,
  TimelineRecorder,
  ReplicaChooser,
  type OpRecordData,
  type ReplicaPlacement,
} from '@moe/comm';
import type { ReplicaChecksum } from '@moe/model';
import type { Backend, ExpertRows, MicroBatch, RoutedInputGrads, RoutedRows, RouteOutput, StepBatch } from '../backend';
import { wholeBatch } from './micro-batches';
import { chunkTokenRange } from '@moe/schedule';
import type { OpObserver } from './flight-recorder';
import type { PlantedFault } from './faults';
import type { Op } from '@moe/schedule';

export interface ExecuteSettings {
  dispatchCodec: CodecName;
  /** Codec of the combine and of both backward all-to-alls (gradients). */
  combineCodec: CodecName;
  /** Timeout of every wait for peers' frames. */
  timeoutMs: number;
  /** flat (default) or hierarchical all-to-all. */
  allToAll?: AllToAllMode;
  /** Ranks per modeled node; 0 or absent: every rank in one node. */
  nodeSize?: number;
}

export interface StepOutcome {
  lossSum: number;
  auxLoss: number;
  checksum: string;
  counts: Int32Array;
  timeline: OpRecordData[];
  bytesSent: number;
  /** All-to-all bytes this rank sent, by link class (allreduce bytes are in bytesSent only). */
  linkBytes: LinkBytes;
  stepMs: number;
  /** Redundant experts only: [layers·P] tokens this rank routed to each physical expert, and its replicas' checksums after the update. */
  physicalCounts?: Int32Array;
  replicaChecksums?: ReplicaChecksum[];
}

/** What the executor needs of a placement with redundant experts. */
export interface ExecutorReplicas {
  placement: ReplicaPlacement;
  /** Values the replicated experts' gradient blocks take at the end of the all-reduce vector (replicaGradientLength). */
  gradientValues: number;
  /** MoE layers of the model (physical counts are [layers·P]). */
  layers: number;
}

/** An op of the step failed; names the op, the step and the rank. */
export class StepOpError extends Error {
  override readonly name = 'StepOpError';
  constructor(
    readonly op: Op,
    readonly step: number,
    readonly rank: number,
    override readonly cause: unknown,
  ) {
    const where = `${op.kind}${op.microBatch > 0 ? ` micro-batch ${op.microBatch}` : ''}${op.layer >= 0 ? ` layer ${op.layer}` : ''}${op.chunk >= 0 ? ` chunk ${op.chunk}` : ''}`;
    super(`rank ${rank}, step ${step}, op ${where}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** What one layer of one micro-batch carries between its ops during a step. */
interface LayerState {
  route?: RouteOutput;
  /** S = T*k slots of the micro-batch (from route's expert ids). */
  slots: number;
  layouts: DispatchLayout[];
  handles: AllToAllHandle[];
  received: ReceivedRows[][];
  expertOutputs: Float32Array[][];
  /** Routed outputs in the all-to-all's form ([S, H] per slot or [T, H] per token), filled chunk by chunk by the combines. */
  routed?: Float32Array;
  /** Their gradients, in the same form. */
  dRouted?: RoutedRows;
  backwardHandles: AllToAllBackwardHandle[];
  backwardReceived: ReceivedRows[][];
  expertInputGrads: Float32Array[][];
  /** Gradients of the routed inputs in that form, filled chunk by chunk. */
  dRoutedInputs?: Float32Array;
  /** `tokens` form: [S] gradients of the combine weights, filled chunk by chunk with dRoutedInputs. */
  dWeights?: Float32Array;
}

const toExpertRows = (received: ReceivedRows[]): ExpertRows[] =>
  received.map((r) => ({ source: r.source, rows: r.rows, expertIds: r.expertIds }));

/**
 * Runs one step's op list on this worker: compute ops one at a time in list order on the
 * backend, comm ops concurrently over the transport, each op once all its deps are done.
 */
export class StepExecutor {
  constructor(
    private readonly backend: Backend,
    private readonly transport: Transport,
    private readonly expertOwner: readonly number[],
    /** Told of every op's start and end (the worker's flight recorder). */
    private readonly observer?: OpObserver,
    /** A planted fault (tests only, env MOE_FAULT): proves the parity checks catch it. */
    private readonly fault?: PlantedFault,
    /** Redundant experts: tokens go to the copy ReplicaChooser picks; absent: every expert at expertOwner. */
    private readonly replicas?: ExecutorReplicas,
  ) {}

  /** The chooser of the placement for `nodeSize` (a step setting: the same placement prefers other copies on other node sizes). */
  private chooser?: ReplicaChooser;
  private replicaChooser(nodeSize: number): ReplicaChooser | undefined {
    if (!this.replicas) return undefined;
    const size = nodeSize || this.transport.worldSize;
    if (!this.chooser || this.chooserNodeSize !== size) {
      this.chooser = new ReplicaChooser(this.replicas.placement, this.expertOwner.length, this.transport.worldSize, size);
      this.chooserNodeSize = size;
    }
    return this.chooser;
  }
  private chooserNodeSize = 0;
  /** Whether the backend computes an expert backward's input and weight gradients apart (Backend.expertsInputGrad). */
  private splitsBackward(): boolean {
    return this.backend.expertsInputGrad !== undefined && this.backend.expertsWeightGrad !== undefined;
  }

  /**
   * @param batch this worker's micro-batches of the step, in order (`microBatchesOf`); a plain
   *   StepBatch is a step of one micro-batch. The ops' micro-batch indices must be below their count.
   */
  async run(ops: readonly Op[], batch: StepBatch | readonly MicroBatch[], settings: ExecuteSettings): Promise<StepOutcome> {
    const microBatches = 'length' in batch ? batch : wholeBatch(batch);
    const step = microBatches[0]!.step;
    const needed = Math.max(0, ...ops.map((op) => op.microBatch + 1));
    if (needed !== microBatches.length) {
      throw new Error(`rank ${this.transport.rank}, step ${step}: the schedule has ${needed} micro-batches but the step was split into ${microBatches.length}`);
    }
    const timeline = new TimelineRecorder();
    // State per (micro-batch, layer): two micro-batches may be between forward and backward at once.
    const layers = new Map<string, LayerState>();
    const layer = (mb: number, l: number): LayerState => {
      const id = `${mb}/${l}`;
      let state = layers.get(id);
      if (!state) layers.set(id, (state = {
        slots: 0,
        layouts: [],
        handles: [],
        received: [],
        expertOutputs: [],
        backwardHandles: [],
        backwardReceived: [],
        expertInputGrads: [],
      }));
      return state;
    };
    const chunkCount = Math.max(1, ...ops.map((op) => op.chunk + 1));
    const hidden = this.backend.hiddenSize();
    const topK = this.backend.topK();
    const { rank, worldSize } = this.transport;
    const key = (op: Op, phase: Phase): FrameKey => ({ step, microBatch: Math.max(0, op.microBatch), layer: op.layer, chunk: Math.max(0, op.chunk), phase });
    const a2a = allToAllStrategy(settings.allToAll ?? 'flat', this.replicas?.placement ?? this.expertOwner, worldSize, settings.nodeSize || worldSize, () => timeline.now());
    /** Rows of a layer's routed arrays for `slots` slots: one per slot, or one per token when the all-to-all sums them. */
    const routedRows = (slots: number) => (a2a.form === 'tokens' ? slots / topK : slots);
    const chooser = this.replicaChooser(settings.nodeSize ?? 0);
    const physicalCounts = chooser ? new Int32Array(this.replicas!.layers * chooser.physical) : undefined;
    // A micro-batch's tokens follow the earlier micro-batches' among the rank's tokens of the step (the replica choice counts from there).
    const tokenOffset = (mb: number) => microBatches.slice(0, mb).reduce((n, m) => n + m.inputs.length, 0) + (this.fault?.replicaTokenShift(rank) ?? 0);
    const linkBytes: LinkBytes = { intra: 0, inter: 0 };
    /**
     * Counts an all-to-all's bytes by link class and records a hierarchical one's hops as comm ops
     * of their own ("dispatch.inter", "dispatch.intra"), so timelines and traces show both hops.
     * Returns the total for the op's record.
     */
    const sent = (op: Op, result: { bytes: LinkBytes; hops: HopTiming[] }) => {
      linkBytes.intra += result.bytes.intra;
      linkBytes.inter += result.bytes.inter;
      for (const hop of result.hops) {
        const { layer, chunk, direction, microBatch } = op;
        timeline.record({ name: `${op.kind}.${hop.link}`, stream: 'comm', layer, chunk, microBatch, startMs: hop.startMs, endMs: hop.endMs, bytesSent: hop.bytes, direction });
      }
      return result.bytes.intra + result.bytes.inter;
    };

    // Summed over micro-batches: each one's loss is already divided by the global batch's tokens.
    const loss = { lossSum: 0, auxLoss: 0 };
    let gradients: Float32Array = new Float32Array(0);
    let reduced: Float32Array = new Float32Array(0);
    let checksum = '';
    let replicaChecksums: ReplicaChecksum[] | undefined;
    let bytesSent = 0;

    const runOp = async (op: Op): Promise<number> => {
      const s = op.layer >= 0 ? layer(op.microBatch, op.layer) : undefined;
      const mb = op.microBatch;
      switch (op.kind) {
        case 'begin':
          await this.backend.beginStep(microBatches[mb]!);
          return 0;
        case 'route': {
          const route = await this.backend.route(op.layer, mb);
          s!.route = route;
          // Sized from the router's output: a sim backend may model more tokens than the batch holds.
          s!.slots = route.expertIds.length;
          const tokens = s!.slots / topK;
          let slotRanks: Int32Array | undefined;
          if (chooser) {
            const physical = chooser.choose(route.expertIds, rank, topK, tokenOffset(mb));
            const counts = physicalCounts!.subarray(op.layer * chooser.physical, (op.layer + 1) * chooser.physical);
            for (const q of physical) if (q >= 0) counts[q]!++;
            slotRanks = chooser.ranksOf(physical);
          }
          for (let c = 0; c < chunkCount; c++) {
            const range = chunkTokenRange(tokens, chunkCount, c);
            s!.layouts[c] = dispatchLayout(route.expertIds, this.expertOwner, worldSize, { begin: range.begin * topK, end: range.end * topK }, slotRanks);
          }
          s!.routed = new Float32Array(routedRows(s!.slots) * hidden);
          return 0;
        }
        case 'dispatch': {
          const layout = s!.layouts[op.chunk]!;
          const { received, handle, ...result } = await a2a.dispatch(this.transport, key(op, 'DISPATCH'), layout, s!.route!.h, hidden, {
            rowOfSlot: (slot) => Math.floor(slot / topK),
            expertIds: this.fault?.expertIds(rank, s!.route!.expertIds, this.expertOwner) ?? s!.route!.expertIds,
            weights: s!.route!.weights,
            codec: settings.dispatchCodec,
            timeoutMs: settings.timeoutMs,
          });
          s!.received[op.chunk] = received;
          s!.handles[op.chunk] = handle;
          return sent(op, result);
        }
        case 'shared':
          await this.backend.sharedExperts(op.layer, mb);
          return 0;
        case 'experts':
          s!.expertOutputs[op.chunk] = await this.backend.experts(op.layer, op.chunk, toExpertRows(s!.received[op.chunk]!), mb);
          return 0;
        case 'combine': {
          const result = await a2a.combine(this.transport, key(op, 'COMBINE'), s!.handles[op.chunk]!, s!.expertOutputs[op.chunk]!, {
            codec: settings.combineCodec,
            timeoutMs: settings.timeoutMs,
            into: s!.routed,
          });
          const range = chunkTokenRange(s!.slots / topK, chunkCount, op.chunk);
          const slotRange = { begin: range.begin * topK, end: range.end * topK };
          this.fault?.afterCombine(rank, op.layer, s!.layouts[op.chunk]!, slotRange, op.chunk === chunkCount - 1, { form: a2a.form, rows: s!.routed! }, hidden, topK);
          return sent(op, result);
        }
        case 'post':
          await this.backend.combineOutputs(op.layer, { form: a2a.form, rows: s!.routed! }, mb);
          return 0;
        case 'loss': {
          const part = await this.backend.lossAndHeadBackward(mb);
          loss.lossSum += part.lossSum;
          loss.auxLoss += part.auxLoss;
          return 0;
        }
        case 'post_bwd': {
          const dRouted = await this.backend.combineOutputsBackward(op.layer, mb);
          if (dRouted.form !== a2a.form || dRouted.rows.length !== routedRows(s!.slots) * hidden) {
            throw new Error(`backend ${this.backend.name} returned ${dRouted.rows.length / hidden} rows in ${dRouted.form} form; the ${a2a.mode} all-to-all needs ${routedRows(s!.slots)} in ${a2a.form} form`);
          }
          s!.dRouted = dRouted;
          s!.dRoutedInputs = new Float32Array(routedRows(s!.slots) * hidden);
          if (a2a.form === 'tokens') s!.dWeights = new Float32Array(s!.slots);
          return 0;
        }
        case 'combine_bwd': {
          const { received, handle, ...result } = await a2a.combineBackward(this.transport, key(op, 'COMBINE_BACKWARD'), s!.handles[op.chunk]!, s!.dRouted!.rows, {
            expertIds: this.fault?.expertIds(rank, s!.route!.expertIds, this.expertOwner) ?? s!.route!.expertIds,
            codec: settings.combineCodec,
            timeoutMs: settings.timeoutMs,
          });
          s!.backwardReceived[op.chunk] = received;
          s!.backwardHandles[op.chunk] = handle;
          return sent(op, result);
        }
        case 'experts_bwd':
          s!.expertInputGrads[op.chunk] = await this.backend.expertsBackward(
            op.layer,
            op.chunk,
            toExpertRows(s!.backwardReceived[op.chunk]!),
            mb,
          );
          return 0;
        case 'experts_dgrad': {
          const rows = toExpertRows(s!.backwardReceived[op.chunk]!);
          s!.expertInputGrads[op.chunk] = this.splitsBackward()
            ? await this.backend.expertsInputGrad!(op.layer, op.chunk, rows, mb)
            : await this.backend.expertsBackward(op.layer, op.chunk, rows, mb);
          return 0;
        }
        case 'experts_wgrad':
          if (this.splitsBackward()) await this.backend.expertsWeightGrad!(op.layer, op.chunk, mb);
          return 0;
        case 'dispatch_bwd': {
          const result = await a2a.dispatchBackward(this.transport, key(op, 'DISPATCH_BACKWARD'), s!.backwardHandles[op.chunk]!, s!.expertInputGrads[op.chunk]!, {
            codec: settings.combineCodec,
            timeoutMs: settings.timeoutMs,
            into: s!.dRoutedInputs,
            dWeightsInto: s!.dWeights,
          });
          return sent(op, result);
        }
        case 'shared_bwd':
          await this.backend.sharedExpertsBackward(op.layer, mb);
          return 0;
        case 'route_bwd': {
          const rows = s!.dRoutedInputs!;
          const grads: RoutedInputGrads = a2a.form === 'tokens' ? { form: 'tokens', rows, dWeights: s!.dWeights! } : { form: 'slots', rows };
          await this.backend.routeBackward(op.layer, grads, mb);
          // This micro-batch's layer is done: let its activations go.
          layers.delete(`${mb}/${op.layer}`);
          return 0;
        }
        case 'grads':
          gradients = await this.backend.gradientsToReduce();
          return 0;
        case 'allreduce':
          reduced = await allReduceSum(this.transport, key(op, 'ALLREDUCE'), this.fault?.beforeReduce(rank, gradients) ?? gradients, settings.timeoutMs);
          if (this.fault) reduced = this.fault.afterReduce(reduced, worldSize, gradients, this.replicas?.gradientValues ?? 0);
          // Reduce-scatter then all-gather: each rank sends (W-1)/W of the vector twice.
          return worldSize > 1 ? Math.round((2 * gradients.byteLength * (worldSize - 1)) / worldSize) : 0;
        case 'update': {
          const update = await this.backend.applyUpdate(reduced);
          checksum = update.checksum;
          replicaChecksums = update.replicaChecksums;
          return 0;
        }
      }
    };

    const started = performance.now();
    const done: Promise<void>[] = [];
    let computeTail: Promise<void> = Promise.resolve();
    for (const op of ops) {
      const deps = Promise.all(op.deps.map((d) => done[d]));
      const start = op.stream === 'compute' ? Promise.all([computeTail, deps]) : deps;
      const finished = start.then(async () => {
        const t0 = timeline.now();
        const flight = this.observer?.opStart(step, op);
        let bytes: number;
        try {
          bytes = await runOp(op);
        } catch (error) {
          if (flight) this.observer!.opEnd(flight, error instanceof StepOpError ? error.cause : error);
          throw error instanceof StepOpError ? error : new StepOpError(op, step, rank, error);
        }
        if (flight) this.observer!.opEnd(flight);
        bytesSent += bytes;
        // A modeled device's compute op: the span its own clock measured (see Backend.deviceTiming).
        const device = op.stream === 'compute' ? this.backend.deviceTiming?.() : undefined;
        timeline.record({
          name: op.kind,
          stream: op.stream,
          layer: op.layer,
          chunk: op.chunk,
          microBatch: op.microBatch,
          startMs: device ? timeline.at(device.startMs) : t0,
          endMs: device ? timeline.at(device.endMs) : timeline.now(),
          bytesSent: bytes,
          direction: op.direction,
          ...(device ? { modeledMs: device.modeledMs } : {}),
        });
      });
      // A failure surfaces once, through Promise.all below; the dependants just stop.
      finished.catch(() => {});
      done[op.id] = finished;
      if (op.stream === 'compute') computeTail = finished;
    }
    await Promise.all(done);
    const stepMs = performance.now() - started;

    return {
      ...loss,
      checksum,
      counts: await this.backend.expertCounts(),
      timeline: timeline.records(),
      bytesSent,
      linkBytes,
      stepMs,
      ...(physicalCounts ? { physicalCounts } : {}),
      ...(replicaChecksums ? { replicaChecksums } : {}),
    };
  }
}
