import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, loadMoeProto } from '../proto/load';
import { tokenInterceptor } from './cluster-token';
import type { PeerAckOut, PeerClient, PeerMessage } from '../proto/types';
import { keyString, microBatchOf, type FrameKey } from '../transport/frame-key';
import { PeerRefusedError, PeerUnreachableError, TransportClosedError } from '../transport/errors';

export interface PeerConnectionOptions {
  runId: string;
  /** This rank (the sender). */
  source: number;
  dest: number;
  address: string;
  /** Index of this connection among those to `dest`. */
  index: number;
  /** Most parts written and not yet acknowledged. */
  window: number;
  credentials: grpc.ChannelCredentials;
  /** Cluster token sent as `x-moe-token` on the stream (see cluster-token.ts). */
  token?: string;
}

interface Pending {
  message: PeerMessage;
  key: FrameKey;
  part: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * One HTTP/2 connection to one peer, carrying one Peer.Exchange stream: a PeerHello, then frame
 * parts, each acknowledged by the peer in order. At most `window` parts are unacknowledged, and
 * no write happens while the stream's write() said to wait for 'drain'. Every connection has its
 * own channel with a local subchannel pool, so connections to one peer never share a socket.
 * A broken stream fails the parts it carried and is reopened by the next send.
 */
export class PeerConnection {
  private client?: PeerClient;
  private call?: grpc.ClientDuplexStream<PeerMessage, PeerAckOut>;
  private readonly waiting: Pending[] = [];
  private readonly inflight: Pending[] = [];
  private blocked = false;
  private closed = false;

  constructor(private readonly o: PeerConnectionOptions) {}

  /** Sends one part; resolves when the peer acknowledged it. */
  send(message: PeerMessage, key: FrameKey, part: number): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError(`rank ${this.o.source}: send to rank ${this.o.dest} on a closed connection`));
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ message, key, part, resolve, reject });
      this.pump();
    });
  }

  /** Parts written or waiting, not yet acknowledged. */
  pending(): number {
    return this.waiting.length + this.inflight.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fail(new TransportClosedError(`rank ${this.o.source}: connection ${this.o.index} to rank ${this.o.dest} closed`));
    this.client?.close();
  }

  private pump(): void {
    while (this.waiting.length > 0 && this.inflight.length < this.o.window && !this.blocked) {
      const call = this.call ?? this.open();
      const next = this.waiting.shift()!;
      this.inflight.push(next);
      if (!call.write(next.message)) {
        this.blocked = true;
        call.once('drain', () => {
          this.blocked = false;
          this.pump();
        });
      }
    }
  }

  private open(): grpc.ClientDuplexStream<PeerMessage, PeerAckOut> {
    const { runId, source, dest, address, index, credentials } = this.o;
    this.client ??= new (loadMoeProto().moe.v1.Peer)(address, credentials, {
      ...GRPC_OPTIONS,
      // a channel of its own, so each connection to a peer is its own HTTP/2 connection
      'grpc.use_local_subchannel_pool': 1,
      'grpc.primary_user_agent': `moe-peer/${source}-${dest}-${index}`,
      ...(this.o.token ? { interceptors: [tokenInterceptor(this.o.token)] } : {}),
    });
    const call = this.client.Exchange();
    this.call = call;
    this.blocked = false;
    call.write({ hello: { runId, source, connection: index } });
    call.on('data', (ack: PeerAckOut) => this.onAck(ack));
    call.on('error', (error: grpc.ServiceError) => {
      if (this.call === call) this.fail(new PeerUnreachableError(dest, address, `${grpc.status[error.code] ?? error.code}: ${error.details || error.message}`));
    });
    call.on('status', (status: grpc.StatusObject) => {
      if (this.call === call && status.code === grpc.status.OK) this.fail(new PeerUnreachableError(dest, address, 'the peer ended the stream'));
    });
    return call;
  }

  private onAck(ack: PeerAckOut): void {
    const next = this.inflight.shift();
    if (!next) return; // an ack for nothing: a confused peer; nothing waits for it
    const { key, part } = next;
    if (ack.error) {
      next.reject(new PeerRefusedError(this.o.dest, key, ack.error));
    } else if (
      ack.step !== key.step ||
      (ack.microBatch ?? 0) !== microBatchOf(key) ||
      ack.layer !== key.layer ||
      ack.chunk !== key.chunk ||
      ack.phase !== key.phase ||
      ack.part !== part
    ) {
      const got = `step ${ack.step} micro-batch ${ack.microBatch ?? 0} layer ${ack.layer} chunk ${ack.chunk} ${ack.phase} part ${ack.part}`;
      next.reject(new PeerRefusedError(this.o.dest, key, `acknowledged ${got} where part ${part} of ${keyString(key)} was next`));
    } else {
      next.resolve();
    }
    this.pump();
  }

  /** Fails every part written or waiting, and drops the stream (the next send opens a new one). */
  private fail(error: Error): void {
    const call = this.call;
    this.call = undefined;
    this.blocked = false;
    if (call) {
      call.removeAllListeners('drain');
      call.on('error', () => {}); // a late error of the dropped stream has nobody to tell
      call.cancel();
    }
    for (const p of this.inflight.splice(0)) p.reject(error);
    for (const p of this.waiting.splice(0)) p.reject(error);
  }
}
