import { decodeRowsInto, encodeRows } from '../codec/rows';
import type { CodecName } from '../codec/types';
import { keyString, type FrameKey } from '../transport/frame-key';
import type { OutgoingFrame, Transport } from '../transport/transport';
import type { DispatchHandle } from './dispatch';
import { AllToAllShapeError } from './errors';
import { exchange } from './exchange';

export interface CombineOptions {
  /** Codec of the rows; this rank's own rows are encoded and decoded too (never sent), as in dispatch. */
  codec: CodecName;
  timeoutMs: number;
  /** [S, cols] array to scatter into (e.g. one per layer, filled chunk by chunk); allocated when absent. */
  into?: Float32Array;
}

/**
 * The reverse of a dispatch: sends `outputs[src]` back to rank src and scatters the rows coming
 * back to this rank into their slots.
 * @param handle from the dispatch whose rows these are.
 * @param outputs by source rank: [handle.received[src], cols], rows in the order they were received.
 * @returns [S, cols] in slot order: row s is the result for slot s; rows of slots outside the
 *   layout (other chunks, dropped slots) are left untouched.
 */
export async function combine(
  transport: Transport,
  key: FrameKey,
  handle: DispatchHandle,
  outputs: Float32Array[],
  options: CombineOptions,
): Promise<Float32Array> {
  const { rank, worldSize } = transport;
  const { layout, cols } = handle;
  const what = `combine ${keyString(key)} on rank ${rank}`;
  if (outputs.length !== worldSize) throw new AllToAllShapeError(`${what}: ${outputs.length} outputs for a world of ${worldSize}`);
  const outgoing: OutgoingFrame[] = outputs.map((rows, src) => {
    const count = handle.received[src]!;
    if (rows.length !== count * cols) {
      throw new AllToAllShapeError(
        `${what}: outputs[${src}] has ${rows.length} values; rank ${src} sent ${count} rows of ${cols} (needs ${count * cols})`,
      );
    }
    return { payload: encodeRows(rows, count, cols, options.codec) };
  });
  const out = options.into ?? new Float32Array(layout.slotCount * cols);
  if (out.length !== layout.slotCount * cols) {
    throw new AllToAllShapeError(`${what}: into has ${out.length} values; ${layout.slotCount} slots of ${cols} need ${layout.slotCount * cols}`);
  }

  const incoming = await exchange(transport, key, outgoing, options.timeoutMs);
  for (let dest = 0; dest < worldSize; dest++) {
    const slots = layout.slotsTo[dest]!;
    const { rows: count, cols: frameCols } = incoming[dest]!.payload;
    if (count !== slots.length || (count > 0 && frameCols !== cols)) {
      throw new AllToAllShapeError(
        `${what}: rank ${dest} sent back ${count} rows of ${frameCols} values; this rank sent it ${slots.length} rows of ${cols}`,
      );
    }
    decodeRowsInto(incoming[dest]!.payload, out, (i) => slots[i]!);
  }
  return out;
}
