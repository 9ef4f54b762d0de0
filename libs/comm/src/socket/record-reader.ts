import { Buffer } from 'node:buffer';
import { HEADER_BYTES, kindName, MAX_SMALL_BODY_BYTES, RecordKind, SocketProtocolError, WIRE_VERSION, type RecordHandler } from './records';

/**
 * Header bytes and small records are read here: one read takes many acks and whole frames of a
 * bench step's size (copied out, one memcpy each), and of a larger frame the header and the first
 * part, the rest read in place. Fewer, larger reads beat copying less: the 4-process all-to-all of
 * 64 KiB frames (alltoall.bench.ts --kib 64 --mb 75 --repeats 5) moved 0.57 of raw TCP with 16 KiB
 * here, 0.70 with 256 KiB, 0.60 with 1 MiB.
 */
const SCRATCH_BYTES = 256 * 1024;
const EMPTY = Buffer.alloc(0);

interface PendingBody {
  kind: RecordKind;
  buf: Buffer;
  filled: number;
}

/**
 * Cuts a byte stream into records (see records.ts), reading into memory of its own:
 *
 * - `nextBuffer()` / `onRead(n)` are a socket's `onread` pair: the socket reads straight into
 *   the buffer nextBuffer() names. Between records that is a scratch buffer reused for every
 *   read (no allocation a read); once a header announces a body longer than what came with it,
 *   a buffer of the body's size is allocated, what came is copied in, and the rest of the body
 *   is read straight into it (no reassembly, no copy of the bulk).
 * - `push(chunk)` feeds bytes a stream already read (a socket without `onread`): the same, with
 *   one copy.
 *
 * Every complete record goes to `onRecord`, in order (see RecordHandler): its header bytes are
 * valid only during that call; its body is a buffer of its own that the callee may keep.
 */
export class RecordReader {
  private readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  /** The header of the record whose body is being read (one at a time). */
  private readonly pendingHead = Buffer.allocUnsafeSlow(HEADER_BYTES);
  private start = 0;
  private end = 0;
  private body?: PendingBody;
  private maxFrameBody = 0;

  constructor(private readonly onRecord: RecordHandler) {}

  /** Largest frame body accepted from now on; 0 (the start) refuses every frame. */
  limitFrameBody(bytes: number): void {
    this.maxFrameBody = bytes;
  }

  /** Where the next read goes: the rest of the body being read, or free scratch space. Never empty. */
  nextBuffer(): Buffer {
    if (this.body) return this.body.buf.subarray(this.body.filled);
    if (this.start > 0) {
      this.scratch.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    return this.scratch.subarray(this.end);
  }

  /** `n` bytes were read into the buffer nextBuffer() returned. Throws SocketProtocolError. */
  onRead(n: number): void {
    const body = this.body;
    if (body) {
      body.filled += n;
      if (body.filled === body.buf.byteLength) {
        this.body = undefined;
        this.onRecord(body.kind, this.pendingHead, 0, body.buf);
      }
      return;
    }
    this.end += n;
    this.parse();
  }

  /** Feeds bytes read elsewhere. Throws SocketProtocolError. */
  push(chunk: Uint8Array): void {
    for (let off = 0; off < chunk.byteLength; ) {
      const into = this.nextBuffer();
      const n = Math.min(into.byteLength, chunk.byteLength - off);
      into.set(chunk.subarray(off, off + n));
      off += n;
      this.onRead(n);
    }
  }

  /** True while a record is partly read (a connection closing now ended mid-record). */
  midRecord(): boolean {
    return this.body !== undefined || this.end > this.start;
  }

  private parse(): void {
    const s = this.scratch;
    while (this.end - this.start >= HEADER_BYTES) {
      const at = this.start;
      const kind = s[at] as RecordKind;
      const bodyBytes = s.readUInt32LE(at + 4);
      this.check(kind, s[at + 1]!, bodyBytes);
      const here = this.end - at - HEADER_BYTES;
      if (here >= bodyBytes) {
        this.start = at + HEADER_BYTES + bodyBytes;
        const body = bodyBytes === 0 ? EMPTY : Buffer.allocUnsafeSlow(bodyBytes);
        if (bodyBytes > 0) s.copy(body, 0, at + HEADER_BYTES, this.start);
        this.onRecord(kind, s, at, body);
        continue;
      }
      // The body spans reads: a buffer of its own, the bytes here copied in, the rest read into it.
      s.copy(this.pendingHead, 0, at, at + HEADER_BYTES);
      const buf = Buffer.allocUnsafeSlow(bodyBytes);
      s.copy(buf, 0, at + HEADER_BYTES, this.end);
      this.body = { kind, buf, filled: here };
      this.start = this.end = 0;
      return;
    }
  }

  private check(kind: RecordKind, version: number, bodyBytes: number): void {
    if (version !== WIRE_VERSION) {
      throw new SocketProtocolError(`record of wire version ${version}, this worker speaks version ${WIRE_VERSION} (workers of different releases?)`);
    }
    if (kind < RecordKind.Hello || kind > RecordKind.Bye) throw new SocketProtocolError(`record of unknown kind ${kind}`);
    const max = kind === RecordKind.Frame ? this.maxFrameBody : MAX_SMALL_BODY_BYTES;
    if (bodyBytes > max) throw new SocketProtocolError(`${kindName(kind)} record announces ${bodyBytes} body bytes; at most ${max} may follow here`);
  }
}
