import { randomUUID, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { SocketEndpointOut as SocketEndpoint } from '../proto/types';
import type { TlsFiles } from '../grpc/tls';
import { RecordReader } from './record-reader';
import { ReceiverConnection } from './receiver-connection';
import { decodeHello, encodeRecord, kindName, RecordKind, SocketProtocolError } from './records';

export interface PeerSocketServerOptions {
  /** Interface the TCP listener binds (the worker's --host). */
  host: string;
  /** Host peers use to reach this worker (the host part of its advertised address). */
  advertiseHost: string;
  /** Cluster token a dialer's hello must carry (unset: none required). */
  token?: string;
  /** Mutual TLS on the TCP listener (then no Unix socket is offered: every byte goes through TLS). */
  tls?: TlsFiles;
  /** Also listen on a Unix domain socket for peers on this host (default true). */
  unix?: boolean;
  log?: (line: string) => void;
}

/** How long a new connection may take to say hello (with its token) before it is closed. */
const HELLO_TIMEOUT_MS = 10_000;
/** How long a welcomed connection waits for this worker's transport of its run to take it. */
const UNCLAIMED_TIMEOUT_MS = 60_000;

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
 * The listening end of the socket data plane on one worker: a TCP listener (TLS when configured)
 * and a Unix domain socket. Peers dial it to RECEIVE this worker's frames: every connection
 * starts with a hello whose token is checked before anything else is read or written; a
 * welcomed connection goes to this worker's SocketTransport of the hello's run (see
 * `receivers`), which writes its frames for that peer on it. A connection that arrives before
 * that transport exists waits for it (at most UNCLAIMED_TIMEOUT_MS).
 */
export class PeerSocketServer {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly takers = new Map<string, (conn: ReceiverConnection) => void>();
  private readonly unclaimed = new Map<string, Set<ReceiverConnection>>();
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

  /** Where peers reach this server: the DataPlanes reply. */
  endpoint(): SocketEndpoint {
    return { tcpAddress: this.tcpAddress, unixPath: this.unixPath, hostId: this.hostId, tls: this.o.tls !== undefined };
  }

  /**
   * Hands every connection welcomed for run `runId` (those waiting now, then each as it comes) to
   * `take`, until the returned function is called. One taker a run.
   */
  receivers(runId: string, take: (conn: ReceiverConnection) => void): () => void {
    this.takers.set(runId, take);
    const waiting = this.unclaimed.get(runId);
    this.unclaimed.delete(runId);
    for (const conn of waiting ?? []) take(conn);
    return () => this.takers.get(runId) === take && this.takers.delete(runId);
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
    let conn: ReceiverConnection | undefined;
    let failed = false;
    const fail = (reason: string) => {
      if (conn) return conn.refuse(reason);
      failed = true;
      this.o.log?.(`Peer socket: closed the connection from ${peer}: ${reason}`);
      socket.end(encodeRecord(RecordKind.Refuse, Buffer.from(reason)));
      socket.destroySoon?.();
    };
    // A connection that never says hello is not held open for it.
    const helloTimer = setTimeout(() => !conn && !failed && fail(`no hello within ${HELLO_TIMEOUT_MS} ms`), HELLO_TIMEOUT_MS);
    helloTimer.unref();

    const greet = (kind: RecordKind, body: Buffer): void => {
      clearTimeout(helloTimer);
      if (kind !== RecordKind.Hello) return fail(`expected a hello, got a ${kindName(kind)} record`);
      const hello = decodeHello(body);
      const problem = tokenProblem(hello.token, this.o.token);
      if (problem) return fail(problem);
      conn = new ReceiverConnection(hello.runId, hello.rank, peer, hello.generation, socket, this.o.log);
      socket.write(encodeRecord(RecordKind.Welcome));
      this.handOver(conn);
    };
    const reader = new RecordReader((kind, head, at, body) => {
      if (failed || conn?.closing) return;
      if (!conn) return greet(kind, body);
      if (conn.onRecord) return conn.onRecord(kind, head, at, body);
      if (kind === RecordKind.Bye) {
        conn.closing = true;
        return void socket.end();
      }
      fail(`sent a ${kindName(kind)} record before this worker had a transport of run ${conn.runId} to answer it`);
    });
    socket.on('data', (chunk: Buffer) => {
      if (failed) return;
      try {
        reader.push(chunk);
      } catch (error) {
        fail((error as SocketProtocolError).message);
      }
    });
    let why = '';
    socket.on('error', (error) => (why ||= error.message));
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.sockets.delete(socket);
      if (!conn) return;
      this.unclaimed.get(conn.runId)?.delete(conn);
      conn.onClose?.(why || (conn.closing ? 'closed' : 'its socket closed without saying goodbye'));
    });
  }

  /** Gives a welcomed connection to its run's transport, or keeps it until that transport asks. */
  private handOver(conn: ReceiverConnection): void {
    const take = this.takers.get(conn.runId);
    if (take) return take(conn);
    let waiting = this.unclaimed.get(conn.runId);
    if (!waiting) this.unclaimed.set(conn.runId, (waiting = new Set()));
    waiting.add(conn);
    setTimeout(() => {
      if (!waiting.delete(conn)) return;
      if (waiting.size === 0 && this.unclaimed.get(conn.runId) === waiting) this.unclaimed.delete(conn.runId);
      conn.refuse(`no transport of run ${conn.runId} took this connection within ${UNCLAIMED_TIMEOUT_MS} ms`);
    }, UNCLAIMED_TIMEOUT_MS).unref();
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
