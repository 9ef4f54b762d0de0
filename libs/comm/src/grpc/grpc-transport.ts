import * as grpc from '@grpc/grpc-js';
import { channelCredentials } from './tls';
import { RankRangeError, PeerUnreachableError, TransportClosedError } from '../transport/errors';
import type { FrameKey } from '../transport/frame-key';
import { checkOutgoing, payloadBytes } from '../transport/payload';
import type { IncomingFrame, OutgoingFrame, Transport } from '../transport/transport';
import { framePartMessages } from './frame-message';
import { PeerConnection } from './peer-connection';
import type { PeerMailbox } from './peer-mailbox';

/** Address of one rank's Peer service. */
export interface PeerEndpoint {
  rank: number;
  /** host:port */
  address: string;
}

export interface GrpcTransportOptions {
  runId: string;
  rank: number;
  /** Peer service address of every rank, indexed by rank (this rank's own entry included, unused). */
  peers: string[];
  /** This worker's mailbox, served by its Peer service; opened here for `runId`. */
  mailbox: PeerMailbox;
  /** Separate HTTP/2 connections to each peer; a frame's parts are spread over them. */
  connectionsPerPeer?: number;
  /** Largest data bytes in one Frame message; larger payloads travel in parts. */
  maxFrameBytes?: number;
  /** Most unacknowledged parts per connection. */
  ackWindow?: number;
  credentials?: grpc.ChannelCredentials;
  /** Cluster token sent on every Peer stream (`x-moe-token`); the peers require it when they have one. */
  token?: string;
}

/**
 * Defaults measured on loopback between two processes (bench/transport.bench.ts, 2 shared cores):
 * 16 MiB parts beat 4 MiB ones (fewer acks, no reassembly copy below 16 MiB); a second or fourth
 * connection per peer was not faster there (one event loop serves them all), so one is the
 * default. Raise connectionsPerPeer where the measurement says so.
 */
export const GRPC_TRANSPORT_DEFAULTS = { connectionsPerPeer: 1, maxFrameBytes: 16 * 1024 * 1024, ackWindow: 8 } as const;

/**
 * The Transport between worker processes: frames go out over Peer.Exchange streams (opened on
 * first use, `connectionsPerPeer` per peer, each its own HTTP/2 connection) and come in through
 * this worker's PeerMailbox. A payload larger than `maxFrameBytes` is split into parts, dealt
 * round-robin over the connections and reassembled by the receiver. A rank's frame to itself is
 * put into its own mailbox, never sent.
 */
export class GrpcTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  readonly runId: string;
  private readonly options: Required<Omit<GrpcTransportOptions, 'credentials' | 'token'>> & { credentials: grpc.ChannelCredentials; token?: string };
  private readonly links = new Map<number, PeerConnection[]>();
  private readonly nextConnection: number[];
  private sent = 0;
  private closed = false;

  constructor(options: GrpcTransportOptions) {
    const { rank, peers } = options;
    if (!Number.isInteger(rank) || rank < 0 || rank >= peers.length) throw new RankRangeError('rank', rank, peers.length);
    this.options = {
      ...GRPC_TRANSPORT_DEFAULTS,
      ...options,
      credentials: options.credentials ?? channelCredentials(),
    } as GrpcTransport['options'];
    for (const [name, value] of [
      ['connectionsPerPeer', this.options.connectionsPerPeer],
      ['maxFrameBytes', this.options.maxFrameBytes],
      ['ackWindow', this.options.ackWindow],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`GrpcTransport: ${name} ${value} must be a positive integer`);
    }
    this.rank = rank;
    this.worldSize = peers.length;
    this.runId = options.runId;
    this.nextConnection = new Array<number>(peers.length).fill(0);
    options.mailbox.open(options.runId, rank, peers.length);
  }

  async send(dest: number, key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (this.closed) throw new TransportClosedError(`rank ${this.rank}: send on a closed transport`);
    if (!Number.isInteger(dest) || dest < 0 || dest >= this.worldSize) throw new RankRangeError('destination', dest, this.worldSize);
    checkOutgoing(frame, key, dest);
    if (dest === this.rank) return this.options.mailbox.deliverLocal(key, frame);
    const connections = this.link(dest);
    const messages = framePartMessages(key, this.rank, frame, this.options.maxFrameBytes);
    const first = this.nextConnection[dest]!;
    this.nextConnection[dest] = (first + messages.length) % connections.length;
    await Promise.all(messages.map((m, part) => connections[(first + part) % connections.length]!.send(m, key, part)));
    this.sent += payloadBytes(frame.payload);
  }

  receive(source: number, key: FrameKey, timeoutMs: number): Promise<IncomingFrame> {
    if (this.closed) return Promise.reject(new TransportClosedError(`rank ${this.rank}: receive on a closed transport`));
    return this.options.mailbox.receive(source, key, timeoutMs);
  }

  bytesSent(): number {
    return this.sent;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.links.values()].flat();
    this.links.clear();
    await Promise.all(all.map((c) => c.close()));
    this.options.mailbox.closeRun(this.runId);
  }

  private link(dest: number): PeerConnection[] {
    let connections = this.links.get(dest);
    if (!connections) {
      const address = this.options.peers[dest];
      if (!address) throw new PeerUnreachableError(dest, '(none)', `no Peer address for rank ${dest}`);
      connections = Array.from(
        { length: this.options.connectionsPerPeer },
        (_, index) =>
          new PeerConnection({
            runId: this.runId,
            source: this.rank,
            dest,
            address,
            index,
            window: this.options.ackWindow,
            credentials: this.options.credentials,
            token: this.options.token,
          }),
      );
      this.links.set(dest, connections);
    }
    return connections;
  }
}
