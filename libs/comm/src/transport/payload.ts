import { checkEncoded, encodedWellFormed } from '../codec/validate';
import type { EncodedTensor } from '../codec/types';
import { keyString, type FrameKey } from './frame-key';
import type { OutgoingFrame } from './transport';

/** Payload bytes of `t` as counted by bytesSent(): data plus scales. */
export function payloadBytes(t: EncodedTensor): number {
  return t.data.byteLength + (t.scales?.byteLength ?? 0);
}

/** Checks an outgoing frame before it leaves: sizes against the shape, one expert id per row. */
export function checkOutgoing(frame: OutgoingFrame, key: FrameKey, dest: number): void {
  const idsAgree = !frame.expertIds || frame.expertIds.length === frame.payload.rows;
  if (idsAgree && encodedWellFormed(frame.payload)) return; // every frame: no message built
  const what = `${keyString(key)} to rank ${dest}`;
  checkEncoded(frame.payload, what);
  if (!idsAgree) {
    throw new RangeError(`${what}: ${frame.expertIds!.length} expert ids for ${frame.payload.rows} rows`);
  }
}

/** A deep copy of a frame's payload, expert ids and weights (what a real wire would do to the sender's memory). */
export function copyFrame(frame: OutgoingFrame): OutgoingFrame {
  const p = frame.payload;
  const payload: EncodedTensor = { ...p, data: p.data.slice() };
  if (p.scales) payload.scales = p.scales.slice();
  const copy: OutgoingFrame = { payload };
  if (frame.expertIds) copy.expertIds = frame.expertIds.slice();
  // The wire drops an empty field: an empty weight list arrives as none.
  if (frame.weights && frame.weights.length > 0) copy.weights = frame.weights.slice();
  return copy;
}
