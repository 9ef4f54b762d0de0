import net from 'node:net';
import tls from 'node:tls';
import type { SocketEndpointOut as SocketEndpoint } from '../proto/types';
import type { TlsFiles } from '../grpc/tls';
import type { FramePart } from '../grpc/frame-message';
import type { PeerMailbox } from '../grpc/peer-mailbox';
import { PeerUnreachableError, TransportClosedError } from '../transport/errors';
import { AckQueue } from './ack-queue';
import { RecordReader } from './record-reader';
import { ackGeneration, ackSettled, bodyText, decodeFrameHeader, encodeHello, encodeRecord, frameProblem, kindName, RecordKind, SocketProtocolError, type FrameHeader } from './records';

export interface InboundLinkOptions {
  runId: string;
  /** This rank: the receiver, which dials. */
  rank: number;
  /** The peer whose frames come in on this link. */
  source: number;
  /** The peer's socket endpoint (its Peer.DataPlanes answer). */
  endpoint: SocketEndpoint;
  /** This host's id (localHostId()): the Unix socket is used when the peer's is the same. */
  hostId: string;
  /** Where received frames go (the mailbox this rank's receive() takes from). */
  mailbox: PeerMailbox;
  token?: string;
  /** Mutual TLS files; required when the peer's endpoint speaks TLS. */
  tls?: TlsFiles;
  /** How long connecting and the handshake may take. */
  connectTimeoutMs?: number;
  /**
   * Sends acks of this link's frames on this rank's connection to the same peer (the one this
   * rank writes its frames on), where the peer reads them best; false when that connection is
   * not up, and they go back on this link's own connection. See records.ts.
   */
  sendAcks?: (bytes: Buffer) => boolean;
  /** Takes an ack that came on this link for frames this rank sent the peer (on the other connection). */
  onAck?: (generation: number, settled: number, error: string) => void;
}

/** Largest frame body accepted (the gRPC path splits larger ones into parts; this one reads them whole). */
const MAX_FRAME_BODY_BYTES = 2 ** 31;
/** After a connection breaks, redial this many times, this far apart, unless closed (a peer that is gone refuses them fast). */
const REDIAL_DELAYS_MS = [100, 500, 2_000];

/**
 * The receiving end of the socket data plane from one peer. This rank dials the peer (Unix
 * socket on the same host, else TCP, TLS when the peer's endpoint says so) and says hello with
 * the run, its rank and the cluster token; the peer's socket server answers welcome and from
 * then on writes its frames to this rank on this connection.
 *
 * Frames are read with the socket's `onread`: straight into a buffer of the frame's size
 * (RecordReader), with no per-read allocation, and handed to the mailbox as views of it. Each
 * frame is acknowledged once the mailbox took it (or refused it); the acks of one turn of the
 * event loop leave together, as one record saying how many frames are settled.
 */
export class InboundLink {
  readonly address: string;
  private socket?: net.Socket;
  private opening?: Promise<void>;
  private closed = false;
  private redials = 0;
  private generation = 0;
  private acks?: AckQueue;

  constructor(private readonly o: InboundLinkOptions) {
    this.address = this.useUnix() ? `unix:${o.endpoint.unixPath}` : o.endpoint.tcpAddress;
  }

  /** Dials and shakes hands (once; again after the connection broke). Rejects with PeerUnreachableError. */
  open(): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError(`rank ${this.o.rank}: socket link from rank ${this.o.source} is closed`));
    this.opening ??= this.connect();
    return this.opening;
  }

  /** The acks due now, to leave with a frame this rank writes to the peer (see AckQueue.take). */
  takeAcks(): Buffer | undefined {
    return this.acks?.take();
  }

  /** Says goodbye (so the peer knows the end is clean) and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const socket = this.socket;
    this.socket = undefined;
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.end(encodeRecord(RecordKind.Bye), () => resolve());
        setTimeout(resolve, 1_000).unref();
      });
      socket.destroy();
    }
  }

  private useUnix(): boolean {
    const e = this.o.endpoint;
    return !!e.unixPath && e.hostId === this.o.hostId && !e.tls;
  }

  private connect(): Promise<void> {
    const { endpoint, source, rank, runId, mailbox } = this.o;
    if (endpoint.tls && !this.o.tls) {
      return Promise.reject(new PeerUnreachableError(source, this.address, 'its socket data plane speaks TLS but this worker has no TLS files (MOE_TLS_CERT, MOE_TLS_KEY, MOE_TLS_CA)'));
    }
    return new Promise<void>((resolve, reject) => {
      let welcomed = false;
      let bye = false;
      let untrack: (() => void) | undefined;
      const generation = ++this.generation;
      const acks = new AckQueue(generation, (bytes) => this.o.sendAcks?.(bytes) || (!socket.destroyed && socket.write(bytes)));
      const reader = new RecordReader((kind, head, at, body) => {
        if (!welcomed) return greeted(kind, body);
        if (kind === RecordKind.Frame) return this.onFrame(head, at, body, acks);
        if (kind === RecordKind.Ack) return this.o.onAck?.(ackGeneration(head, at), ackSettled(head, at), body.byteLength > 0 ? bodyText(body) : '');
        if (kind === RecordKind.Bye) return void (bye = true);
        throw new SocketProtocolError(`sent a ${kindName(kind)} record where frames and acks were expected`);
      });
      const socket = this.dial({ buffer: () => reader.nextBuffer(), callback: (n: number) => read(n) });
      const read = (n: number): boolean => {
        try {
          reader.onRead(n);
        } catch (error) {
          socket.destroy(error as SocketProtocolError);
        }
        return true; // keep reading: the sender's window bounds what arrives
      };
      const timeoutMs = this.o.connectTimeoutMs ?? 10_000;
      const timer = setTimeout(() => socket.destroy(new Error(`no handshake within ${timeoutMs} ms`)), timeoutMs);
      const greeted = (kind: RecordKind, body: Buffer) => {
        if (kind === RecordKind.Refuse) return void socket.destroy(new Error(`refused the connection: ${bodyText(body)}`));
        if (kind !== RecordKind.Welcome) return void socket.destroy(new Error(`answered the hello with a ${kindName(kind)} record`));
        welcomed = true;
        clearTimeout(timer);
        reader.limitFrameBody(MAX_FRAME_BODY_BYTES);
        this.socket = socket;
        this.acks = acks;
        this.redials = 0;
        untrack = mailbox.track({ source, connection: 0, runId, peer: this.useUnix() ? 'unix socket' : endpoint.tcpAddress });
        resolve();
      };
      let why = '';
      socket.on('error', (error) => (why ||= error.message));
      socket.on('close', () => {
        clearTimeout(timer);
        untrack?.();
        if (this.socket === socket) this.socket = undefined;
        if (this.acks === acks) this.acks = undefined;
        if (!welcomed) {
          this.opening = undefined;
          const error = new PeerUnreachableError(source, this.address, why || 'the peer closed the connection during the handshake');
          // the receives waiting for its frames learn why now, not at their timeout
          if (!this.closed) mailbox.peerLost(runId, source, this.address, why || 'the handshake failed');
          return reject(error);
        }
        if (this.closed || bye) return;
        // Ended without a bye: the peer went away mid-stream (killed, or its connection broke).
        const detail = why || (reader.midRecord() ? 'its socket closed in the middle of a frame' : 'its socket closed without saying goodbye');
        mailbox.peerLost(runId, source, this.address, detail);
        this.redial();
      });
      socket.write(encodeHello({ runId, rank, token: this.o.token ?? '', generation }));
    });
  }

  /** After a break, dials again a few times: a peer that is still there may have more to send. */
  private redial(): void {
    this.opening = undefined;
    const delay = REDIAL_DELAYS_MS[this.redials++];
    if (delay === undefined || this.closed) return;
    setTimeout(() => !this.closed && !this.opening && this.open().catch(() => this.redial()), delay).unref();
  }

  private onFrame(head: Buffer, at: number, body: Buffer, acks: AckQueue): void {
    const f = decodeFrameHeader(head, at);
    const seq = acks.received(f.seq);
    const problem = frameProblem(f);
    if (problem) return acks.settle(seq, problem);
    let waiting: Promise<void> | undefined;
    try {
      waiting = this.o.mailbox.acceptWhole(this.o.runId, framePart(f, this.o.source, body));
    } catch (error) {
      return acks.settle(seq, errorText(error));
    }
    // Most frames are in at once; one that waits for room is acknowledged once it is in. (No
    // named closure here: tsx names each one with Object.defineProperty, a frame's worth of work.)
    if (!waiting) acks.settle(seq, '');
    else waiting.then(() => acks.settle(seq, ''), (error: unknown) => acks.settle(seq, errorText(error)));
  }

  private dial(onread: net.OnReadOpts): net.Socket {
    const e = this.o.endpoint;
    if (this.useUnix()) return net.connect({ path: e.unixPath, onread });
    const colon = e.tcpAddress.lastIndexOf(':');
    const host = e.tcpAddress.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(e.tcpAddress.slice(colon + 1));
    if (e.tls) {
      const f = this.o.tls!;
      // tls.connect takes `onread` as net.connect does (Node docs), though @types/node leaves it out
      const options = { host, port, cert: f.cert, key: f.key, ca: f.ca, servername: net.isIP(host) ? undefined : host, onread };
      return tls.connect(options as tls.ConnectionOptions);
    }
    return net.connect({ host, port, noDelay: true, onread });
  }
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** A checked frame header and its body as the mailbox takes it (views of the body, no copy). */
function framePart(f: FrameHeader, source: number, body: Buffer): FramePart {
  return {
    key: f.key,
    source,
    part: 0,
    parts: 1,
    dtype: f.dtype,
    rows: f.rows,
    cols: f.cols,
    blockSize: f.blockSize,
    totalBytes: f.dataBytes,
    expertIds: body.subarray(0, f.idBytes),
    weights: body.subarray(f.idBytes, f.idBytes + f.weightBytes),
    scales: body.subarray(f.idBytes + f.weightBytes, f.idBytes + f.weightBytes + f.scaleBytes),
    data: body.subarray(f.idBytes + f.weightBytes + f.scaleBytes),
  };
}
