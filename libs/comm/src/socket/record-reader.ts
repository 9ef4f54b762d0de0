import { Buffer } from 'node:buffer';
import { HEADER_BYTES, kindName, MAX_SMALL_BODY_BYTES, RecordKind, SocketProtocolError, WIRE_VERSION, type RecordHandler } from './records';

/**
 * Reads go into a slab of this size; a frame that arrives whole in it goes out as a view of it
 * (no copy), and a slab holding such views is left to them once it is full.
 */
const SLAB_BYTES = 256 * 1024;
/** Least room a read is offered when what comes next is not known yet (a read that small is mostly a wasted syscall). */
const MIN_READ_BYTES = 16 * 1024;
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
 *   the buffer nextBuffer() names, room in a slab (no allocation a read). A read is offered the
 *   rest of the record being read and the next record's header (between records: room for one
 *   like the last frame), so a slab fills up to a record boundary. A frame whose record is whole
 *   in the slab and starts 4-byte aligned goes out as a view of it (no copy); a slab holding
 *   such views is never written over: when it lacks room for what comes next, a new slab takes
 *   the few bytes of the next record read so far. A record that does not fit a slab gets a
 *   buffer of its body's size, and the rest of the body is read straight into it.
 * - `push(chunk)` feeds bytes a stream already read (a socket without `onread`): the same, with
 *   one copy.
 *
 * Every complete record goes to `onRecord`, in order (see RecordHandler): its header bytes are
 * valid only during that call; its body is a buffer the callee may keep.
 *
 * Why (the 4-process all-to-all of 64 KiB frames, libs/comm/bench/alltoall.bench.ts --kib 64):
 * reads come about one frame each, and with one scratch buffer reused for every read, every
 * frame was copied out of it into an allocation of its own: 0.57 of raw TCP with 16 KiB of
 * scratch (two reads a frame), 0.70 with 256 KiB, 0.60 with 1 MiB. Reading into slabs and lending
 * views, with reads offered up to a record boundary (so a slab is rarely left mid-frame, which
 * had copied most of a frame one slab change in three), took it to 0.77-0.93 (the default bench's
 * planes and sizes, three runs), with the other changes of the same commit.
 */
export class RecordReader {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  /** Views of the slab were handed out: it is never compacted or written below `end`. */
  private lent = false;
  /** The header of the record whose body is being read into a buffer of its own. */
  private readonly pendingHead = Buffer.allocUnsafeSlow(HEADER_BYTES);
  private start = 0;
  private end = 0;
  private body?: PendingBody;
  private maxFrameBody = 0;
  /** Room a read wants between records: the last frame's record and the next header (at least MIN_READ_BYTES, at most a slab). */
  private expected = MIN_READ_BYTES;

  constructor(private readonly onRecord: RecordHandler) {}

  /** Largest frame body accepted from now on; 0 (the start) refuses every frame. */
  limitFrameBody(bytes: number): void {
    this.maxFrameBody = bytes;
  }

  /** Where the next read goes: the rest of the body being read, or room in a slab. Never empty. */
  nextBuffer(): Buffer {
    if (this.body) return this.body.buf.subarray(this.body.filled);
    const partial = this.end - this.start;
    // A read takes the rest of the record being read and the next one's header (between
    // records: room for a record like the last frame), so that a slab is left between records
    // (a header to copy) rather than in the middle of one (most of a frame to copy).
    const want = partial >= HEADER_BYTES ? 2 * HEADER_BYTES + this.slab.readUInt32LE(this.start + 4) - partial : this.expected - partial;
    if (this.slab.byteLength - this.end < want) {
      if (!this.lent && this.slab.byteLength - partial >= want) {
        this.slab.copyWithin(0, this.start, this.end);
      } else {
        const old = this.slab;
        this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        this.lent = false;
        old.copy(this.slab, 0, this.start, this.end);
      }
      this.start = 0;
      this.end = partial;
    }
    return this.slab.subarray(this.end, this.end + Math.max(want, MIN_READ_BYTES));
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
    const s = this.slab;
    while (this.end - this.start >= HEADER_BYTES) {
      const at = this.start;
      const kind = s[at] as RecordKind;
      const bodyBytes = s.readUInt32LE(at + 4);
      this.check(kind, s[at + 1]!, bodyBytes);
      const from = at + HEADER_BYTES;
      if (this.end - from >= bodyBytes) {
        this.start = from + bodyBytes;
        this.onRecord(kind, s, at, this.takeBody(kind, from, bodyBytes));
        continue;
      }
      // A record that with the next header does not fit a slab: a buffer of its own, the bytes here copied in, the rest read into it.
      if (2 * HEADER_BYTES + bodyBytes > SLAB_BYTES) {
        s.copy(this.pendingHead, 0, at, from);
        const buf = Buffer.allocUnsafeSlow(bodyBytes);
        s.copy(buf, 0, from, this.end);
        this.body = { kind, buf, filled: this.end - from };
        this.start = this.end; // (not 0: the slab may hold frames handed out)
      }
      return; // else the rest is read into the slab (nextBuffer makes room)
    }
  }

  /** A whole record's body: a view of the slab for a frame that starts 4-byte aligned, else a copy (small records, odd offsets). */
  private takeBody(kind: RecordKind, from: number, bodyBytes: number): Buffer {
    if (bodyBytes === 0) return EMPTY;
    if (kind === RecordKind.Frame) this.expected = Math.min(SLAB_BYTES, Math.max(MIN_READ_BYTES, 2 * HEADER_BYTES + bodyBytes));
    if (kind === RecordKind.Frame && from % 4 === 0) {
      this.lent = true;
      return this.slab.subarray(from, from + bodyBytes);
    }
    const body = Buffer.allocUnsafeSlow(bodyBytes);
    this.slab.copy(body, 0, from, from + bodyBytes);
    return body;
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
