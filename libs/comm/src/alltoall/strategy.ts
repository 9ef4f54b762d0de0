/**
 * One interface for both all-to-all strategies, so the step executor never branches on which it
 * runs: `flat` (every row straight to its expert's rank) and `hierarchical` (hierarchical.ts: across
 * nodes once per row and node, then within the node). Both report the bytes they sent by link class.
 */
import type { CodecName } from '../codec/types';
import type { FrameKey } from '../transport/frame-key';
import type { Transport } from '../transport/transport';
import { combine } from './combine';
import { dispatch, type DispatchHandle, type DispatchOptions, type ReceivedRows } from './dispatch';
import { flatLinkBytes, hierarchicalCombine, hierarchicalDispatch, type HierarchicalHandle } from './hierarchical';
import type { DispatchLayout } from './layout';
import { nodeLayout, type HopTiming, type LinkBytes } from './node-layout';
import type { ReplicaPlacement } from './replicas';

export const ALL_TO_ALL_MODES = ['flat', 'hierarchical'] as const;
export type AllToAllMode = (typeof ALL_TO_ALL_MODES)[number];

/** A dispatch's handle, whichever strategy made it; `received[o]`: rows received from rank o. */
export type AllToAllHandle = { kind: 'flat'; flat: DispatchHandle; received: number[] } | { kind: 'hierarchical'; hierarchical: HierarchicalHandle; received: number[] };

export interface AllToAllStrategy {
  readonly mode: AllToAllMode;
  dispatch(
    transport: Transport,
    key: FrameKey,
    layout: DispatchLayout,
    source: Float32Array,
    cols: number,
    options: DispatchOptions,
  ): Promise<{ received: ReceivedRows[]; handle: AllToAllHandle; bytes: LinkBytes; hops: HopTiming[] }>;
  combine(
    transport: Transport,
    key: FrameKey,
    handle: AllToAllHandle,
    outputs: Float32Array[],
    options: { codec: CodecName; timeoutMs: number; into?: Float32Array },
  ): Promise<{ out: Float32Array; bytes: LinkBytes; hops: HopTiming[] }>;
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
    return {
      mode,
      async dispatch(transport, key, layout, source, cols, options) {
        const { received, handle } = await dispatch(transport, key, layout, source, cols, options);
        const rowsTo = layout.slotsTo.map((s) => s.length);
        return { received, handle: { kind: 'flat', flat: handle, received: handle.received }, bytes: flatLinkBytes(rowsTo, transport.rank, nodeSize, cols, options.codec), hops: [] };
      },
      async combine(transport, key, handle, outputs, options) {
        if (handle.kind !== 'flat') throw new TypeError(`flat combine ${key.phase} given a ${handle.kind} dispatch's handle`);
        const out = await combine(transport, key, handle.flat, outputs, options);
        return { out, bytes: flatLinkBytes(handle.received, transport.rank, nodeSize, handle.flat.cols, options.codec), hops: [] };
      },
    };
  }
  const nl = nodeLayout(expertOwner, worldSize, nodeSize);
  return {
    mode,
    async dispatch(transport, key, layout, source, cols, options) {
      const { received, handle, bytes, hops } = await hierarchicalDispatch(transport, key, layout, source, cols, nl, options, clock);
      return { received, handle: { kind: 'hierarchical', hierarchical: handle, received: handle.received }, bytes, hops };
    },
    async combine(transport, key, handle, outputs, options) {
      if (handle.kind !== 'hierarchical') throw new TypeError(`hierarchical combine ${key.phase} given a ${handle.kind} dispatch's handle`);
      return hierarchicalCombine(transport, key, handle.hierarchical, outputs, nl, options, clock);
    },
  };
}
