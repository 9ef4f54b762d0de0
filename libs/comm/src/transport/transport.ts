import type { EncodedTensor } from '../codec/types';
import type { FrameKey } from './frame-key';

/** One frame a rank sends to one peer for one key. */
export interface OutgoingFrame {
  /** [rows, cols] rows in a wire codec; rows may be 0 (an empty frame still travels). */
  payload: EncodedTensor;
  /** [rows] global expert id of each row (DISPATCH and COMBINE_BACKWARD); absent otherwise. */
  expertIds?: Int32Array;
  /** Exact f32 per (row, expert) the rows stand for (the hierarchical all-to-all's combine weights and their gradients, see moe.proto Frame.weights); absent otherwise. */
  weights?: Float32Array;
}

/** One frame as received from rank `source`; its memory belongs to the receiver (no one else holds it). */
export interface IncomingFrame {
  source: number;
  payload: EncodedTensor;
  /** [rows] global expert id of each row, when the sender sent them. */
  expertIds?: Int32Array;
  /** Per (row, expert) weights, when the sender sent any. */
  weights?: Float32Array;
}

/**
 * Moves frames between the ranks of one run. Implementations: in-memory (tests) and gRPC.
 * Callers never branch on which one they have.
 */
export interface Transport {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Sends `frame` to rank `dest` for `key`; resolves once the peer accepted it into its mailbox.
   * Waits while too many frames are unacknowledged (backpressure). Rejects with
   * PeerUnreachableError when the peer cannot be reached, PeerRefusedError when it refused the frame.
   * The payload's memory must not change until the promise settles.
   */
  send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void>;
  /** The frame rank `source` sent for `key`; rejects with ReceiveTimeoutError after `timeoutMs`. */
  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame>;
  /** Payload bytes (data + scales) sent to other ranks so far. */
  bytesSent(): number;
  close(): Promise<void>;
}
