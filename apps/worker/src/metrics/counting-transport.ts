/**
 * A Transport that counts the bytes this rank sends, by link class, for the worker's metrics.
 * The class comes from the backend's link model (`intra` / `inter` node, as the shaping uses);
 * a worker without one (real math on this host) counts under `unmodeled`. One Map lookup and one
 * add a frame: nothing a step can feel. Frames to itself are local copies and are not counted.
 */
import { frameBytes, type FrameKey, type IncomingFrame, type OutgoingFrame, type Transport } from '@moe/comm';
import { linkClassOf } from '@moe/sim';

export type LinkClassLabel = 'intra' | 'inter' | 'unmodeled';

export class CountingTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;

  /** @param nodeSize ranks per node of the link model; undefined: no link model. */
  constructor(
    private readonly inner: Transport,
    private readonly nodeSize: number | undefined,
    private readonly count: (linkClass: LinkClassLabel, bytes: number) => void,
  ) {
    this.rank = inner.rank;
    this.worldSize = inner.worldSize;
  }

  send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (dest !== this.rank) {
      this.count(this.nodeSize === undefined ? 'unmodeled' : linkClassOf(this.rank, dest, this.nodeSize), frameBytes(frame));
    }
    return this.inner.send(dest, key, frame);
  }

  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    return this.inner.receive(source, key, timeoutMs);
  }

  bytesSent(): number {
    return this.inner.bytesSent();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
