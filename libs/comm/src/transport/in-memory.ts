import type { FrameKey } from './frame-key';
import { RankRangeError, TransportClosedError } from './errors';
import { FrameStore } from './frame-store';
import { checkOutgoing, copyFrame, payloadBytes } from './payload';
import type { IncomingFrame, OutgoingFrame, Transport } from './transport';

/**
 * One rank of an in-process world: frames go straight into the destination rank's FrameStore
 * (copied, as a wire would), with the same keys, duplicate checks, bounds and timeouts as gRPC.
 */
class InMemoryTransport implements Transport {
  private sent = 0;
  private closed = false;

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly stores: FrameStore[],
  ) {}

  async send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (this.closed) throw new TransportClosedError(`rank ${this.rank}: send on a closed transport`);
    if (!Number.isInteger(dest) || dest < 0 || dest >= this.worldSize) throw new RankRangeError('destination', dest, this.worldSize);
    checkOutgoing(frame, key, dest);
    const store = this.stores[dest]!;
    store.check(this.rank, key);
    const copy = copyFrame(frame);
    const bytes = payloadBytes(copy.payload);
    await store.reserve(bytes, this.rank, key);
    try {
      store.put(this.rank, key, { source: this.rank, ...copy }, bytes);
    } catch (error) {
      store.release(bytes);
      throw error;
    }
    if (dest !== this.rank) this.sent += bytes;
  }

  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    if (this.closed) return Promise.reject(new TransportClosedError(`rank ${this.rank}: receive on a closed transport`));
    if (!Number.isInteger(source) || source < 0 || source >= this.worldSize) {
      return Promise.reject(new RankRangeError('source', source, this.worldSize));
    }
    return this.stores[this.rank]!.take(source, key, timeoutMs);
  }

  bytesSent(): number {
    return this.sent;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stores[this.rank]!.close('transport closed');
  }
}

/**
 * `worldSize` connected transports, rank r at index r, for unit tests: same semantics as gRPC
 * (keys, duplicates, timeouts, bounded mailboxes of `capacityBytes`), no network.
 */
export function createInMemoryTransports(worldSize: number, options: { capacityBytes?: number } = {}): Transport[] {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize ${worldSize} must be a positive integer`);
  const stores = Array.from({ length: worldSize }, (_, rank) => new FrameStore(rank, options.capacityBytes));
  return stores.map((_, rank) => new InMemoryTransport(rank, worldSize, stores));
}
