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
 *                                ack: how many frames are settled, see encodeAck)
 *          12 i32 layer        (ack: the generation of the connection whose frames it settles)
 *          16 f64 step        24 u32 microBatch  28 u32 chunk
 *          32 u32 rows         36 u32 cols        40 u32 blockSize   44 u32 idBytes
 *          48 u32 scaleBytes   52 u32 dataBytes   56 u32 weightBytes  60..63 zero
 *
 * A frame's body is its expert ids, weights (moe.proto Frame.weights), scales and data, in that order (each starts 4-byte aligned
 * in a buffer of its own). A fixed binary header costs a few stores and loads a frame, where a
 * JSON one cost a string build and a parse.
 *
 * A connection is dialed by the rank that will RECEIVE frames on it: its `hello` (run, its rank,
 * the cluster token, which dial of this link it is; a JSON body) is answered by the sender's
 * `welcome` or `refuse`; then the sender writes frames; either side ends with `bye`. A
 * connection that ends without `bye` is a peer lost mid-stream. Acks of the frames of one
 * connection go back on the other connection between the same two ranks when it is up (the
 * one the receiver writes its own frames on: the sender reads it with `onread`, and an ack
 * often leaves in the same write as a frame), else back on the frames' own connection; either
 * way they carry that connection's generation, so acks of a connection that broke are ignored.
 */
import { Buffer } from 'node:buffer';
import { keyString, PHASES, type FrameKey, type Phase } from '../transport/frame-key';
import { DTYPE_BYTES, type RowDType } from '../codec/types';
import { MAX_PAYLOAD_VALUES } from '../codec/validate';

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
  /** Which dial of this link (1, 2, ... after a reconnect): acks name it. */
  generation: number;
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
  /** Float32 combine weights (moe.proto Frame.weights); 0: none. */
  weightBytes: number;
  scaleBytes: number;
  dataBytes: number;
}

/**
 * Takes one record as read: its kind; its header, as the 64 bytes of `head` from `at` (valid
 * only during the call: they are the reader's scratch); and its body, a buffer the callee may keep.
 */
export type RecordHandler = (kind: RecordKind, head: Buffer, at: number, body: Buffer) => void;

/** Bytes that break the socket protocol (an unknown kind or version, a body too large, a record out of place). */
export class SocketProtocolError extends Error {
  override readonly name = 'SocketProtocolError';
}

/**
 * A record's header (zeroed, kind and version and body length set) with `extra` bytes after it.
 * From Node's shared pool when small (allocUnsafe): a header a frame, an ack a frame, each its
 * own ArrayBuffer, cost as much as the rest of the frame's work together.
 */
function header(kind: RecordKind, bodyBytes: number, extra = 0): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + extra);
  buf.fill(0, 0, HEADER_BYTES);
  buf[0] = kind;
  buf[1] = WIRE_VERSION;
  buf.writeUInt32LE(bodyBytes, 4);
  return buf;
}

/** A record whose body is small (or none): header and body in one buffer. */
export function encodeRecord(kind: RecordKind, body: Uint8Array = new Uint8Array(0), seq = 0): Buffer {
  const buf = header(kind, body.byteLength, body.byteLength);
  buf.writeUInt32LE(seq, 8);
  buf.set(body, HEADER_BYTES);
  return buf;
}

export const encodeHello = (hello: HelloBody): Buffer => encodeRecord(RecordKind.Hello, Buffer.from(JSON.stringify(hello)));
export const encodeRefuse = (reason: string): Buffer => encodeRecord(RecordKind.Refuse, Buffer.from(reason));

/**
 * An ack of the frames of connection `generation`: every frame with seq below `settled` is
 * settled, accepted unless `error` is given, in which case frame `settled - 1` was refused for
 * that reason (and the ones before it accepted).
 */
export function encodeAck(settled: number, generation: number, error = ''): Buffer {
  const buf = encodeRecord(RecordKind.Ack, error ? Buffer.from(error) : undefined, settled);
  buf.writeUInt32LE(generation, 12);
  return buf;
}

/**
 * A frame's header followed by its expert ids, weights and scales, in one buffer (those are
 * small: a copy is cheaper than another write); the data goes out as it is, a view.
 */
export function encodeFrameHead(f: FrameHeader, expertIds?: Uint8Array, scales?: Uint8Array, weights?: Uint8Array): Buffer {
  const small = f.idBytes + f.weightBytes + f.scaleBytes;
  // Buffer's own writes, not a DataView: one object less a frame
  const buf = header(RecordKind.Frame, small + f.dataBytes, small);
  buf[2] = PHASES.indexOf(f.key.phase);
  buf[3] = WIRE_DTYPES.indexOf(f.dtype);
  buf.writeUInt32LE(f.seq, 8);
  buf.writeInt32LE(f.key.layer, 12);
  buf.writeDoubleLE(f.key.step, 16);
  buf.writeUInt32LE(f.key.microBatch ?? 0, 24);
  buf.writeUInt32LE(f.key.chunk, 28);
  buf.writeUInt32LE(f.rows, 32);
  buf.writeUInt32LE(f.cols, 36);
  buf.writeUInt32LE(f.blockSize, 40);
  buf.writeUInt32LE(f.idBytes, 44);
  buf.writeUInt32LE(f.scaleBytes, 48);
  buf.writeUInt32LE(f.dataBytes, 52);
  buf.writeUInt32LE(f.weightBytes, 56);
  if (expertIds) buf.set(expertIds, HEADER_BYTES);
  if (weights) buf.set(weights, HEADER_BYTES + f.idBytes);
  if (scales) buf.set(scales, HEADER_BYTES + f.idBytes + f.weightBytes);
  return buf;
}

/** A frame header as read (`head` from `at`); throws SocketProtocolError on a phase, dtype or count that makes no sense. */
export function decodeFrameHeader(head: Buffer, at: number): FrameHeader {
  const phase: Phase | undefined = PHASES[head[at + 2]!];
  const dtype = WIRE_DTYPES[head[at + 3]!];
  if (!phase) throw new SocketProtocolError(`frame header: phase index ${head[at + 2]} is not one of ${PHASES.length} phases`);
  if (!dtype) throw new SocketProtocolError(`frame header: dtype index ${head[at + 3]} is not one of ${WIRE_DTYPES.join(', ')}`);
  const step = head.readDoubleLE(at + 16);
  if (!Number.isSafeInteger(step) || step < 0) throw new SocketProtocolError(`frame header: step ${step} is not a step number`);
  const f: FrameHeader = {
    seq: head.readUInt32LE(at + 8),
    key: { step, microBatch: head.readUInt32LE(at + 24), layer: head.readInt32LE(at + 12), chunk: head.readUInt32LE(at + 28), phase },
    dtype,
    rows: head.readUInt32LE(at + 32),
    cols: head.readUInt32LE(at + 36),
    blockSize: head.readUInt32LE(at + 40),
    idBytes: head.readUInt32LE(at + 44),
    weightBytes: head.readUInt32LE(at + 56),
    scaleBytes: head.readUInt32LE(at + 48),
    dataBytes: head.readUInt32LE(at + 52),
  };
  const bodyBytes = head.readUInt32LE(at + 4);
  if (f.idBytes + f.weightBytes + f.scaleBytes + f.dataBytes !== bodyBytes) {
    throw new SocketProtocolError(
      `frame header: ${f.idBytes} + ${f.weightBytes} + ${f.scaleBytes} + ${f.dataBytes} bytes of ids, weights, scales and data, but a body of ${bodyBytes}`,
    );
  }
  return f;
}

/**
 * Why a well-formed frame header cannot be taken (its counts disagree with its shape), or
 * undefined: the receiver refuses such a frame (an ack with the reason) and reads on.
 */
export function frameProblem(f: FrameHeader): string | undefined {
  const values = f.rows * f.cols;
  if (f.key.layer < -1) return `${keyString(f.key)}: layer ${f.key.layer} (use -1 for none)`;
  if (values > MAX_PAYLOAD_VALUES) return `${keyString(f.key)}: [${f.rows}, ${f.cols}] holds more than ${MAX_PAYLOAD_VALUES} values`;
  const dataBytes = values * DTYPE_BYTES[f.dtype];
  if (f.dataBytes !== dataBytes) return `${keyString(f.key)}: ${f.dtype} [${f.rows}, ${f.cols}] needs ${dataBytes} bytes of data but ${f.dataBytes} arrived`;
  const fp8 = f.dtype === 'FP8_E4M3';
  if (fp8 && f.blockSize <= 0) return `${keyString(f.key)}: FP8_E4M3 needs a positive block_size, got ${f.blockSize}`;
  const scaleBytes = fp8 ? 4 * Math.ceil(values / f.blockSize) : 0;
  if (f.scaleBytes !== scaleBytes) return `${keyString(f.key)}: ${f.dtype} [${f.rows}, ${f.cols}] needs ${scaleBytes} bytes of scales but ${f.scaleBytes} arrived`;
  // How many weights a row stands for is the all-to-all's to check; the wire only needs whole float32s.
  if (f.weightBytes % 4 !== 0) return `${keyString(f.key)}: ${f.weightBytes} bytes of weights is not a whole number of float32 (a multiple of 4)`;
  if (f.idBytes !== 0 && f.idBytes !== 4 * f.rows) return `${keyString(f.key)}: ${f.idBytes} bytes of expert ids for ${f.rows} rows (needs ${4 * f.rows} or none)`;
  return undefined;
}

/** How many frames an ack says are settled (`head` from `at`). */
export const ackSettled = (head: Buffer, at: number): number => head.readUInt32LE(at + 8);
/** The generation of the connection whose frames an ack settles (`head` from `at`). */
export const ackGeneration = (head: Buffer, at: number): number => head.readUInt32LE(at + 12);

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
  const generation = Number.isInteger(value.generation) ? (value.generation as number) : 0;
  return { runId: value.runId, rank: value.rank as number, token: typeof value.token === 'string' ? value.token : '', generation };
}
