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
import type { Backend, ExpertRows, RouteOutput, StepBatch } from '../backend';
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
    const where = `${op.kind}${op.layer >= 0 ? ` layer ${op.layer}` : ''}${op.chunk >= 0 ? ` chunk ${op.chunk}` : ''}`;
    super(`rank ${rank}, step ${step}, op ${where}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** What one layer carries between its ops during a step. */
interface LayerState {
  route?: RouteOutput;
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

  async run(ops: readonly Op[], batch: StepBatch, settings: ExecuteSettings): Promise<StepOutcome> {
    const timeline = new TimelineRecorder();
    const layers: LayerState[] = [];
    const layer = (l: number): LayerState =>
      (layers[l] ??= {
        layouts: [],
        handles: [],
        received: [],
        expertOutputs: [],
        backwardHandles: [],
        backwardReceived: [],
        expertInputGrads: [],
      });
    const chunkCount = Math.max(1, ...ops.map((op) => op.chunk + 1));
    const hidden = this.backend.hiddenSize();
    const topK = this.backend.topK();
    const tokens = batch.inputs.length;
    const slots = tokens * topK;
    const { rank, worldSize } = this.transport;
    const key = (op: Op, phase: Phase): FrameKey => ({ step: batch.step, layer: op.layer, chunk: Math.max(0, op.chunk), phase });
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
        const { layer, chunk, direction } = op;
        timeline.record({ name: `${op.kind}.${hop.link}`, stream: 'comm', layer, chunk, startMs: hop.startMs, endMs: hop.endMs, bytesSent: hop.bytes, direction });
      }
      return result.bytes.intra + result.bytes.inter;
    };

    let loss = { lossSum: 0, auxLoss: 0 };
    let gradients: Float32Array = new Float32Array(0);
    let reduced: Float32Array = new Float32Array(0);
    let checksum = '';
    let bytesSent = 0;

    const runOp = async (op: Op): Promise<number> => {
      const s = op.layer >= 0 ? layer(op.layer) : undefined;
      switch (op.kind) {
        case 'begin':
          await this.backend.beginStep(batch);
          return 0;
        case 'route': {
          const route = await this.backend.route(op.layer);
          s!.route = route;
          for (let c = 0; c < chunkCount; c++) {
            const range = chunkTokenRange(tokens, chunkCount, c);
            s!.layouts[c] = dispatchLayout(route.expertIds, this.expertOwner, worldSize, {
              begin: range.begin * topK,
              end: range.end * topK,
            });
          }
          s!.slotOutputs = new Float32Array(slots * hidden);
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
          await this.backend.sharedExperts(op.layer);
          return 0;
        case 'experts':
          s!.expertOutputs[op.chunk] = await this.backend.experts(op.layer, op.chunk, toExpertRows(s!.received[op.chunk]!));
          return 0;
        case 'combine': {
          const result = await a2a.combine(this.transport, key(op, 'COMBINE'), s!.handles[op.chunk]!, s!.expertOutputs[op.chunk]!, {
            codec: settings.combineCodec,
            timeoutMs: settings.timeoutMs,
            into: s!.slotOutputs,
          });
          const range = chunkTokenRange(tokens, chunkCount, op.chunk);
          const slotRange = { begin: range.begin * topK, end: range.end * topK };
          this.fault?.afterCombine(rank, op.layer, s!.layouts[op.chunk]!, slotRange, op.chunk === chunkCount - 1, s!.slotOutputs!, hidden);
          return sent(op, result);
        }
        case 'post':
          await this.backend.combineOutputs(op.layer, s!.slotOutputs!);
          return 0;
        case 'loss':
          loss = await this.backend.lossAndHeadBackward();
          return 0;
        case 'post_bwd':
          s!.dSlotOutputs = await this.backend.combineOutputsBackward(op.layer);
          s!.dSlotInputs = new Float32Array(slots * hidden);
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
          );
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
          await this.backend.sharedExpertsBackward(op.layer);
          return 0;
        case 'route_bwd':
          await this.backend.routeBackward(op.layer, s!.dSlotInputs!);
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
        const flight = this.observer?.opStart(batch.step, op);
        let bytes: number;
        try {
          bytes = await runOp(op);
        } catch (error) {
          if (flight) this.observer!.opEnd(flight, error instanceof StepOpError ? error.cause : error);
          throw error instanceof StepOpError ? error : new StepOpError(op, batch.step, rank, error);
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
