/**
 * The socket data plane's wire format, RecordReader and AckQueue: every record comes out whole
 * and in order however the stream is cut into reads, frame headers survive the round trip, a
 * large body is read straight into its own buffer, bytes that break the protocol are refused,
 * and acks say "settled" only for frames whose every predecessor is settled too.
 */
import { describe, expect, it } from 'vitest';
import { AckQueue } from '../src/socket/ack-queue';
import { RecordReader } from '../src/socket/record-reader';
import {
  ackGeneration,
  ackSettled,
  bodyText,
  decodeFrameHeader,
  encodeAck,
  encodeFrameHead,
  encodeHello,
  encodeRecord,
  HEADER_BYTES,
  RecordKind,
  type FrameHeader,
} from '../src/socket/records';

/** A record as a test keeps it: the header decoded during the callback (its bytes are the reader's scratch). */
interface Got {
  kind: number;
  head?: unknown;
  body: Buffer;
}

/** A deterministic stream of numbers in [0, 1) (a seeded LCG), so a failing cut can be replayed. */
function randomFrom(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function frame(seq: number, rows: number, cols: number): { head: FrameHeader; ids: Uint8Array; data: Uint8Array } {
  const ids = new Uint8Array(Int32Array.from({ length: rows }, (_, i) => i * 7 - 3).buffer);
  const data = Uint8Array.from({ length: rows * cols * 2 }, (_, i) => (i * 31 + seq) & 255);
  const head: FrameHeader = {
    seq,
    key: { step: 2 ** 40 + seq, microBatch: 1, layer: -1, chunk: 3, phase: 'COMBINE_BACKWARD' },
    dtype: 'BF16',
    rows,
    cols,
    blockSize: 0,
    idBytes: ids.byteLength,
    weightBytes: 0,
    scaleBytes: 0,
    dataBytes: data.byteLength,
  };
  return { head, ids, data };
}

/** hello, frames of 0 bytes to ~200 KiB, acks with and without an error, bye: as one byte stream. */
function stream(): { bytes: Buffer; frames: ReturnType<typeof frame>[] } {
  const frames = [frame(0, 0, 8), frame(1, 3, 8), frame(2, 400, 256), frame(3, 1, 1), frame(4, 17, 64)];
  const parts: Buffer[] = [encodeHello({ runId: 'run-α', rank: 3, token: 't', generation: 2 })];
  for (const f of frames) parts.push(encodeFrameHead(f.head, f.ids), Buffer.from(f.data));
  parts.push(encodeAck(5, 2), encodeAck(7, 2, 'duplicate frame'), encodeRecord(RecordKind.Bye));
  return { bytes: Buffer.concat(parts), frames };
}

function check(records: Got[], frames: ReturnType<typeof frame>[]): void {
  expect(records.map((r) => r.kind)).toEqual([1, 4, 4, 4, 4, 4, 5, 5, 6]);
  expect(JSON.parse(bodyText(records[0]!.body))).toEqual({ runId: 'run-α', rank: 3, token: 't', generation: 2 });
  frames.forEach((f, i) => {
    const r = records[i + 1]!;
    expect(r.head).toEqual(f.head);
    expect(Buffer.from(r.body.subarray(0, f.head.idBytes)).equals(Buffer.from(f.ids))).toBe(true);
    expect(Buffer.from(r.body.subarray(f.head.idBytes)).equals(Buffer.from(f.data))).toBe(true);
    expect(r.body.byteOffset % 4).toBe(0);
  });
  expect(records[7]!.head).toEqual({ settled: 7, generation: 2 });
  expect(bodyText(records[7]!.body)).toBe('duplicate frame');
}

/** Collects records, decoding headers during the callback (their views are valid only then). */
function collector(): { reader: RecordReader; records: Got[] } {
  const records: Got[] = [];
  const reader = new RecordReader((kind, bytes, at, body) => {
    const head = kind === RecordKind.Frame ? decodeFrameHeader(bytes, at) : kind === RecordKind.Ack ? { settled: ackSettled(bytes, at), generation: ackGeneration(bytes, at) } : undefined;
    records.push({ kind, head, body });
  });
  reader.limitFrameBody(2 ** 31);
  return { reader, records };
}

describe('RecordReader', () => {
  it('gives every record whole and in order however pushed chunks cut the stream', () => {
    const { bytes, frames } = stream();
    for (let seed = 1; seed <= 40; seed++) {
      const random = randomFrom(seed);
      const { reader, records } = collector();
      for (let off = 0; off < bytes.length; ) {
        const n = Math.min(bytes.length - off, 1 + Math.floor(random() * (seed % 2 ? 70 : 40_000)));
        reader.push(bytes.subarray(off, off + n));
        off += n;
      }
      check(records, frames);
      expect(reader.midRecord()).toBe(false);
    }
  });

  it('reads as a socket with onread would, however short each read is', () => {
    const { bytes, frames } = stream();
    for (let seed = 1; seed <= 40; seed++) {
      const random = randomFrom(seed);
      const { reader, records } = collector();
      for (let off = 0; off < bytes.length; ) {
        const into = reader.nextBuffer();
        expect(into.byteLength).toBeGreaterThan(0);
        const n = Math.min(into.byteLength, bytes.length - off, 1 + Math.floor(random() * (seed % 2 ? 100 : 70_000)));
        bytes.copy(into, 0, off, off + n);
        off += n;
        reader.onRead(n);
      }
      check(records, frames);
    }
  });

  it('hands out a frame that came whole in a read as a view of the memory it was read into', () => {
    const f = frame(0, 100, 256);
    const bytes = Buffer.concat([encodeFrameHead(f.head, f.ids), Buffer.from(f.data)]);
    const { reader, records } = collector();
    const into = reader.nextBuffer();
    bytes.copy(into);
    reader.onRead(bytes.length);
    expect(records).toHaveLength(1);
    expect(records[0]!.body.buffer).toBe(into.buffer);
  });

  it("reads a frame larger than a slab straight into the buffer it hands out", () => {
    const big = frame(0, 600, 256);
    const bytes = Buffer.concat([encodeFrameHead(big.head, big.ids), Buffer.from(big.data)]);
    const { reader, records } = collector();
    const first = reader.nextBuffer();
    bytes.copy(first, 0, 0, 1000);
    reader.onRead(1000);
    const rest = reader.nextBuffer();
    expect(rest.byteLength).toBe(bytes.length - 1000);
    bytes.copy(rest, 0, 1000);
    reader.onRead(rest.byteLength);
    expect(records).toHaveLength(1);
    expect(records[0]!.body.buffer).toBe(rest.buffer);
    expect(reader.midRecord()).toBe(false);
  });

  it('never writes over a frame it handed out, however reads cut a long stream', () => {
    // frames of 0 to ~300 KiB, some with an odd number of data bytes (the next one starts unaligned)
    const frames = Array.from({ length: 60 }, (_, i) => frame(i, [0, 1, 3, 40, 128, 130, 500, 600][i % 8]!, i % 5 === 0 ? 1 : 256));
    const bytes = Buffer.concat(frames.flatMap((f) => [encodeFrameHead(f.head, f.ids), Buffer.from(f.data)]));
    for (let seed = 1; seed <= 6; seed++) {
      const random = randomFrom(seed);
      const { reader, records } = collector();
      for (let off = 0; off < bytes.length; ) {
        const into = reader.nextBuffer();
        const n = Math.min(into.byteLength, bytes.length - off, 1 + Math.floor(random() * 150_000));
        bytes.copy(into, 0, off, off + n);
        off += n;
        reader.onRead(n);
      }
      expect(records).toHaveLength(frames.length);
      frames.forEach((f, i) => {
        const body = records[i]!.body;
        expect(Buffer.from(body.subarray(f.head.idBytes)).equals(Buffer.from(f.data))).toBe(true);
        expect(body.byteOffset % 4).toBe(0);
      });
    }
  });

  it('says a record is cut off mid-way', () => {
    const { reader } = collector();
    reader.push(encodeRecord(RecordKind.Bye).subarray(0, HEADER_BYTES - 1));
    expect(reader.midRecord()).toBe(true);
  });

  it('refuses a frame before limitFrameBody, another wire version, and an unknown kind', () => {
    const f = frame(0, 2, 4);
    expect(() => new RecordReader(() => {}).push(encodeFrameHead(f.head, f.ids))).toThrow(/frame record announces 24 body bytes; at most 0 may follow here/);
    const old = encodeRecord(RecordKind.Welcome);
    old[1] = 1;
    expect(() => new RecordReader(() => {}).push(old)).toThrow(/wire version 1, this worker speaks version 2/);
    const odd = encodeRecord(RecordKind.Bye);
    odd[0] = 9;
    expect(() => new RecordReader(() => {}).push(odd)).toThrow(/unknown kind 9/);
  });

  it('refuses a frame header whose byte counts do not add up to its body', () => {
    const f = frame(0, 2, 4);
    const head = encodeFrameHead(f.head, f.ids);
    head.writeUInt32LE(f.head.dataBytes + 1, 52);
    expect(() => decodeFrameHeader(head, 0)).toThrow(/8 \+ 0 \+ 0 \+ 17 bytes of ids, weights, scales and data, but a body of 24/);
  });
});

describe('AckQueue', () => {
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  /** The acks written, as [settled, error] pairs. */
  function acks(): { queue: AckQueue; written: [number, string][] } {
    const written: [number, string][] = [];
    const reader = new RecordReader((_kind, head, at, body) => written.push([ackSettled(head, at), bodyText(body)]));
    return { queue: new AckQueue(1, (bytes) => reader.push(bytes)), written };
  }

  it('acknowledges frames settled out of order only once all before them are settled, once a turn', async () => {
    const { queue, written } = acks();
    for (let seq = 0; seq < 4; seq++) queue.received(seq);
    queue.settle(2, '');
    queue.settle(3, '');
    await turn();
    expect(written).toEqual([]);
    queue.settle(0, '');
    await turn();
    expect(written).toEqual([[1, '']]);
    queue.settle(1, '');
    expect(queue.take()).toBeDefined(); // due now, to leave with a frame: the end of the turn has nothing left
    await turn();
    expect(written).toEqual([[1, '']]);
  });

  it('gives each refusal a record of its own, in order, and the accepted ones after it one more', async () => {
    const { queue, written } = acks();
    for (let seq = 0; seq < 5; seq++) queue.received(seq);
    queue.settle(0, '');
    queue.settle(1, 'duplicate');
    queue.settle(2, '');
    queue.settle(3, 'stale');
    queue.settle(4, '');
    await turn();
    expect(written).toEqual([
      [2, 'duplicate'],
      [4, 'stale'],
      [5, ''],
    ]);
  });

  it('refuses a frame out of sequence', () => {
    const { queue } = acks();
    queue.received(0);
    expect(() => queue.received(2)).toThrow(/frame 2 arrived where frame 1 was next/);
  });
});
