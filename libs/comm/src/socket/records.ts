/**
 * The socket data plane's wire format. Every record is
 *
 *   [u32 big-endian header length][header: UTF-8 JSON][body: header.bodyBytes bytes]
 *
 * A connection starts with the sender's `hello` (run, source rank, cluster token) and the
 * receiver's `welcome` or `refuse`; then `frame` records (body = expert ids, weights, scales, data,
 * in that order so each starts 4-byte aligned in a fresh buffer) each answered by one `ack`, and a `bye`
 * when the sender closes cleanly. A connection that ends without `bye` is a sender lost mid-stream.
 */
import { Buffer } from 'node:buffer';
import type { Phase } from '../transport/frame-key';
import type { RowDType } from '../codec/types';

/** Largest header a receiver reads; anything longer is a protocol error, not a reason to buffer. */
export const MAX_HEADER_BYTES = 64 * 1024;

export interface HelloRecord {
  kind: 'hello';
  runId: string;
  source: number;
  /** The cluster token ("" when the sender has none). */
  token: string;
}

export interface WelcomeRecord {
  kind: 'welcome';
}

export interface RefuseRecord {
  kind: 'refuse';
  reason: string;
}

export interface FrameRecord {
  kind: 'frame';
  /** Sender's sequence number on this connection; the ack echoes it. */
  seq: number;
  step: number;
  /** The step's micro-batch (FrameKey.microBatch; 0 when the step has one): frames of two micro-batches in flight never mix. */
  microBatch?: number;
  layer: number;
  chunk: number;
  phase: Phase;
  dtype: RowDType;
  rows: number;
  cols: number;
  /** 0 unless FP8_E4M3. */
  blockSize: number;
  idBytes: number;
  /** Float32 weights (moe.proto Frame.weights); absent: none. */
  weightBytes?: number;
  scaleBytes: number;
  dataBytes: number;
}

export interface AckRecord {
  kind: 'ack';
  seq: number;
  /** "" when accepted; else why the frame was refused. */
  error: string;
}

export interface ByeRecord {
  kind: 'bye';
}

export type SocketRecord = HelloRecord | WelcomeRecord | RefuseRecord | FrameRecord | AckRecord | ByeRecord;

/** Bytes that break the socket protocol (a header too long or not JSON, a record out of place). */
export class SocketProtocolError extends Error {
  override readonly name = 'SocketProtocolError';
}

/** The length prefix and header of `record` (its body, if any, follows separately). */
export function encodeHeader(record: SocketRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record));
  const out = Buffer.allocUnsafe(4 + json.byteLength);
  out.writeUInt32BE(json.byteLength, 0);
  json.copy(out, 4);
  return out;
}

/** Body bytes that follow a record's header. */
export function bodyBytes(record: SocketRecord): number {
  return record.kind === 'frame' ? record.idBytes + (record.weightBytes ?? 0) + record.scaleBytes + record.dataBytes : 0;
}

const KINDS = new Set(['hello', 'welcome', 'refuse', 'frame', 'ack', 'bye']);
const SIZE_FIELDS = ['idBytes', 'scaleBytes', 'dataBytes'] as const;

function parseHeader(bytes: Uint8Array): SocketRecord {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new SocketProtocolError(`record header of ${bytes.byteLength} bytes is not JSON: ${(error as Error).message}`);
  }
  const kind = (value as { kind?: unknown } | null)?.kind;
  if (typeof kind !== 'string' || !KINDS.has(kind)) throw new SocketProtocolError(`record header has unknown kind ${JSON.stringify(kind)}`);
  if (kind === 'frame') {
    for (const field of SIZE_FIELDS) {
      const n = (value as Record<string, unknown>)[field];
      if (!Number.isSafeInteger(n) || (n as number) < 0) throw new SocketProtocolError(`frame header: ${field} ${JSON.stringify(n)} is not a byte count`);
    }
    const weights = (value as Record<string, unknown>)['weightBytes'];
    if (weights !== undefined && (!Number.isSafeInteger(weights) || (weights as number) < 0 || (weights as number) % 4 !== 0)) {
      throw new SocketProtocolError(`frame header: weightBytes ${JSON.stringify(weights)} is not a byte count of whole float32s`);
    }
  }
  return value as SocketRecord;
}

/** One record as read: its header and its body (empty for all but frames). */
export interface ReadRecord {
  record: SocketRecord;
  /** A view of the received bytes; the receiver owns it. */
  body: Uint8Array;
}

/**
 * Cuts a byte stream into records. A body that lies inside one received chunk is a view of it;
 * a body spread over chunks is read into one buffer of its size as the chunks come (one copy,
 * never a reassembly of parts afterwards).
 */
export class RecordReader {
  /** Bytes of a length prefix and header not yet complete. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private header?: SocketRecord;
  private body?: Uint8Array;
  private filled = 0;
  private maxBody = 0;

  /** Largest body a record may announce; 0 (the start) refuses any frame with a body (before the handshake). */
  limitBody(bytes: number): void {
    this.maxBody = bytes;
  }

  /** Feeds `chunk`; returns the records it completed, in order. Throws SocketProtocolError. */
  push(chunk: Buffer): ReadRecord[] {
    const out: ReadRecord[] = [];
    let buf = chunk;
    let off = 0;
    while (off < buf.byteLength) {
      if (this.body) {
        const take = Math.min(this.body.byteLength - this.filled, buf.byteLength - off);
        this.body.set(buf.subarray(off, off + take), this.filled);
        this.filled += take;
        off += take;
        if (this.filled === this.body.byteLength) out.push(this.finish(this.body));
        continue;
      }
      if (this.header) {
        const need = bodyBytes(this.header);
        if (buf.byteLength - off >= need) {
          out.push(this.finish(buf.subarray(off, off + need)));
          off += need;
        } else {
          // not zero-filled: every byte is written by the reads that follow
          this.body = Buffer.allocUnsafeSlow(need);
          this.filled = 0;
        }
        continue;
      }
      if (this.pendingBytes > 0) {
        buf = Buffer.concat([...this.pending, buf.subarray(off)]);
        off = 0;
        this.pending = [];
        this.pendingBytes = 0;
      }
      const left = buf.byteLength - off;
      const length = left >= 4 ? buf.readUInt32BE(off) : -1;
      if (length > MAX_HEADER_BYTES) throw new SocketProtocolError(`record header of ${length} bytes exceeds ${MAX_HEADER_BYTES}`);
      if (length < 0 || left < 4 + length) {
        this.pending.push(buf.subarray(off));
        this.pendingBytes = left;
        break;
      }
      const record = parseHeader(buf.subarray(off + 4, off + 4 + length));
      off += 4 + length;
      if (bodyBytes(record) > this.maxBody) {
        throw new SocketProtocolError(`${record.kind} record announces ${bodyBytes(record)} body bytes; at most ${this.maxBody} may follow here`);
      }
      if (bodyBytes(record) === 0) out.push({ record, body: new Uint8Array(0) });
      else this.header = record;
    }
    return out;
  }

  /** True while a record is partly read (a connection closing now ended mid-record). */
  midRecord(): boolean {
    return this.pendingBytes > 0 || this.header !== undefined;
  }

  private finish(body: Uint8Array): ReadRecord {
    const record = this.header!;
    this.header = undefined;
    this.body = undefined;
    this.filled = 0;
    return { record, body };
  }
}
