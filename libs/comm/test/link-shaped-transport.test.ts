import { describe, expect, it } from 'vitest';
import { ShapedTransport, createInMemoryTransports, decodeRows, encodeRows, TransportClosedError, frameBytes, type FrameKey, type IncomingFrame, type OutgoingFrame, type Transport } from '../src/index';
import { LinkModelError, linkClassOf, modeledTransferMs, validateLinkModel, type LinkModel } from '@moe/sim';

/** A Transport that records when each frame was handed to it; `sendMs` makes its own sends slow. */
class RecordingTransport implements Transport {
  readonly arrivals: { dest: number; key: FrameKey; at: number }[] = [];
  private sent = 0;
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly sendMs = 0,
  ) {}
  async send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (this.sendMs > 0) await new Promise((r) => setTimeout(r, this.sendMs));
    this.sent += frameBytes(frame);
    this.arrivals.push({ dest, key, at: performance.now() });
  }
  receive(_source: number, _key: FrameKey, _timeoutMs: number): Promise<IncomingFrame> {
    return new Promise(() => {});
  }
  bytesSent(): number {
    return this.sent;
  }
  async close(): Promise<void> {}
}

/** A frame of exactly `bytes` payload bytes. */
const frameOf = (bytes: number): OutgoingFrame =>
  ({ payload: { dtype: 'F32', rows: bytes / 4, cols: 1, data: new Uint8Array(bytes) } }) as unknown as OutgoingFrame;
const key = (chunk: number): FrameKey => ({ step: 0, layer: 0, chunk, phase: 'DISPATCH' }) as FrameKey;

// 1 MB at 50 GB/s = 20 µs; dilation 1000 makes it 20 ms (+ 5 µs latency * 1000 = 5 ms).
const MODEL: LinkModel = {
  nodeSize: 2,
  intra: { bandwidthGBps: 200, latencyUs: 2 },
  inter: { bandwidthGBps: 50, latencyUs: 5 },
  dilation: 1000,
};
const MB = 1_000_000;

describe('link model', () => {
  it('takes latency plus bytes over bandwidth, times dilation', () => {
    expect(modeledTransferMs(MODEL.inter, MB, 1000)).toBeCloseTo(5 + 20, 9);
    expect(modeledTransferMs(MODEL.intra, MB, 1)).toBeCloseTo(0.002 + 0.005, 9);
  });

  it('puts ranks of one node on the intra link and others on the inter link', () => {
    expect(linkClassOf(0, 1, 2)).toBe('intra');
    expect(linkClassOf(1, 2, 2)).toBe('inter');
    expect(linkClassOf(3, 2, 2)).toBe('intra');
    expect(linkClassOf(0, 7, 8)).toBe('intra');
  });

  it('rejects a model that cannot work, naming the field', () => {
    expect(() => validateLinkModel({ ...MODEL, dilation: 0.5 })).toThrow(/dilation=0.5 .*linkModel\.dilation/);
    expect(() => validateLinkModel({ ...MODEL, nodeSize: 0 })).toThrow(LinkModelError);
    expect(() => validateLinkModel({ ...MODEL, inter: { bandwidthGBps: 0, latencyUs: 1 } })).toThrow(/inter\.bandwidthGBps=0/);
  });
});

describe('ShapedTransport', () => {
  it('delivers a frame no earlier than its modeled transfer time', async () => {
    const inner = new RecordingTransport(0, 4);
    const shaped = new ShapedTransport(inner, MODEL);
    const t0 = performance.now();
    await shaped.send(2, key(0), frameOf(MB)); // rank 2 is on the other node
    const took = inner.arrivals[0]!.at - t0;
    expect(took).toBeGreaterThanOrEqual(25 - 1);
    expect(took).toBeLessThan(25 + 250);
    const report = shaped.hostBound();
    expect(report.frames).toBe(1);
    expect(report.bytes).toBe(MB);
    expect(report.modeledMs).toBeCloseTo(25, 0);
  });

  it('is faster on the intra-node link than across nodes', async () => {
    const inner = new RecordingTransport(0, 4);
    const shaped = new ShapedTransport(inner, MODEL);
    await shaped.send(1, key(0), frameOf(MB));
    expect(Math.abs(shaped.hostBound().modeledMs - (2 + 5))).toBeLessThan(2);
  });

  it('serialises frames on one link: the third of three waits for the first two', async () => {
    const inner = new RecordingTransport(0, 4);
    const shaped = new ShapedTransport(inner, MODEL);
    const t0 = performance.now();
    await Promise.all([0, 1, 2].map((c) => shaped.send(2, key(c), frameOf(MB))));
    const at = inner.arrivals.map((a) => a.at - t0);
    expect(inner.arrivals.map((a) => a.key.chunk)).toEqual([0, 1, 2]);
    // wire 20 ms each, latency 5 ms pipelined: arrivals near 25, 45, 65 ms.
    expect(at[2]!).toBeGreaterThanOrEqual(65 - 1);
    // modeledMs sums each frame's modeled queueing from the moment it was really sent: timers add a fraction of a ms either way.
    expect(Math.abs(shaped.hostBound().modeledMs - (25 + 45 + 65))).toBeLessThan(2);
  });

  it('shares one port among peers of a class, unless sharing is "pair"', async () => {
    const t0 = performance.now();
    const shared = new ShapedTransport(new RecordingTransport(0, 4), MODEL);
    await Promise.all([2, 3].map((dest) => shared.send(dest, key(0), frameOf(MB))));
    expect(Math.abs(shared.hostBound().modeledMs - (25 + 45))).toBeLessThan(2);

    const pair = new ShapedTransport(new RecordingTransport(0, 4), { ...MODEL, sharing: 'pair' });
    await Promise.all([2, 3].map((dest) => pair.send(dest, key(0), frameOf(MB))));
    expect(Math.abs(pair.hostBound().modeledMs - (25 + 25))).toBeLessThan(2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45 + 25 - 1);
  });

  it('does not shape frames to itself', async () => {
    const inner = new RecordingTransport(0, 4);
    const shaped = new ShapedTransport(inner, MODEL);
    const t0 = performance.now();
    await shaped.send(0, key(0), frameOf(MB));
    expect(inner.arrivals[0]!.at - t0).toBeLessThan(20);
    expect(shaped.hostBound().frames).toBe(0);
  });

  it('says the host transport was the bottleneck when it is slower than the modeled link', async () => {
    // Modeled: 4 KB on 200 GB/s + 2 µs, dilation 1000: about 2 ms; the host takes 30 ms per send.
    const slow = new ShapedTransport(new RecordingTransport(0, 2, 30), MODEL);
    await Promise.all([0, 1, 2].map((c) => slow.send(1, key(c), frameOf(4096))));
    const bound = slow.hostBound();
    expect(bound.bound).toBe(true);
    expect(bound.hostMs).toBeGreaterThan(bound.modeledMs);
    expect(bound.lateMs).toBeGreaterThan(0);

    const fast = new ShapedTransport(new RecordingTransport(0, 4), MODEL);
    await fast.send(2, key(0), frameOf(MB));
    expect(fast.hostBound().bound).toBe(false);
    fast.resetLinkStats();
    expect(fast.hostBound()).toMatchObject({ frames: 0, modeledMs: 0, bound: false });
  });

  it('over in-memory transports, a peer receives the rows once the modeled link has carried them', async () => {
    const shaped = createInMemoryTransports(4).map((t) => new ShapedTransport(t, MODEL));
    const rows = Float32Array.from({ length: 1000 * 250 }, (_, i) => i % 7); // 1 MB of f32
    const t0 = performance.now();
    const [, received] = await Promise.all([
      shaped[0]!.send(3, key(0), { payload: encodeRows(rows, 1000, 250, 'f32'), expertIds: new Int32Array(1000).fill(5) }),
      shaped[3]!.receive(0, key(0), 5_000),
    ]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25 - 1); // 5 ms latency + 1 MB at 50 GB/s, x1000
    expect(received.source).toBe(0);
    expect(decodeRows(received.payload)).toEqual(rows);
    expect(received.expertIds?.[999]).toBe(5);
    expect(shaped[0]!.bytesSent()).toBe(1_000_000);
    // Which one bound the transfer is a race on real time here (a loaded host copies 1 MB slower
    // than the 25 ms modeled): the verdict is pinned by the recorded-time test above, not here.
    expect(shaped[0]!.hostBound()).toMatchObject({ frames: 1, bytes: 1_000_000 + 4000 });
    await Promise.all(shaped.map((t) => t.close()));
  });

  it('fails frames still waiting for their link when closed, and passes bytesSent through', async () => {
    const inner = new RecordingTransport(0, 4);
    const shaped = new ShapedTransport(inner, MODEL);
    const pending = shaped.send(2, key(0), frameOf(MB));
    await shaped.close();
    await expect(pending).rejects.toBeInstanceOf(TransportClosedError);
    expect(inner.arrivals).toHaveLength(0);
    expect(shaped.bytesSent()).toBe(0);
    await expect(shaped.send(2, key(1), frameOf(4))).rejects.toThrow(/after close/);
    await expect(new ShapedTransport(new RecordingTransport(0, 4), MODEL).send(4, key(0), frameOf(4))).rejects.toThrow(
      /destination 4 is not a rank of a world of 4/,
    );
  });
});
