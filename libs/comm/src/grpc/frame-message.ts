import { Buffer } from 'node:buffer';
import { toTensorMsg } from '../codec/tensor-msg';
import { DTYPE_BYTES, type RowDType } from '../codec/types';
import { MAX_PAYLOAD_VALUES } from '../codec/validate';
import type { FrameOut, PeerAck, PeerMessage } from '../proto/types';
import { isPhase, keyString, microBatchOf, type FrameKey } from '../transport/frame-key';
import type { OutgoingFrame } from '../transport/transport';

/** A Frame message that cannot be accepted: the message names the field and the numbers. */
export class MalformedFrameError extends Error {
  override readonly name = 'MalformedFrameError';
}

/**
 * Byte range of part `part` of `parts` in a payload of `total` data bytes: every part but the
 * last holds ceil(total / parts) bytes (the wire rule, see moe.proto Frame.parts).
 */
export function partRange(total: number, parts: number, part: number): { begin: number; end: number } {
  const size = Math.ceil(total / parts);
  return { begin: Math.min(total, part * size), end: Math.min(total, (part + 1) * size) };
}

/** Number of parts a payload of `total` data bytes travels in, each at most `maxFrameBytes`. */
export function partCount(total: number, maxFrameBytes: number): number {
  return Math.max(1, Math.ceil(total / maxFrameBytes));
}

const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/**
 * The PeerMessages carrying `frame` from rank `source`: part p holds data bytes partRange(p);
 * part 0 also carries the scales, expert ids and weights. Byte fields are views (no copy).
 */
export function framePartMessages(key: FrameKey, source: number, frame: OutgoingFrame, maxFrameBytes: number): PeerMessage[] {
  const payload = toTensorMsg(frame.payload);
  const total = frame.payload.data.byteLength;
  const parts = partCount(total, maxFrameBytes);
  const empty = Buffer.alloc(0);
  const messages: PeerMessage[] = [];
  for (let part = 0; part < parts; part++) {
    const { begin, end } = partRange(total, parts, part);
    messages.push({
      frame: {
        step: key.step,
        microBatch: microBatchOf(key),
        layer: key.layer,
        chunk: key.chunk,
        phase: key.phase,
        source,
        payload: {
          ...payload,
          data: parts === 1 ? payload.data : view(frame.payload.data.subarray(begin, end)),
          ...(payload.scales ? { scales: part === 0 ? payload.scales : empty } : {}),
        },
        expertIds: part === 0 && frame.expertIds ? view(new Uint8Array(frame.expertIds.buffer, frame.expertIds.byteOffset, frame.expertIds.byteLength)) : empty,
        weights: part === 0 && frame.weights ? view(new Uint8Array(frame.weights.buffer, frame.weights.byteOffset, frame.weights.byteLength)) : empty,
        part,
        parts,
      },
    });
  }
  return messages;
}

/** One received part of a frame, checked against its own header. */
export interface FramePart {
  key: FrameKey;
  source: number;
  part: number;
  parts: number;
  dtype: RowDType;
  rows: number;
  cols: number;
  /** 0 unless FP8_E4M3. */
  blockSize: number;
  /** Data bytes of the whole payload. */
  totalBytes: number;
  /** This part's data bytes (a view of the message). */
  data: Uint8Array;
  /** Part 0 only: float32 scales (FP8_E4M3), int32 expert ids and float32 weights, views of the message. */
  scales: Uint8Array;
  expertIds: Uint8Array;
  weights: Uint8Array;
}

/** What an ack echoes of a frame, read leniently from whatever arrived. */
export function ackOf(frame: Partial<FrameOut> | null | undefined, error = ''): PeerAck {
  return {
    step: Number(frame?.step ?? 0),
    microBatch: Number(frame?.microBatch ?? 0),
    layer: Number(frame?.layer ?? 0),
    chunk: Number(frame?.chunk ?? 0),
    phase: isPhase(frame?.phase) ? frame.phase : 'PHASE_UNSPECIFIED',
    part: Number(frame?.part ?? 0),
    error,
  };
}

/**
 * Checks a received Frame and returns its part. Throws MalformedFrameError naming what is wrong:
 * an unknown phase, a source that is not the stream's, a shape or dtype that is not rows, a part
 * index past `parts`, or a byte count that does not match what the shape needs.
 */
export function parseFramePart(frame: FrameOut, streamSource: number): FramePart {
  if (!isPhase(frame.phase)) throw new MalformedFrameError(`unknown phase ${String(frame.phase)}`);
  const key: FrameKey = { step: frame.step, microBatch: frame.microBatch, layer: frame.layer, chunk: frame.chunk, phase: frame.phase };
  const parts = frame.parts || 1;
  const part = frame.part;
  const what = `${keyString(key)} part ${part} of ${parts}`;
  if (key.layer < -1) throw new MalformedFrameError(`${what}: layer ${key.layer} (use -1 for none)`);
  if (frame.source !== streamSource) {
    throw new MalformedFrameError(`${what}: frame says source ${frame.source} but the stream's hello said ${streamSource}`);
  }
  if (part >= parts) throw new MalformedFrameError(`${what}: part index ${part} is not below parts ${parts}`);
  const payload = frame.payload;
  if (!payload) throw new MalformedFrameError(`${what}: payload is missing`);
  const dtype = payload.dtype as string;
  if (!(dtype in DTYPE_BYTES)) throw new MalformedFrameError(`${what}: dtype ${dtype} is not a row dtype (F32, BF16 or FP8_E4M3)`);
  const shape = payload.shape.map(Number);
  if (shape.length !== 1 && shape.length !== 2) {
    throw new MalformedFrameError(`${what}: shape [${shape.join(', ')}] has ${shape.length} dims; rows need [rows, cols] or [n]`);
  }
  const [rows, cols] = shape.length === 2 ? (shape as [number, number]) : [1, shape[0]!];
  if (rows * cols > MAX_PAYLOAD_VALUES) throw new MalformedFrameError(`${what}: shape [${shape.join(', ')}] holds more than ${MAX_PAYLOAD_VALUES} values`);
  const totalBytes = rows * cols * DTYPE_BYTES[dtype as RowDType];
  const { begin, end } = partRange(totalBytes, parts, part);
  if (parts > 1 && end <= begin) {
    throw new MalformedFrameError(`${what}: ${parts} parts for ${totalBytes} bytes of data leave part ${part} empty`);
  }
  if (payload.data.byteLength !== end - begin) {
    throw new MalformedFrameError(
      `${what}: ${dtype} [${rows}, ${cols}] in ${parts} parts puts ${end - begin} bytes in this part but ${payload.data.byteLength} arrived`,
    );
  }
  const blockSize = dtype === 'FP8_E4M3' ? payload.blockSize : 0;
  if (dtype === 'FP8_E4M3' && blockSize <= 0) throw new MalformedFrameError(`${what}: FP8_E4M3 needs a positive block_size, got ${blockSize}`);
  if (part === 0) {
    const scaleBytes = dtype === 'FP8_E4M3' ? 4 * Math.ceil((rows * cols) / blockSize) : 0;
    if (payload.scales.byteLength !== scaleBytes) {
      throw new MalformedFrameError(`${what}: ${dtype} [${rows}, ${cols}] needs ${scaleBytes} bytes of scales but ${payload.scales.byteLength} arrived`);
    }
    if (frame.expertIds.byteLength !== 0 && frame.expertIds.byteLength !== 4 * rows) {
      throw new MalformedFrameError(`${what}: ${frame.expertIds.byteLength} bytes of expert ids for ${rows} rows (needs ${4 * rows} or none)`);
    }
    // How many weights a row stands for is the all-to-all's to check; the wire only needs whole float32s.
    if ((frame.weights?.byteLength ?? 0) % 4 !== 0) {
      throw new MalformedFrameError(`${what}: ${frame.weights.byteLength} bytes of weights is not a whole number of float32 (a multiple of 4)`);
    }
  } else if (payload.scales.byteLength !== 0 || frame.expertIds.byteLength !== 0 || (frame.weights?.byteLength ?? 0) !== 0) {
    throw new MalformedFrameError(`${what}: scales, expert ids and weights travel in part 0 only`);
  }
  return {
    key,
    source: frame.source,
    part,
    parts,
    dtype: dtype as RowDType,
    rows,
    cols,
    blockSize,
    totalBytes,
    data: payload.data,
    scales: payload.scales,
    expertIds: frame.expertIds,
    weights: frame.weights ?? new Uint8Array(0),
  };
}
