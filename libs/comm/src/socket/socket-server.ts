import { randomUUID, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { FrameOut, SocketEndpointOut as SocketEndpoint } from '../proto/types';
import { parseFramePart } from '../grpc/frame-message';
import type { PeerMailbox } from '../grpc/peer-mailbox';
import type { TlsFiles } from '../grpc/tls';
import { encodeHeader, RecordReader, SocketProtocolError, type FrameRecord, type HelloRecord, type ReadRecord, type SocketRecord } from './records';

export interface PeerSocketServerOptions {
  /** The worker's mailbox: frames that arrive here go in, as the Peer service's do. */
  mailbox: PeerMailbox;
  /** Interface the TCP listener binds (the worker's --host). */
  host: string;
  /** Host peers use to reach this worker (the host part of its advertised address). */
  advertiseHost: string;
  /** Cluster token a sender's hello must carry (unset: none required). */
  token?: string;
  /** Mutual TLS on the TCP listener (then no Unix socket is offered: every byte goes through TLS). */
  tls?: TlsFiles;
  /** Also listen on a Unix domain socket for senders on this host (default true). */
  unix?: boolean;
  log?: (line: string) => void;
}

/** Frames a connection queues before it stops reading (the sender's window keeps it far below). */
const PAUSE_AT = 16;
/** How long a new connection may take to say hello (with its token) before it is closed. */
const HELLO_TIMEOUT_MS = 10_000;
/** Largest frame body a connection accepts (the gRPC path splits larger ones into parts). */
const MAX_BODY_BYTES = 2 ** 31;

/**
 * This machine's identity for the Unix socket: the hostname and the kernel's boot id, so two
 * containers (own hostnames) or two boots never take each other's socket path for their own.
 */
export function localHostId(): string {
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // not Linux: the hostname alone
  }
  return `${hostname()}/${boot}`;
}

/**
 * The receiving end of the socket data plane on one worker: a TCP listener (TLS when configured)
 * and a Unix domain socket, serving length-prefixed frames (see records.ts) into the same
 * PeerMailbox the gRPC Peer service fills. Every connection starts with a hello whose token is
 * checked before any frame is read; each frame is acknowledged once the mailbox took it.
 */
export class PeerSocketServer {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private tcpAddress = '';
  private unixPath = '';
  private readonly hostId = localHostId();

  private constructor(private readonly o: PeerSocketServerOptions) {}

  /** Starts listening (TCP on an ephemeral port of `host`, and a Unix socket in the temp dir). */
  static async start(options: PeerSocketServerOptions): Promise<PeerSocketServer> {
    const server = new PeerSocketServer(options);
    await server.listen();
    return server;
  }

  /** Where senders reach this server: the DataPlanes reply. */
  endpoint(): SocketEndpoint {
    return { tcpAddress: this.tcpAddress, unixPath: this.unixPath, hostId: this.hostId, tls: this.o.tls !== undefined };
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    if (this.unixPath && existsSync(this.unixPath)) rmSync(this.unixPath, { force: true });
  }

  private async listen(): Promise<void> {
    const onSocket = (socket: net.Socket) => this.serve(socket);
    const files = this.o.tls;
    const tcp = files
      ? tls.createServer({ cert: files.cert, key: files.key, ca: files.ca, requestCert: true, rejectUnauthorized: true }, onSocket)
      : net.createServer({ noDelay: true }, onSocket);
    if (files) tcp.on('tlsClientError', (error) => this.o.log?.(`Peer socket: refused a TLS connection: ${error.message}`));
    const port = await listenOn(tcp, { host: this.o.host, port: 0 });
    this.servers.push(tcp);
    const host = this.o.advertiseHost.includes(':') ? `[${this.o.advertiseHost}]` : this.o.advertiseHost;
    this.tcpAddress = `${host}:${port}`;
    if (!files && this.o.unix !== false && process.platform !== 'win32') {
      const path = join(tmpdir(), `moe-peer-${process.pid}-${randomUUID().slice(0, 8)}.sock`);
      const local = net.createServer(onSocket);
      await listenOn(local, { path });
      this.servers.push(local);
      this.unixPath = path;
    }
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay?.(true);
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix socket';
    const reader = new RecordReader();
    const queue: ReadRecord[] = [];
    let hello: HelloRecord | undefined;
    let untrack: (() => void) | undefined;
    let bye = false;
    let busy = false;
    let failed = false;

    // Acks written in one turn of the event loop leave in one write (fewer syscalls and wake-ups).
    let corked = false;
    const send = (record: SocketRecord) => {
      if (socket.destroyed) return;
      if (!corked) {
        corked = true;
        socket.cork();
        setImmediate(() => {
          corked = false;
          socket.uncork();
        });
      }
      socket.write(encodeHeader(record));
    };
    const fail = (reason: string) => {
      failed = true;
      this.o.log?.(`Peer socket: closed the connection from ${peer}: ${reason}`);
      send({ kind: 'refuse', reason });
      socket.end();
      socket.destroySoon?.();
    };

    // A connection that never says hello is not held open for it.
    const helloTimer = setTimeout(() => !hello && !failed && fail(`no hello within ${HELLO_TIMEOUT_MS} ms`), HELLO_TIMEOUT_MS);
    helloTimer.unref();
    const greet = (r: ReadRecord): void => {
      clearTimeout(helloTimer);
      if (r.record.kind !== 'hello') return fail(`expected a hello, got a ${r.record.kind} record`);
      const problem = tokenProblem(r.record.token, this.o.token);
      if (problem) return fail(problem);
      hello = r.record;
      reader.limitBody(MAX_BODY_BYTES);
      untrack = this.o.mailbox.track({ source: hello.source, connection: 0, runId: hello.runId, peer });
      send({ kind: 'welcome' });
    };

    const handle = async (r: ReadRecord): Promise<void> => {
      if (r.record.kind === 'bye') {
        bye = true;
        return;
      }
      if (r.record.kind !== 'frame') return fail(`expected a frame, got a ${r.record.kind} record`);
      let error = '';
      try {
        await this.o.mailbox.acceptPart(hello!.runId, parseFramePart(frameOut(r.record, hello!.source, r.body), hello!.source));
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      send({ kind: 'ack', seq: r.record.seq, error });
    };

    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      while (queue.length > 0 && !failed) {
        await handle(queue.shift()!);
        if (socket.isPaused() && queue.length < PAUSE_AT / 2) socket.resume();
      }
      busy = false;
    };

    socket.on('data', (chunk: Buffer) => {
      if (failed) return;
      let records: ReadRecord[];
      try {
        records = reader.push(chunk);
      } catch (error) {
        return fail((error as SocketProtocolError).message);
      }
      for (const r of records) {
        if (failed) return;
        if (!hello) greet(r);
        else queue.push(r);
      }
      if (queue.length >= PAUSE_AT) socket.pause();
      void pump();
    });
    socket.on('error', () => {}); // 'close' follows and says what matters
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.sockets.delete(socket);
      untrack?.();
      // Ended without a bye: the sender went away mid-stream (killed, or its connection broke).
      if (hello && !bye && !failed) {
        const why = reader.midRecord() ? 'its socket closed in the middle of a frame' : 'its socket closed without saying goodbye';
        this.o.mailbox.peerLost(hello.runId, hello.source, peer, why);
      }
    });
  }
}

/** Why a hello's `sent` token does not open this server (undefined: it does). */
function tokenProblem(sent: unknown, token: string | undefined): string | undefined {
  if (!token) return undefined;
  if (typeof sent !== 'string' || sent === '') return 'missing cluster token: this cluster requires its token (MOE_CLUSTER_TOKEN or --token)';
  const a = Buffer.from(sent);
  const b = Buffer.from(token);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return "wrong cluster token: not this cluster's token";
  return undefined;
}

/** A frame record and its body as the Frame message parseFramePart checks (views, no copy). */
function frameOut(r: FrameRecord, source: number, body: Uint8Array): FrameOut {
  const ids = body.subarray(0, r.idBytes);
  const weightsEnd = r.idBytes + (r.weightBytes ?? 0);
  const weights = body.subarray(r.idBytes, weightsEnd);
  const scales = body.subarray(weightsEnd, weightsEnd + r.scaleBytes);
  const data = body.subarray(weightsEnd + r.scaleBytes);
  return {
    step: r.step,
    microBatch: Number(r.microBatch ?? 0),
    layer: r.layer,
    chunk: r.chunk,
    phase: r.phase,
    source,
    part: 0,
    parts: 1,
    expertIds: ids,
    weights,
    payload: { dtype: r.dtype, shape: [r.rows, r.cols], data, scales, blockSize: r.blockSize },
  } as unknown as FrameOut;
}

function listenOn(server: net.Server, where: net.ListenOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}
