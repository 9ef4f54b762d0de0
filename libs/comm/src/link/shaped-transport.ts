import { RankRangeError, TransportClosedError } from '../transport/errors';
import type { FrameKey } from '../transport/frame-key';
import type { IncomingFrame, OutgoingFrame, Transport } from '../transport/transport';
import { linkClassOf, validateLinkModel, wireMs, type LinkClass, type LinkModel } from '@moe/sim';

/**
 * What the shaping saw since the last reset, summed over the frames this rank sent to peers
 * (frames to itself are not shaped and not counted). All times in ms of wall clock.
 */
export interface HostBoundReport {
  frames: number;
  /** Bytes of the frames (payload data + scales + expert ids). */
  bytes: number;
  /** From `send()` to the modeled delivery: queueing behind earlier frames + latency + bytes/bandwidth. */
  modeledMs: number;
  /** From `send()` to the host transport's send resolving: what really happened. */
  actualMs: number;
  /** Time the host transport itself took (from hand-off to its send resolving), on top of the model. */
  hostMs: number;
  /** Sum over frames of max(0, actual - modeled): host time plus timer overshoot. */
  lateMs: number;
  /** Largest single-frame lateness. */
  maxLateMs: number;
  /**
   * True when the host transport, not the modeled link, set the pace: its own send time added
   * more than `tolerance` (default 10%) to the modeled time (hostMs > tolerance * modeledMs).
   * Timer overshoot (in lateMs) does not count: it is the host's scheduling, not its transport.
   */
  bound: boolean;
}

/** Bytes of one frame as it crosses a link: payload data, block scales, expert ids and weights. */
export function frameBytes(frame: OutgoingFrame): number {
  const view = (v: unknown): number => (ArrayBuffer.isView(v) ? v.byteLength : 0);
  return view(frame.payload.data) + view(frame.payload.scales) + view(frame.expertIds) + view(frame.weights);
}

/**
 * A Transport whose sends take the time a modeled link would take.
 *
 * Each frame to a peer waits for its link to be free (a FIFO queue per link class on this rank
 * with `sharing: 'port'`, or per destination with `'pair'`), occupies it for bytes/bandwidth,
 * arrives latency later (times dilated, see `link-model.ts`), and only then is handed to the
 * wrapped transport. The returned promise resolves when the wrapped transport's send does, so the
 * host transport's own time comes on top of the modeled time; `hostBound()` says how much, and
 * whether the host, not the modeled link, was the bottleneck. Receives pass straight through:
 * a receiver waits on frames its peers' shaped sends release.
 *
 * The link clock runs on absolute deadlines, so timer overshoot of one frame is not added to the
 * next. Frames to this rank itself are local copies and pass unshaped.
 */
export class ShapedTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  private readonly model: LinkModel;
  /** Queue key ('intra' | 'inter' | 'dest:N') -> time the link is free again (clock ms). */
  private readonly freeAt = new Map<string, number>();
  private readonly waiting = new Set<{ timer: NodeJS.Timeout; fail: (error: Error) => void }>();
  private stats = emptyStats();
  private closed = false;

  constructor(
    private readonly inner: Transport,
    model: LinkModel,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.model = validateLinkModel({ sharing: 'port', ...model });
    this.rank = inner.rank;
    this.worldSize = inner.worldSize;
  }

  /** Link class of the frames this rank sends to `dest`. */
  linkClass(dest: number): LinkClass {
    return linkClassOf(this.rank, dest, this.model.nodeSize);
  }

  async send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (this.closed) throw new TransportClosedError(`rank ${this.rank}: send to rank ${dest} after close`);
    if (!Number.isInteger(dest) || dest < 0 || dest >= this.worldSize) throw new RankRangeError('destination', dest, this.worldSize);
    if (dest === this.rank) return this.inner.send(dest, key, frame);
    const cls = this.linkClass(dest);
    const spec = this.model[cls];
    const bytes = frameBytes(frame);
    const queue = this.model.sharing === 'pair' ? `dest:${dest}` : cls;
    const called = this.clock();
    const start = Math.max(called, this.freeAt.get(queue) ?? 0);
    const free = start + wireMs(spec, bytes, this.model.dilation);
    this.freeAt.set(queue, free);
    const deliverAt = free + (spec.latencyUs / 1e3) * this.model.dilation;

    await this.waitUntil(deliverAt, dest);
    const handedOff = this.clock();
    await this.inner.send(dest, key, frame);
    const done = this.clock();

    const modeled = deliverAt - called;
    const actual = done - called;
    const late = Math.max(0, actual - modeled);
    this.stats.frames++;
    this.stats.bytes += bytes;
    this.stats.modeledMs += modeled;
    this.stats.actualMs += actual;
    this.stats.hostMs += done - handedOff;
    this.stats.lateMs += late;
    this.stats.maxLateMs = Math.max(this.stats.maxLateMs, late);
  }

  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    return this.inner.receive(source, key, timeoutMs);
  }

  bytesSent(): number {
    return this.inner.bytesSent();
  }

  /** Modeled vs actual transfer times since the last `resetLinkStats`; see HostBoundReport. */
  hostBound(tolerance = 0.1): HostBoundReport {
    const s = this.stats;
    return { ...s, bound: s.frames > 0 && s.hostMs > tolerance * s.modeledMs };
  }

  resetLinkStats(): void {
    this.stats = emptyStats();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting) {
      clearTimeout(w.timer);
      w.fail(new TransportClosedError(`rank ${this.rank}: transport closed while a frame waited for its modeled link`));
    }
    this.waiting.clear();
    await this.inner.close();
  }

  /**
   * Waits until clock time `at`. Node timers count whole ms from a loop time that can be up to a
   * ms stale, so they may fire a little early: the timer is re-armed until `at` has passed. A wait
   * under a quarter ms is not worth a timer (they fire >= 1 ms late).
   */
  private waitUntil(at: number, dest: number): Promise<void> {
    if (at - this.clock() < 0.25) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const entry = { timer: undefined as unknown as NodeJS.Timeout, fail: reject };
      const arm = () => {
        entry.timer = setTimeout(() => {
          if (this.closed) {
            this.waiting.delete(entry);
            reject(new TransportClosedError(`rank ${this.rank}: transport closed before the frame to rank ${dest} left`));
          } else if (at - this.clock() > 0.05) {
            arm();
          } else {
            this.waiting.delete(entry);
            resolve();
          }
        }, Math.max(1, Math.ceil(at - this.clock())));
      };
      arm();
      this.waiting.add(entry);
    });
  }
}

function emptyStats(): Omit<HostBoundReport, 'bound'> {
  return { frames: 0, bytes: 0, modeledMs: 0, actualMs: 0, hostMs: 0, lateMs: 0, maxLateMs: 0 };
}
