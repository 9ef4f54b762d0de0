import { PeerRefusedError, PeerUnreachableError, TransportClosedError } from '../transport/errors';
import type { FrameKey } from '../transport/frame-key';
import { payloadBytes } from '../transport/payload';
import type { OutgoingFrame } from '../transport/transport';
import { ackGeneration, ackSettled, bodyText, encodeFrameHead, encodeRecord, kindName, RecordKind } from './records';
import type { ReceiverConnection } from './receiver-connection';

export interface OutboundLinkOptions {
  /** This rank: the sender. */
  source: number;
  dest: number;
  /** The peer's gRPC address, for messages. */
  address: string;
  /** Most frames written and not yet acknowledged. */
  window: number;
  /** How long a frame waits for the peer to dial in (it does as the run is set up). */
  connectTimeoutMs: number;
}

interface Pending {
  key: FrameKey;
  frame: OutgoingFrame;
  seq: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Bytes queued on a socket beyond which writing waits for 'drain' (the window normally keeps far below). */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The sending end of the socket data plane to one peer: frames go out on the connection the
 * peer dialed into this rank's socket server (see InboundLink), each as one header (ids and
 * scales inside) and the payload's data as a view (no copy), and each resolves when the peer's
 * ack says its mailbox took it. At most `window` frames are unacknowledged. Until the peer has
 * dialed (it does as the run is set up), frames wait, at most `connectTimeoutMs`. A broken
 * connection fails the frames it carried; frames not yet written wait for the peer to dial again.
 */
export class OutboundLink {
  private conn?: ReceiverConnection;
  private readonly waiting: Pending[] = [];
  private readonly inflight: Pending[] = [];
  private readonly attached: (() => void)[] = [];
  private seq = 0;
  /** Payload bytes of the frames the peer took (see Transport.bytesSent). */
  private taken = 0;
  private blocked = false;
  private closed = false;
  private timer?: NodeJS.Timeout;
  /** The acks this rank owes the peer, to leave in the same write as the next frames (see InboundLink.takeAcks). */
  pullAcks?: () => Buffer | undefined;

  constructor(private readonly o: OutboundLinkOptions) {}

  /** Takes the connection the peer dialed (replacing one that broke). */
  attach(conn: ReceiverConnection): void {
    if (this.closed) return conn.refuse(`rank ${this.o.source}'s transport of run ${conn.runId} is closed`);
    const old = this.conn;
    if (old) {
      this.fail(this.inflight, new PeerUnreachableError(this.o.dest, this.o.address, 'it dialed again; the frames on its old connection are lost'));
      old.socket.destroy();
    }
    this.conn = conn;
    this.seq = 0;
    this.blocked = false;
    conn.onRecord = (kind, head, at, body) => this.onRecord(conn, kind, head, at, body);
    conn.onClose = (why) => this.detach(conn, why);
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const resolve of this.attached.splice(0)) resolve();
    this.pump();
  }

  /** Writes acks this rank owes the peer on this connection; false when there is none up. */
  sendAcks(bytes: Buffer): boolean {
    const socket = this.conn?.socket;
    if (!socket || socket.destroyed) return false;
    socket.write(bytes);
    return true;
  }

  /**
   * Settles the frames an ack covers: every frame below `settled` of connection `generation`
   * (frame settled-1 refused when `error` says why). An ack of an earlier connection is dropped:
   * its frames were failed when it broke.
   */
  onAck(generation: number, settled: number, error: string): void {
    if (!this.conn || this.conn.generation !== generation) return;
    while (this.inflight.length > 0 && this.inflight[0]!.seq < settled) {
      const p = this.inflight.shift()!;
      if (error && p.seq === settled - 1) p.reject(new PeerRefusedError(this.o.dest, p.key, error));
      else {
        this.taken += payloadBytes(p.frame.payload);
        p.resolve();
      }
    }
    this.pump();
  }

  /** Payload bytes (data and scales) of the frames the peer acknowledged taking. */
  bytesTaken(): number {
    return this.taken;
  }

  /** Resolves once the peer has dialed in (for Transport.ready). */
  connected(): Promise<void> {
    return this.conn ? Promise.resolve() : new Promise((resolve) => this.attached.push(resolve));
  }

  /** Sends one frame; resolves when the peer acknowledged it (it is in the peer's mailbox). */
  send(key: FrameKey, frame: OutgoingFrame): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError(`rank ${this.o.source}: send to rank ${this.o.dest} on a closed socket link`));
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ key, frame, seq: -1, resolve, reject });
      this.pump();
    });
  }

  /** Says goodbye (so the peer knows the end is clean) and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const resolve of this.attached.splice(0)) resolve();
    const error = new TransportClosedError(`rank ${this.o.source}: socket link to rank ${this.o.dest} closed`);
    this.fail(this.inflight, error);
    this.fail(this.waiting, error);
    const socket = this.conn?.socket;
    this.conn = undefined;
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.end(encodeRecord(RecordKind.Bye), () => resolve());
        setTimeout(resolve, 1_000).unref();
      });
      socket.destroy();
    }
  }

  private pump(): void {
    const conn = this.conn;
    if (!conn) return this.awaitDial();
    const socket = conn.socket;
    if (this.waiting.length === 0 || this.blocked || this.inflight.length >= this.o.window) return;
    socket.cork();
    const acks = this.pullAcks?.();
    if (acks) socket.write(acks);
    while (this.waiting.length > 0 && this.inflight.length < this.o.window) {
      const next = this.waiting.shift()!;
      next.seq = this.seq++;
      this.inflight.push(next);
      const p = next.frame.payload;
      const ids = next.frame.expertIds && next.frame.expertIds.byteLength > 0 ? bytes(next.frame.expertIds) : undefined;
      const weights = next.frame.weights && next.frame.weights.byteLength > 0 ? bytes(next.frame.weights) : undefined;
      const scales = p.scales && p.scales.byteLength > 0 ? p.scales : undefined;
      const head = {
        seq: next.seq,
        key: next.key,
        dtype: p.dtype,
        rows: p.rows,
        cols: p.cols,
        blockSize: p.dtype === 'FP8_E4M3' ? (p.blockSize ?? 0) : 0,
        idBytes: ids?.byteLength ?? 0,
        weightBytes: weights?.byteLength ?? 0,
        scaleBytes: scales?.byteLength ?? 0,
        dataBytes: p.data.byteLength,
      };
      socket.write(encodeFrameHead(head, ids, scales, weights));
      if (p.data.byteLength > 0) socket.write(p.data);
    }
    socket.uncork();
    if (socket.writableLength > MAX_QUEUED_BYTES) {
      this.blocked = true;
      socket.once('drain', () => {
        this.blocked = false;
        this.pump();
      });
    }
  }

  /** No connection yet: frames wait for the peer to dial, at most connectTimeoutMs. */
  private awaitDial(): void {
    if (this.timer || this.waiting.length === 0) return;
    const ms = this.o.connectTimeoutMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const why = `it speaks the socket data plane but has not dialed rank ${this.o.source} to receive its frames within ${ms} ms`;
      this.fail(this.waiting, new PeerUnreachableError(this.o.dest, this.o.address, why));
    }, ms);
  }

  private onRecord(conn: ReceiverConnection, kind: RecordKind, head: Buffer, at: number, body: Buffer): void {
    if (kind === RecordKind.Bye) {
      conn.closing = true;
      return this.detach(conn, 'it said goodbye (its transport closed)');
    }
    if (kind !== RecordKind.Ack) return conn.refuse(`sent a ${kindName(kind)} record where acks were expected`);
    this.onAck(ackGeneration(head, at), ackSettled(head, at), body.byteLength > 0 ? bodyText(body) : '');
  }

  private detach(conn: ReceiverConnection, why: string): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.fail(this.inflight, new PeerUnreachableError(this.o.dest, this.o.address, `its connection broke before it acknowledged the frame (${why})`));
    conn.socket.destroy();
    this.pump();
  }

  private fail(list: Pending[], error: Error): void {
    for (const p of list.splice(0)) p.reject(error);
  }
}
