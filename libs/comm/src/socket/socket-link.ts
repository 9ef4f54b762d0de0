import net from 'node:net';
import tls from 'node:tls';
import type { SocketEndpointOut as SocketEndpoint } from '../proto/types';
import type { TlsFiles } from '../grpc/tls';
import { PeerRefusedError, PeerUnreachableError, TransportClosedError } from '../transport/errors';
import { microBatchOf, type FrameKey } from '../transport/frame-key';
import type { OutgoingFrame } from '../transport/transport';
import { encodeHeader, RecordReader, SocketProtocolError, type FrameRecord, type SocketRecord } from './records';

export interface SocketLinkOptions {
  runId: string;
  /** This rank (the sender). */
  source: number;
  dest: number;
  endpoint: SocketEndpoint;
  /** This host's id (localHostId()): the Unix socket is used when the peer's is the same. */
  hostId: string;
  /** Most frames written and not yet acknowledged. */
  window: number;
  token?: string;
  /** Mutual TLS files; required when the peer's endpoint speaks TLS. */
  tls?: TlsFiles;
  /** How long connecting and the handshake may take. */
  connectTimeoutMs?: number;
}

interface Pending {
  record: FrameRecord;
  frame: OutgoingFrame;
  key: FrameKey;
  resolve: () => void;
  reject: (error: Error) => void;
}

const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The sending end of the socket data plane to one peer: one connection (Unix socket on the same
 * host, else TCP, TLS when the peer's endpoint says so), a hello with the run, the source rank
 * and the cluster token, then frames, each written as header and payload views (no copy) and
 * acknowledged in order. At most `window` frames are unacknowledged, and nothing is written while
 * the socket says to wait for 'drain'. A broken connection fails what it carried; the next send
 * reconnects.
 */
export class SocketLink {
  private socket?: net.Socket;
  private ready?: Promise<net.Socket>;
  private readonly waiting: Pending[] = [];
  private readonly inflight: Pending[] = [];
  private blocked = false;
  private closed = false;
  private seq = 0;
  readonly address: string;

  constructor(private readonly o: SocketLinkOptions) {
    const e = o.endpoint;
    this.address = this.useUnix() ? `unix:${e.unixPath}` : e.tcpAddress;
  }

  /** Sends one frame; resolves when the peer acknowledged it (it is in the peer's mailbox). */
  send(key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError(`rank ${this.o.source}: send to rank ${this.o.dest} on a closed socket link`));
    const p = frame.payload;
    const record: FrameRecord = {
      kind: 'frame',
      seq: this.seq++,
      ...key,
      microBatch: microBatchOf(key),
      dtype: p.dtype,
      rows: p.rows,
      cols: p.cols,
      blockSize: p.dtype === 'FP8_E4M3' ? (p.blockSize ?? 0) : 0,
      idBytes: frame.expertIds?.byteLength ?? 0,
      ...(frame.weights && frame.weights.byteLength > 0 ? { weightBytes: frame.weights.byteLength } : {}),
      scaleBytes: p.scales?.byteLength ?? 0,
      dataBytes: p.data.byteLength,
    };
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ record, frame, key, resolve, reject });
      this.pump();
    });
  }

  /** Connects and shakes hands now, instead of on the first send. */
  async open(): Promise<void> {
    if (this.closed) throw new TransportClosedError(`rank ${this.o.source}: socket link to rank ${this.o.dest} is closed`);
    await this.connect();
  }

  /** Says goodbye (so the peer knows the end is clean) and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const socket = this.socket;
    this.fail(new TransportClosedError(`rank ${this.o.source}: socket link to rank ${this.o.dest} closed`), false);
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.end(encodeHeader({ kind: 'bye' }), () => resolve());
        setTimeout(resolve, 1_000).unref();
      });
      socket.destroy();
    }
  }

  private useUnix(): boolean {
    const e = this.o.endpoint;
    return !!e.unixPath && e.hostId === this.o.hostId && !e.tls;
  }

  private pump(): void {
    if (!this.socket) {
      this.connect().catch(() => {}); // connect() fails the waiting frames itself
      return;
    }
    const socket = this.socket;
    while (this.waiting.length > 0 && this.inflight.length < this.o.window && !this.blocked) {
      const next = this.waiting.shift()!;
      this.inflight.push(next);
      const { frame } = next;
      socket.cork();
      socket.write(encodeHeader(next.record));
      if (frame.expertIds && frame.expertIds.byteLength > 0) socket.write(bytes(frame.expertIds));
      if (frame.weights && frame.weights.byteLength > 0) socket.write(bytes(frame.weights));
      if (frame.payload.scales && frame.payload.scales.byteLength > 0) socket.write(frame.payload.scales);
      const more = frame.payload.data.byteLength > 0 ? socket.write(frame.payload.data) : true;
      socket.uncork();
      if (!more) {
        this.blocked = true;
        socket.once('drain', () => {
          this.blocked = false;
          this.pump();
        });
      }
    }
  }

  private connect(): Promise<net.Socket> {
    if (this.ready) return this.ready;
    const { endpoint, dest, runId, source } = this.o;
    if (endpoint.tls && !this.o.tls) {
      const error = new PeerUnreachableError(dest, this.address, 'its socket data plane speaks TLS but this worker has no TLS files (MOE_TLS_CERT, MOE_TLS_KEY, MOE_TLS_CA)');
      this.fail(error, true);
      return Promise.reject(error);
    }
    const unreachable = (why: string) => new PeerUnreachableError(dest, this.address, why);
    this.ready = new Promise<net.Socket>((resolve, reject) => {
      const socket = this.dial();
      const reader = new RecordReader();
      let welcomed = false;
      const timer = setTimeout(() => {
        socket.destroy(new Error(`no handshake within ${this.o.connectTimeoutMs ?? 10_000} ms`));
      }, this.o.connectTimeoutMs ?? 10_000);
      const broken = (why: string) => {
        clearTimeout(timer);
        const error = unreachable(why);
        if (this.socket === socket || !welcomed) {
          this.socket = undefined;
          this.ready = undefined;
          this.fail(error, true);
        }
        reject(error);
      };
      socket.on('error', (error) => broken(error.message));
      socket.on('close', () => broken(welcomed ? 'the peer closed the connection' : 'the peer closed the connection during the handshake'));
      socket.on('data', (chunk: Buffer) => {
        let records: { record: SocketRecord }[];
        try {
          records = reader.push(chunk);
        } catch (error) {
          return socket.destroy(error as SocketProtocolError);
        }
        for (const { record } of records) {
          if (record.kind === 'refuse') {
            // the peer closes after this; say why instead of "closed"
            return socket.destroy(new Error(`refused the connection: ${record.reason}`));
          }
          if (!welcomed) {
            if (record.kind !== 'welcome') return socket.destroy(new Error(`answered the hello with a ${record.kind} record`));
            welcomed = true;
            clearTimeout(timer);
            this.socket = socket;
            this.blocked = false;
            resolve(socket);
            this.pump();
          } else if (record.kind === 'ack') {
            this.onAck(record.seq, record.error);
          } else {
            return socket.destroy(new Error(`sent a ${record.kind} record where acks were expected`));
          }
        }
      });
      socket.write(encodeHeader({ kind: 'hello', runId, source, token: this.o.token ?? '' }));
    });
    return this.ready;
  }

  private dial(): net.Socket {
    const e = this.o.endpoint;
    if (this.useUnix()) return net.connect({ path: e.unixPath });
    const colon = e.tcpAddress.lastIndexOf(':');
    const host = e.tcpAddress.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(e.tcpAddress.slice(colon + 1));
    if (e.tls) {
      const f = this.o.tls!;
      return tls.connect({ host, port, cert: f.cert, key: f.key, ca: f.ca, servername: net.isIP(host) ? undefined : host });
    }
    return net.connect({ host, port, noDelay: true });
  }

  private onAck(seq: number, error: string): void {
    const next = this.inflight.shift();
    if (!next) return; // an ack for nothing: a confused peer; nothing waits for it
    if (error) next.reject(new PeerRefusedError(this.o.dest, next.key, error));
    else if (seq !== next.record.seq) next.reject(new PeerRefusedError(this.o.dest, next.key, `acknowledged frame ${seq} where frame ${next.record.seq} was next`));
    else next.resolve();
    this.pump();
  }

  /** Fails every frame written or waiting; `drop` also destroys the connection. */
  private fail(error: Error, drop: boolean): void {
    const socket = this.socket;
    if (drop) {
      this.socket = undefined;
      this.ready = undefined;
      socket?.destroy();
    }
    this.blocked = false;
    for (const p of this.inflight.splice(0)) p.reject(error);
    for (const p of this.waiting.splice(0)) p.reject(error);
  }
}
