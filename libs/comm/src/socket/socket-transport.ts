import type { TlsFiles } from '../grpc/tls';
import { GrpcTransport, type GrpcTransportOptions } from '../grpc/grpc-transport';
import { channelCredentials } from '../grpc/tls';
import { PeerUnreachableError, RankRangeError, TransportClosedError } from '../transport/errors';
import type { FrameKey } from '../transport/frame-key';
import { checkOutgoing } from '../transport/payload';
import type { IncomingFrame, OutgoingFrame, Transport } from '../transport/transport';
import { InboundLink } from './inbound-link';
import { askDataPlanes } from './negotiate';
import { OutboundLink } from './outbound-link';
import type { ReceiverConnection } from './receiver-connection';
import { localHostId, type PeerSocketServer } from './socket-server';

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
  /**
   * This worker's socket server (whose endpoint its Peer.DataPlanes offers): peers dial it to
   * receive this rank's frames. Without one, this rank can neither send nor receive over the
   * socket data plane, and every peer is reached over Exchange (`socket`: an error).
   */
  server?: PeerSocketServer;
  /** Mutual TLS files for peers whose socket endpoint speaks TLS. */
  tls?: TlsFiles;
  /** Most unacknowledged frames per socket link. */
  socketWindow?: number;
  /** Deadline of the Peer.DataPlanes call and of a socket's connect and handshake. */
  negotiateTimeoutMs?: number;
}

type Route = { plane: 'socket'; out: OutboundLink; in: InboundLink } | { plane: 'grpc' };

/**
 * The Transport of a worker that speaks the socket data plane: to each peer it first asks
 * (Peer.DataPlanes over gRPC, once per run) whether the peer speaks it too. If both do, this
 * rank dials the peer's socket server to receive the peer's frames (InboundLink), and the peer
 * dials this rank's to receive this rank's (OutboundLink, on the connection it dialed): the
 * receiving side of every connection is the one that dialed, so it can read frames straight
 * into buffers of their size. Otherwise frames go over Peer.Exchange (the GrpcTransport inside,
 * which also owns the mailbox both planes deliver into). Callers see one Transport either way.
 */
export class SocketTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  private readonly grpc: GrpcTransport;
  private readonly routes = new Map<number, Promise<Route>>();
  /** Routes once known, so a send does not wait a turn for a settled promise. */
  private readonly known = new Map<number, Route>();
  private readonly outbound = new Map<number, OutboundLink>();
  private readonly stopTaking?: () => void;
  private readonly hostId = localHostId();
  private readonly used = new Set<'socket' | 'grpc'>();
  private closed = false;

  constructor(private readonly o: SocketTransportOptions) {
    this.grpc = new GrpcTransport(o);
    this.rank = this.grpc.rank;
    this.worldSize = this.grpc.worldSize;
    this.stopTaking = o.server?.receivers(o.runId, (conn) => this.take(conn));
    // Ask every peer now, while the run is being set up, so the first step does not wait for it;
    // a failure here is asked again (and reported) by the first send to that peer.
    for (let dest = 0; dest < this.worldSize; dest++) if (dest !== this.rank) this.route(dest).catch(() => {});
  }

  send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    try {
      if (this.closed) throw new TransportClosedError(`rank ${this.rank}: send on a closed transport`);
      if (!Number.isInteger(dest) || dest < 0 || dest >= this.worldSize) throw new RankRangeError('destination', dest, this.worldSize);
      if (dest === this.rank) return this.grpc.send(dest, key, frame);
      checkOutgoing(frame, key, dest);
    } catch (error) {
      return Promise.reject(error);
    }
    // Every frame once the route is known: no await on a settled promise (a turn of the microtask queue each).
    const route = this.known.get(dest);
    return route ? this.sendOn(route, dest, key, frame) : this.route(dest).then((r) => this.sendOn(r, dest, key, frame));
  }

  private sendOn(route: Route, dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    this.used.add(route.plane);
    if (route.plane === 'grpc') return this.grpc.send(dest, key, frame);
    return route.out.send(key, frame);
  }

  /**
   * Resolves once every peer has been asked which plane it speaks and every socket connection,
   * both ways, has shaken hands. Never rejects: a peer that failed is asked again, and its error reported, by
   * the first send to it.
   */
  async ready(): Promise<void> {
    const routes = [...Array(this.worldSize).keys()].filter((d) => d !== this.rank).map((d) => this.route(d));
    const linked = (route: Route) => (route.plane === 'socket' ? Promise.all([route.in.open(), route.out.connected()]) : undefined);
    await Promise.all(routes.map((r) => r.then(linked).catch(() => {})));
  }

  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    return this.grpc.receive(source, key, timeoutMs);
  }

  bytesSent(): number {
    let socketSent = 0;
    for (const link of this.outbound.values()) socketSent += link.bytesTaken();
    return socketSent + this.grpc.bytesSent();
  }

  /** The planes frames went out over so far: "socket", "grpc", "socket+grpc", or "" before any. */
  planesUsed(): string {
    return (['socket', 'grpc'] as const).filter((p) => this.used.has(p)).join('+');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTaking?.();
    const routes = await Promise.allSettled(this.routes.values());
    this.routes.clear();
    await Promise.all([
      ...[...this.outbound.values()].map((link) => link.close()),
      ...routes.map((r) => (r.status === 'fulfilled' && r.value.plane === 'socket' ? r.value.in.close() : undefined)),
    ]);
    await this.grpc.close();
  }

  private route(dest: number): Promise<Route> {
    let route = this.routes.get(dest);
    if (!route) {
      route = this.negotiate(dest);
      this.routes.set(dest, route);
      route.then((r) => this.routes.get(dest) === route && this.known.set(dest, r)).catch(() => {});
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
    if (!endpoint || !this.o.server) {
      if (this.o.plane === 'socket') {
        const why = endpoint
          ? 'this worker serves no socket data plane for it to dial (no socket server); use --transport auto (or grpc)'
          : 'it speaks only gRPC Exchange, and this worker was told --transport socket; use --transport auto (or grpc) to mix';
        throw new PeerUnreachableError(dest, address, why);
      }
      return { plane: 'grpc' };
    }
    if (endpoint.tls && !this.o.tls) {
      throw new PeerUnreachableError(dest, address, 'its socket data plane speaks TLS but this worker has no TLS files (MOE_TLS_CERT, MOE_TLS_KEY, MOE_TLS_CA)');
    }
    const out = this.outboundTo(dest);
    const inbound = new InboundLink({
      runId: this.o.runId,
      rank: this.rank,
      source: dest,
      endpoint,
      hostId: this.hostId,
      mailbox: this.o.mailbox,
      token: this.o.token,
      tls: this.o.tls,
      connectTimeoutMs: this.o.negotiateTimeoutMs ?? 10_000,
      // acks cross over: see records.ts
      sendAcks: (bytes) => out.sendAcks(bytes),
      onAck: (generation, settled, error) => out.onAck(generation, settled, error),
    });
    out.pullAcks = () => inbound.takeAcks();
    if (this.closed) throw new TransportClosedError(`rank ${this.rank}: transport closed while asking rank ${dest}`);
    inbound.open().catch(() => {}); // its failure reaches the receives (peerLost) and this peer's sends (it never dials in)
    return { plane: 'socket', in: inbound, out };
  }

  /** The sending link to `dest`, made on first need (a send, or the peer dialing in first). */
  private outboundTo(dest: number): OutboundLink {
    let link = this.outbound.get(dest);
    if (!link) {
      link = new OutboundLink({
        source: this.rank,
        dest,
        address: this.o.peers[dest]!,
        window: this.o.socketWindow ?? 8,
        connectTimeoutMs: this.o.negotiateTimeoutMs ?? 10_000,
      });
      this.outbound.set(dest, link);
    }
    return link;
  }

  /** A peer dialed this rank's socket server for this run: frames to it go out on that connection. */
  private take(conn: ReceiverConnection): void {
    if (this.closed) return conn.refuse(`rank ${this.rank}'s transport of run ${conn.runId} is closed`);
    if (!Number.isInteger(conn.rank) || conn.rank < 0 || conn.rank >= this.worldSize || conn.rank === this.rank) {
      return conn.refuse(`rank ${conn.rank} is not a peer of rank ${this.rank} in a world of ${this.worldSize}`);
    }
    this.outboundTo(conn.rank).attach(conn);
  }
}
