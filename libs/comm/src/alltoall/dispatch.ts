import { decodeRowsShared, encodeRowsOf } from '../codec/rows';
import type { CodecName } from '../codec/types';
import { keyString, type FrameKey } from '../transport/frame-key';
import type { OutgoingFrame, Transport } from '../transport/transport';
import { AllToAllShapeError } from './errors';
import { exchange } from './exchange';
import type { DispatchLayout } from './layout';

/** Rows one rank received in a dispatch. */
export interface ReceivedRows {
  source: number;
  /** [count, cols] decoded rows, in the sender's slot order (ascending slot). */
  rows: Float32Array;
  /** [count] global expert id of each row; -1 when the sender sent none. */
  expertIds: Int32Array;
  count: number;
}

/**
 * What a combine (or the backward) needs to send rows back where they came from:
 * the layout of this rank's own slots, and how many rows it received from each source.
 */
export interface DispatchHandle {
  key: FrameKey;
  layout: DispatchLayout;
  /** [worldSize] rows received from each source rank. */
  received: number[];
  cols: number;
}

export interface DispatchOptions {
  /** Row of `source` that slot `slot` carries (forward: token = floor(slot / topK); backward: the slot itself). */
  rowOfSlot: (slot: number) => number;
  /** [S] global expert id per slot, sent with the rows (the receivers' experts need them). */
  expertIds?: Int32Array;
  /**
   * [S] combine weight per slot. The hierarchical all-to-all carries them to the nodes that reduce
   * its combine (and needs them); the flat one leaves the weighting to the token's rank.
   */
  weights?: Float32Array;
  /**
   * Codec of the rows. Rows for this rank's own experts are encoded and decoded too (never sent),
   * so a row is rounded the same wherever its expert lives and the reference can round it alike.
   */
  codec: CodecName;
  timeoutMs: number;
}

/**
 * Sends each slot's row to the rank owning the slot's expert and receives the rows other ranks
 * send here. Every rank sends one frame to every other rank, empty when it has no rows for it.
 * @param layout this rank's slots by destination (from dispatchLayout).
 * @param source [R, cols] rows to take from, picked by `options.rowOfSlot`.
 * @returns received: by source rank (this rank's own rows included, never sent but rounded by the
 *   codec as sent rows are), rows in the sender's slot order; handle: for the matching combine.
 */
export async function dispatch(
  transport: Transport,
  key: FrameKey,
  layout: DispatchLayout,
  source: Float32Array,
  cols: number,
  options: DispatchOptions,
): Promise<{ received: ReceivedRows[]; handle: DispatchHandle }> {
  const { rank, worldSize } = transport;
  const what = `dispatch ${keyString(key)} on rank ${rank}`;
  if (layout.slotsTo.length !== worldSize) {
    throw new AllToAllShapeError(`${what}: layout has ${layout.slotsTo.length} destinations for a world of ${worldSize}`);
  }
  if (!Number.isInteger(cols) || cols <= 0 || source.length % cols !== 0) {
    throw new AllToAllShapeError(`${what}: source has ${source.length} values, not a whole number of rows of ${cols}`);
  }
  const sourceRows = source.length / cols;
  const ids = options.expertIds;
  if (ids && ids.length < layout.slotCount) {
    throw new AllToAllShapeError(`${what}: ${ids.length} expert ids for ${layout.slotCount} slots`);
  }

  const packedIds: (Int32Array | undefined)[] = [];
  const outgoing: OutgoingFrame[] = [];
  for (let dest = 0; dest < worldSize; dest++) {
    const slots = layout.slotsTo[dest]!;
    // each slot's row checked as the encoder takes it (one call a slot)
    const rowOf = (i: number): number => {
      const row = options.rowOfSlot(slots[i]!);
      if (!(row >= 0 && row < sourceRows)) {
        throw new AllToAllShapeError(`${what}: slot ${slots[i]} maps to row ${row}, outside the ${sourceRows} source rows`);
      }
      return row;
    };
    packedIds[dest] = ids ? Int32Array.from(slots, (slot) => ids[slot]!) : undefined;
    const payload = encodeRowsOf(source, cols, slots.length, rowOf, options.codec);
    outgoing[dest] = packedIds[dest] ? { payload, expertIds: packedIds[dest] } : { payload };
  }

  const incoming = await exchange(transport, key, outgoing, options.timeoutMs);
  const received = incoming.map((frame, src): ReceivedRows => {
    if (src === rank) {
      const count = layout.slotsTo[rank]!.length;
      // f32 decodes to a view of the packed rows; a lossy codec rounds the rows as a peer would see them
      return { source: src, rows: decodeRowsShared(frame.payload), expertIds: packedIds[rank] ?? new Int32Array(count).fill(-1), count };
    }
    const { rows: count, cols: frameCols } = frame.payload;
    if (frameCols !== cols && count > 0) {
      throw new AllToAllShapeError(`${what}: rank ${src} sent ${count} rows of ${frameCols} values; rows here have ${cols}`);
    }
    if (frame.expertIds && frame.expertIds.length !== count) {
      throw new AllToAllShapeError(`${what}: rank ${src} sent ${frame.expertIds.length} expert ids for ${count} rows`);
    }
    return { source: src, rows: decodeRowsShared(frame.payload), expertIds: frame.expertIds ?? new Int32Array(count).fill(-1), count };
  });
  return { received, handle: { key, layout, received: received.map((r) => r.count), cols } };
}
