/**
 * One interface for both all-to-all strategies, so the step executor never branches on which it
 * runs: `flat` (every row straight to its expert's rank and back) and `hierarchical` (across nodes
 * once per token and node, then within the node; the combine reduces within the node first, see
 * hierarchical-handle.ts). Four verbs, as DeepEP's: dispatch and combine forward, and their
 * backwards (combineBackward sends the output gradients out as a dispatch does, dispatchBackward
 * brings the input gradients back as a combine does), each handing its handle to the next.
 * `form` says where a token's routed rows are summed, which fixes the rows a combine returns.
 * All four report the bytes they sent by link class.
 */
import type { RoutedForm } from '@moe/model';
import { encodedBytes } from '../codec/rows';
import type { CodecName } from '../codec/types';
import type { FrameKey } from '../transport/frame-key';
import type { Transport } from '../transport/transport';
import { combine } from './combine';
import { dispatch, type DispatchHandle, type DispatchOptions, type ReceivedRows } from './dispatch';
import { hierarchicalCombine, hierarchicalDispatchBackward } from './hierarchical-combine';
import { hierarchicalCombineBackward, hierarchicalDispatch } from './hierarchical-dispatch';
import type { HierarchicalBackwardHandle, HierarchicalHandle } from './hierarchical-handle';
import type { DispatchLayout } from './layout';
import { nodeLayout, type HopTiming, type LinkBytes } from './node-layout';
import type { ReplicaPlacement } from './replicas';

export const ALL_TO_ALL_MODES = ['flat', 'hierarchical'] as const;
export type AllToAllMode = (typeof ALL_TO_ALL_MODES)[number];

/** A dispatch's handle, whichever strategy made it; `received[o]`: rows received from rank o. */
export type AllToAllHandle = { kind: 'flat'; flat: DispatchHandle; received: number[] } | { kind: 'hierarchical'; hierarchical: HierarchicalHandle; received: number[] };
/** A combineBackward's handle, for the dispatchBackward that returns its rows. */
export type AllToAllBackwardHandle = { kind: 'flat'; flat: DispatchHandle } | { kind: 'hierarchical'; hierarchical: HierarchicalBackwardHandle };

export interface CombineStepOptions {
  codec: CodecName;
  timeoutMs: number;
  /** The array to write into (one per layer, filled chunk by chunk); allocated when absent. */
  into?: Float32Array;
}

type Sent = { bytes: LinkBytes; hops: HopTiming[] };

export interface AllToAllStrategy {
  readonly mode: AllToAllMode;
  /**
   * `slots`: combine and dispatchBackward return one row per slot [S, H] and the token's rank
   * weights and sums them; `tokens`: they return one row per token [T, H], weighted (combine) and
   * summed within each node on the way, and dispatchBackward returns the weight gradients too.
   */
  readonly form: RoutedForm;
  /** Rows in [rowOfSlot rows, cols] `source` to the slots' experts; options.weights required by `hierarchical`. */
  dispatch(
    transport: Transport,
    key: FrameKey,
    layout: DispatchLayout,
    source: Float32Array,
    cols: number,
    options: DispatchOptions,
  ): Promise<{ received: ReceivedRows[]; handle: AllToAllHandle } & Sent>;
  /** The experts' outputs (by origin, as received) back: [S, H] (`slots`) or [T, H] weighted sums (`tokens`). */
  combine(transport: Transport, key: FrameKey, handle: AllToAllHandle, outputs: Float32Array[], options: CombineStepOptions): Promise<{ out: Float32Array } & Sent>;
  /**
   * The gradients of the combine's rows, in its form ([S, H] or [T, H]), out to the experts; the
   * experts receive the gradients of their outputs, by origin, as the dispatch delivered their inputs.
   * @param options.expertIds [S] the ids the forward dispatch sent (the flat backward sends them again)
   */
  combineBackward(
    transport: Transport,
    key: FrameKey,
    handle: AllToAllHandle,
    grads: Float32Array,
    options: { expertIds: Int32Array; codec: CodecName; timeoutMs: number },
  ): Promise<{ received: ReceivedRows[]; handle: AllToAllBackwardHandle } & Sent>;
  /**
   * The experts' input gradients back: [S, H] (`slots`) or [T, H] summed per token (`tokens`, with
   * dWeights [S], the gradient of each slot's combine weight, written into options.dWeightsInto).
   */
  dispatchBackward(
    transport: Transport,
    key: FrameKey,
    handle: AllToAllBackwardHandle,
    inputGrads: Float32Array[],
    options: CombineStepOptions & { dWeightsInto?: Float32Array },
  ): Promise<{ out: Float32Array } & Sent>;
}

/**
 * @param expertOwner [E] rank of each expert, or a placement with redundant experts (the
 *   hierarchical forwarders then fan out to the copy each source chose)
 * @param nodeSize ranks per node (consecutive ranks); the world when every rank shares one node
 * @param clock the caller's clock (ms) for the hops' timings; a flat all-to-all has no hops
 * @throws LayoutError (hierarchical) when the world is not whole nodes or a node holds over 32 experts
 */
export function allToAllStrategy(
  mode: AllToAllMode,
  expertOwner: ArrayLike<number> | ReplicaPlacement,
  worldSize: number,
  nodeSize: number,
  clock: () => number = () => performance.now(),
): AllToAllStrategy {
  if (mode === 'flat') {
    const flatOf = <H extends { kind: string }>(handle: H, verb: string): Extract<H, { kind: 'flat' }> => {
      if (handle.kind !== 'flat') throw new TypeError(`flat ${verb} given a ${handle.kind} all-to-all's handle`);
      return handle as Extract<H, { kind: 'flat' }>;
    };
    const bytesOf = (rowsTo: ArrayLike<number>, rank: number, cols: number, codec: CodecName): Sent => ({ bytes: flatLinkBytes(rowsTo, rank, nodeSize, cols, codec), hops: [] });
    return {
      mode,
      form: 'slots',
      async dispatch(transport, key, layout, source, cols, options) {
        const { received, handle } = await dispatch(transport, key, layout, source, cols, options);
        const rowsTo = layout.slotsTo.map((s) => s.length);
        return { received, handle: { kind: 'flat', flat: handle, received: handle.received }, ...bytesOf(rowsTo, transport.rank, cols, options.codec) };
      },
      async combine(transport, key, handle, outputs, options) {
        const { flat } = flatOf(handle, 'combine');
        const out = await combine(transport, key, flat, outputs, options);
        return { out, ...bytesOf(flat.received, transport.rank, flat.cols, options.codec) };
      },
      async combineBackward(transport, key, handle, grads, options) {
        const { layout, cols } = flatOf(handle, 'combine backward').flat;
        const { received, handle: backward } = await dispatch(transport, key, layout, grads, cols, { ...options, rowOfSlot: (slot) => slot });
        const rowsTo = layout.slotsTo.map((s) => s.length);
        return { received, handle: { kind: 'flat', flat: backward }, ...bytesOf(rowsTo, transport.rank, cols, options.codec) };
      },
      async dispatchBackward(transport, key, handle, inputGrads, options) {
        const { flat } = flatOf(handle, 'dispatch backward');
        const out = await combine(transport, key, flat, inputGrads, options);
        return { out, ...bytesOf(flat.received, transport.rank, flat.cols, options.codec) };
      },
    };
  }
  const nl = nodeLayout(expertOwner, worldSize, nodeSize);
  const hierarchicalOf = <H extends { kind: string }>(handle: H, verb: string): Extract<H, { kind: 'hierarchical' }> => {
    if (handle.kind !== 'hierarchical') throw new TypeError(`hierarchical ${verb} given a ${handle.kind} all-to-all's handle`);
    return handle as Extract<H, { kind: 'hierarchical' }>;
  };
  return {
    mode,
    form: 'tokens',
    async dispatch(transport, key, layout, source, cols, options) {
      const { received, handle, bytes, hops } = await hierarchicalDispatch(transport, key, layout, source, cols, nl, options, clock);
      return { received, handle: { kind: 'hierarchical', hierarchical: handle, received: handle.received }, bytes, hops };
    },
    async combine(transport, key, handle, outputs, options) {
      return hierarchicalCombine(transport, key, hierarchicalOf(handle, 'combine').hierarchical, outputs, nl, options, clock);
    },
    async combineBackward(transport, key, handle, grads, options) {
      const { received, handle: backward, bytes, hops } = await hierarchicalCombineBackward(transport, key, hierarchicalOf(handle, 'combine backward').hierarchical, grads, nl, options, clock);
      return { received, handle: { kind: 'hierarchical', hierarchical: backward }, bytes, hops };
    },
    async dispatchBackward(transport, key, handle, inputGrads, options) {
      const { out, bytes, hops } = await hierarchicalDispatchBackward(transport, key, hierarchicalOf(handle, 'dispatch backward').hierarchical, inputGrads, nl, options, clock);
      return { out, bytes, hops };
    },
  };
}

/** Bytes a flat all-to-all frame list costs by link class (frames to this rank excluded). */
export function flatLinkBytes(rowsTo: ArrayLike<number>, rank: number, nodeSize: number, cols: number, codec: CodecName): LinkBytes {
  const bytes: LinkBytes = { intra: 0, inter: 0 };
  for (let d = 0; d < rowsTo.length; d++) {
    if (d === rank) continue;
    const b = encodedBytes(rowsTo[d]!, cols, codec);
    if (Math.floor(d / nodeSize) === Math.floor(rank / nodeSize)) bytes.intra += b;
    else bytes.inter += b;
  }
  return bytes;
}
