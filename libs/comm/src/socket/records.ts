/**
 * The socket data plane's wire format (version 2). Every record is a fixed 64-byte header,
 * little-endian, then `bodyBytes` of body:
 *
 *   offset  0 u8  kind          (hello, welcome, refuse, frame, ack, bye)
 *           1 u8  version       (WIRE_VERSION; a record of another version is refused)
 *           2 u8  phase         (frame: index in PHASES)
 *           3 u8  dtype         (frame: index in WIRE_DTYPES)
 *           4 u32 bodyBytes
 *           8 u32 seq           (frame: the sender's sequence number on this connection;
 *                                ack: how many frames are settled, see AckRecord)
 *          12 i32 layer        16 f64 step        24 u32 microBatch  28 u32 chunk
 *          32 u32 rows         36 u32 cols        40 u32 blockSize   44 u32 idBytes
 *          48 u32 scaleBytes   52 u32 dataBytes   56..63 zero
 *
 * A frame's body is its expert ids, scales and data, in that order (each starts 4-byte aligned
 * in a buffer of its own). A fixed binary header costs a few stores and loads a frame, where a
 * JSON one cost a string build and a parse.
 *
 * A connection is dialed by the rank that will RECEIVE frames on it: its `hello` (run, its rank,
 * the cluster token; a JSON body) is answered by the sender's `welcome` or `refuse`; then the
 * sender writes frames and the receiver answers with acks; either side ends with `bye`. A
 * connection that ends without `bye` is a peer lost mid-stream.
 */
import { Buffer } from 'node:buffer';
import { PHASES, type FrameKey, type Phase } from '../transport/frame-key';
import type { RowDType } from '../codec/types';

export const WIRE_VERSION = 2;
export const HEADER_BYTES = 64;
/** Largest body of any record but a frame (a hello, a refusal, an ack's error). */
export const MAX_SMALL_BODY_BYTES = 64 * 1024;

export const WIRE_DTYPES: readonly RowDType[] = ['F32', 'BF16', 'FP8_E4M3'];

export const RecordKind = { Hello: 1, Welcome: 2, Refuse: 3, Frame: 4, Ack: 5, Bye: 6 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

const KIND_NAMES = ['?', 'hello', 'welcome', 'refuse', 'frame', 'ack', 'bye'];

/** What a record is called in messages ("frame", "ack", ...). */
export const kindName = (kind: number): string => KIND_NAMES[kind] ?? `kind ${kind}`;

export interface HelloBody {
  runId: string;
  /** The dialing (receiving) rank. */
  rank: number;
  /** The cluster token ("" when the dialer has none). */
  token: string;
}

/** A frame's header fields. */
export interface FrameHeader {
  seq: number;
  key: FrameKey;
  dtype: RowDType;
  rows: number;
  cols: number;
  /** 0 unless FP8_E4M3. */
  blockSize: number;
  idBytes: number;
  scaleBytes: number;
  dataBytes: number;
}

/** One record as read: its kind, its header (a view), and its body (a buffer the receiver owns). */
export interface ReadRecord {
  kind: RecordKind;
  header: DataView;
  body: Uint8Array;
}

/** Bytes that break the socket protocol (an unknown kind or version, a body too large, a record out of place). */
export class SocketProtocolError extends Error {
  override readonly name = 'SocketProtocolError';
}

function header(kind: RecordKind, bodyBytes: number, extra = 0): { buf: Buffer; view: DataView } {
  const buf = Buffer.alloc(HEADER_BYTES + extra);
  const view = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
  view.setUint8(0, kind);
  view.setUint8(1, WIRE_VERSION);
  view.setUint32(4, bodyBytes, true);
  return { buf, view };
}

/** A record whose body is small (or none): header and body in one buffer. */
export function encodeRecord(kind: RecordKind, body: Uint8Array = new Uint8Array(0), seq = 0): Buffer {
  const { buf, view } = header(kind, body.byteLength, body.byteLength);
  view.setUint32(8, seq, true);
  buf.set(body, HEADER_BYTES);
  return buf;
}

export const encodeHello = (hello: HelloBody): Buffer => encodeRecord(RecordKind.Hello, Buffer.from(JSON.stringify(hello)));
export const encodeRefuse = (reason: string): Buffer => encodeRecord(RecordKind.Refuse, Buffer.from(reason));

/**
 * An ack: every frame with seq below `settled` is settled, accepted unless `error` is given, in
 * which case frame `settled - 1` was refused for that reason (and the ones before it accepted).
 */
export const encodeAck = (settled: number, error = ''): Buffer => encodeRecord(RecordKind.Ack, error ? Buffer.from(error) : undefined, settled);

/**
 * A frame's header followed by its expert ids and scales, in one buffer (those are small: a
 * copy is cheaper than another write); the data goes out as it is, a view.
 */
export function encodeFrameHead(f: FrameHeader, expertIds?: Uint8Array, scales?: Uint8Array): Buffer {
  const { buf, view } = header(RecordKind.Frame, f.idBytes + f.scaleBytes + f.dataBytes, f.idBytes + f.scaleBytes);
  view.setUint8(2, PHASES.indexOf(f.key.phase));
  view.setUint8(3, WIRE_DTYPES.indexOf(f.dtype));
  view.setUint32(8, f.seq, true);
  view.setInt32(12, f.key.layer, true);
  view.setFloat64(16, f.key.step, true);
  view.setUint32(24, f.key.microBatch ?? 0, true);
  view.setUint32(28, f.key.chunk, true);
  view.setUint32(32, f.rows, true);
  view.setUint32(36, f.cols, true);
  view.setUint32(40, f.blockSize, true);
  view.setUint32(44, f.idBytes, true);
  view.setUint32(48, f.scaleBytes, true);
  view.setUint32(52, f.dataBytes, true);
  if (expertIds) buf.set(expertIds, HEADER_BYTES);
  if (scales) buf.set(scales, HEADER_BYTES + f.idBytes);
  return buf;
}

/** A frame header as read; throws SocketProtocolError on a phase, dtype or size that makes no sense. */
export function decodeFrameHeader(h: DataView): FrameHeader {
  const phase: Phase | undefined = PHASES[h.getUint8(2)];
  const dtype = WIRE_DTYPES[h.getUint8(3)];
  if (!phase) throw new SocketProtocolError(`frame header: phase index ${h.getUint8(2)} is not one of ${PHASES.length} phases`);
  if (!dtype) throw new SocketProtocolError(`frame header: dtype index ${h.getUint8(3)} is not one of ${WIRE_DTYPES.join(', ')}`);
  const step = h.getFloat64(16, true);
  if (!Number.isSafeInteger(step) || step < 0) throw new SocketProtocolError(`frame header: step ${step} is not a step number`);
  const f: FrameHeader = {
    seq: h.getUint32(8, true),
    key: { step, microBatch: h.getUint32(24, true), layer: h.getInt32(12, true), chunk: h.getUint32(28, true), phase },
    dtype,
    rows: h.getUint32(32, true),
    cols: h.getUint32(36, true),
    blockSize: h.getUint32(40, true),
    idBytes: h.getUint32(44, true),
    scaleBytes: h.getUint32(48, true),
    dataBytes: h.getUint32(52, true),
  };
  const bodyBytes = h.getUint32(4, true);
  if (f.idBytes + f.scaleBytes + f.dataBytes !== bodyBytes) {
    throw new SocketProtocolError(`frame header: ${f.idBytes} + ${f.scaleBytes} + ${f.dataBytes} bytes of ids, scales and data, but a body of ${bodyBytes}`);
  }
  return f;
}

/** The text of a hello, refusal or ack-error body. */
export const bodyText = (body: Uint8Array): string => Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');

/** A hello's body; throws SocketProtocolError when it is not one. */
export function decodeHello(body: Uint8Array): HelloBody {
  let value: Partial<HelloBody> | null;
  try {
    value = JSON.parse(bodyText(body)) as Partial<HelloBody> | null;
  } catch (error) {
    throw new SocketProtocolError(`hello body of ${body.byteLength} bytes is not JSON: ${(error as Error).message}`);
  }
  if (typeof value?.runId !== 'string' || !Number.isInteger(value.rank) || (value.rank as number) < 0) {
    throw new SocketProtocolError('hello body needs a runId (string) and a rank (integer >= 0)');
  }
  return { runId: value.runId, rank: value.rank as number, token: typeof value.token === 'string' ? value.token : '' };
}
