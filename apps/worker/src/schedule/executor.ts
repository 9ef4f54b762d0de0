import {
  allReduceSum,
  allToAllStrategy,
  dispatchLayout,
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
  type OpRecordData,
} from '@moe/comm';
import type { Backend, ExpertRows, MicroBatch, RouteOutput, StepBatch } from '../backend';
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
  /** [S, H] slot outputs, filled chunk by chunk by the combines. */
  slotOutputs?: Float32Array;
  /** [S, H] gradients of the slot outputs. */
  dSlotOutputs?: Float32Array;
  backwardHandles: AllToAllHandle[];
  backwardReceived: ReceivedRows[][];
  expertInputGrads: Float32Array[][];
  /** [S, H] gradients of the slot inputs, filled chunk by chunk. */
  dSlotInputs?: Float32Array;
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
  ) {}

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
    const a2a = allToAllStrategy(settings.allToAll ?? 'flat', this.expertOwner, worldSize, settings.nodeSize || worldSize, () => timeline.now());
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
          for (let c = 0; c < chunkCount; c++) {
            const range = chunkTokenRange(tokens, chunkCount, c);
            s!.layouts[c] = dispatchLayout(route.expertIds, this.expertOwner, worldSize, {
              begin: range.begin * topK,
              end: range.end * topK,
            });
          }
          s!.slotOutputs = new Float32Array(s!.slots * hidden);
          return 0;
        }
        case 'dispatch': {
          const layout = s!.layouts[op.chunk]!;
          const { received, handle, ...result } = await a2a.dispatch(this.transport, key(op, 'DISPATCH'), layout, s!.route!.h, hidden, {
            rowOfSlot: (slot) => Math.floor(slot / topK),
            expertIds: this.fault?.expertIds(rank, s!.route!.expertIds, this.expertOwner) ?? s!.route!.expertIds,
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
            into: s!.slotOutputs,
          });
          const range = chunkTokenRange(s!.slots / topK, chunkCount, op.chunk);
          const slotRange = { begin: range.begin * topK, end: range.end * topK };
          this.fault?.afterCombine(rank, op.layer, s!.layouts[op.chunk]!, slotRange, op.chunk === chunkCount - 1, s!.slotOutputs!, hidden);
          return sent(op, result);
        }
        case 'post':
          await this.backend.combineOutputs(op.layer, s!.slotOutputs!, mb);
          return 0;
        case 'loss': {
          const part = await this.backend.lossAndHeadBackward(mb);
          loss.lossSum += part.lossSum;
          loss.auxLoss += part.auxLoss;
          return 0;
        }
        case 'post_bwd':
          s!.dSlotOutputs = await this.backend.combineOutputsBackward(op.layer, mb);
          s!.dSlotInputs = new Float32Array(s!.slots * hidden);
          return 0;
        case 'combine_bwd': {
          const layout = s!.layouts[op.chunk]!;
          const { received, handle, ...result } = await a2a.dispatch(
            this.transport,
            key(op, 'COMBINE_BACKWARD'),
            layout,
            s!.dSlotOutputs!,
            hidden,
            {
              rowOfSlot: (slot) => slot,
              tokenOfSlot: (slot) => Math.floor(slot / topK),
              expertIds: this.fault?.expertIds(rank, s!.route!.expertIds, this.expertOwner) ?? s!.route!.expertIds,
              codec: settings.combineCodec,
              timeoutMs: settings.timeoutMs,
            },
          );
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
          const result = await a2a.combine(this.transport, key(op, 'DISPATCH_BACKWARD'), s!.backwardHandles[op.chunk]!, s!.expertInputGrads[op.chunk]!, {
            codec: settings.combineCodec,
            timeoutMs: settings.timeoutMs,
            into: s!.dSlotInputs,
          });
          return sent(op, result);
        }
        case 'shared_bwd':
          await this.backend.sharedExpertsBackward(op.layer, mb);
          return 0;
        case 'route_bwd':
          await this.backend.routeBackward(op.layer, s!.dSlotInputs!, mb);
          // This micro-batch's layer is done: let its activations go.
          layers.delete(`${mb}/${op.layer}`);
          return 0;
        case 'grads':
          gradients = await this.backend.gradientsToReduce();
          return 0;
        case 'allreduce':
          reduced = await allReduceSum(this.transport, key(op, 'ALLREDUCE'), this.fault?.beforeReduce(rank, gradients) ?? gradients, settings.timeoutMs);
          if (this.fault) reduced = this.fault.afterReduce(reduced, worldSize);
          // Reduce-scatter then all-gather: each rank sends (W-1)/W of the vector twice.
          return worldSize > 1 ? Math.round((2 * gradients.byteLength * (worldSize - 1)) / worldSize) : 0;
        case 'update':
          checksum = (await this.backend.applyUpdate(reduced)).checksum;
          return 0;
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
    };
  }
}
