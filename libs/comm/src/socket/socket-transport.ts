import type { TlsFiles } from '../grpc/tls';
import { GrpcTransport, type GrpcTransportOptions } from '../grpc/grpc-transport';
import { channelCredentials } from '../grpc/tls';
import { PeerUnreachableError, RankRangeError, TransportClosedError } from '../transport/errors';
import type { FrameKey } from '../transport/frame-key';
import { checkOutgoing, payloadBytes } from '../transport/payload';
import type { IncomingFrame, OutgoingFrame, Transport } from '../transport/transport';
import { askDataPlanes } from './negotiate';
import { SocketLink } from './socket-link';
import { localHostId } from './socket-server';

/**
 * Which data plane a worker sends over: `grpc` (Peer.Exchange only), `socket` (the socket data
 * plane to every peer; a peer that does not speak it is an error), `auto` (the socket data plane
 * to every peer that speaks it, Exchange to the others).
 */
export type DataPlaneChoice = 'grpc' | 'socket' | 'auto';
export const DATA_PLANE_CHOICES: readonly DataPlaneChoice[] = ['grpc', 'socket', 'auto'];

export interface SocketTransportOptions extends GrpcTransportOptions {
  /** `socket` or `auto` (for `grpc`, use GrpcTransport). */
  plane: 'socket' | 'auto';
  /** Mutual TLS files for peers whose socket endpoint speaks TLS. */
  tls?: TlsFiles;
  /** Most unacknowledged frames per socket link. */
  socketWindow?: number;
  /** Deadline of the Peer.DataPlanes call and of a socket's connect and handshake. */
  negotiateTimeoutMs?: number;
}

type Route = { plane: 'socket'; link: SocketLink } | { plane: 'grpc' };

/**
 * The Transport of a worker that speaks the socket data plane: to each peer it first asks
 * (Peer.DataPlanes over gRPC, once per run) whether the peer speaks it too; if so frames go over
 * a socket link, else over Peer.Exchange (the GrpcTransport inside, which also owns the mailbox
 * both planes deliver into). Callers see one Transport either way.
 */
export class SocketTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  private readonly grpc: GrpcTransport;
  private readonly routes = new Map<number, Promise<Route>>();
  private readonly hostId = localHostId();
  private readonly used = new Set<'socket' | 'grpc'>();
  private socketSent = 0;
  private closed = false;

  constructor(private readonly o: SocketTransportOptions) {
    this.grpc = new GrpcTransport(o);
    this.rank = this.grpc.rank;
    this.worldSize = this.grpc.worldSize;
    // Ask every peer now, while the run is being set up, so the first step does not wait for it;
    // a failure here is asked again (and reported) by the first send to that peer.
    for (let dest = 0; dest < this.worldSize; dest++) if (dest !== this.rank) this.route(dest).catch(() => {});
  }

  async send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (this.closed) throw new TransportClosedError(`rank ${this.rank}: send on a closed transport`);
    if (!Number.isInteger(dest) || dest < 0 || dest >= this.worldSize) throw new RankRangeError('destination', dest, this.worldSize);
    if (dest === this.rank) return this.grpc.send(dest, key, frame);
    checkOutgoing(frame, key, dest);
    const route = await this.route(dest);
    this.used.add(route.plane);
    if (route.plane === 'grpc') return this.grpc.send(dest, key, frame);
    await route.link.send(key, frame);
    this.socketSent += payloadBytes(frame.payload);
  }

  /**
   * Resolves once every peer has been asked which plane it speaks and every socket link has
   * shaken hands. Never rejects: a peer that failed is asked again, and its error reported, by
   * the first send to it.
   */
  async ready(): Promise<void> {
    const routes = [...Array(this.worldSize).keys()].filter((d) => d !== this.rank).map((d) => this.route(d));
    await Promise.all(routes.map((r) => r.then((route) => (route.plane === 'socket' ? route.link.open() : undefined)).catch(() => {})));
  }

  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    return this.grpc.receive(source, key, timeoutMs);
  }

  bytesSent(): number {
    return this.socketSent + this.grpc.bytesSent();
  }

  /** The planes frames went out over so far: "socket", "grpc", "socket+grpc", or "" before any. */
  planesUsed(): string {
    return (['socket', 'grpc'] as const).filter((p) => this.used.has(p)).join('+');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const routes = await Promise.allSettled(this.routes.values());
    this.routes.clear();
    await Promise.all(routes.map((r) => (r.status === 'fulfilled' && r.value.plane === 'socket' ? r.value.link.close() : undefined)));
    await this.grpc.close();
  }

  private route(dest: number): Promise<Route> {
    let route = this.routes.get(dest);
    if (!route) {
      route = this.negotiate(dest);
      this.routes.set(dest, route);
      // a failed negotiation is asked again by the next send (the peer may have been starting)
      route.catch(() => this.routes.get(dest) === route && this.routes.delete(dest));
    }
    return route;
  }

  private async negotiate(dest: number): Promise<Route> {
    const address = this.o.peers[dest]!;
    const endpoint = await askDataPlanes({
      runId: this.o.runId,
      source: this.rank,
      dest,
      address,
      credentials: this.o.credentials ?? channelCredentials(),
      token: this.o.token,
      timeoutMs: this.o.negotiateTimeoutMs ?? 10_000,
    });
    if (!endpoint) {
      if (this.o.plane === 'socket') {
        throw new PeerUnreachableError(dest, address, 'it speaks only gRPC Exchange, and this worker was told --transport socket; use --transport auto (or grpc) to mix');
      }
      return { plane: 'grpc' };
    }
    const link = new SocketLink({
      runId: this.o.runId,
      source: this.rank,
      dest,
      endpoint,
      hostId: this.hostId,
      window: this.o.socketWindow ?? 8,
      token: this.o.token,
      tls: this.o.tls,
      connectTimeoutMs: this.o.negotiateTimeoutMs ?? 10_000,
    });
    return { plane: 'socket', link };
  }
}
