/**
 * One rank of the all-to-all benchmark (src/bench/alltoall.ts forks `world` of them). It serves
 * what a worker serves: a raw TCP sink, the gRPC Peer service and the socket data plane, over one
 * PeerMailbox; reports its addresses over IPC, takes everyone's, then runs what the parent says:
 *
 * - `tcp`: the same rounds over one plain socket to each peer, nothing but the bytes (see runTcp);
 *   `tcp-stream`: no rounds, every rank streams all it sends at once.
 * - a data plane (`grpc`, `socket`, `socket-tcp`): `rounds` all-to-alls of `frameBytes` BF16
 *   frames (one per peer per round, keys step = round), `depth` rounds in flight, every frame
 *   received by its destination.
 *
 * Each run reports { ms, bytes }: wall time from the 'go' to the end, payload bytes this rank sent.
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { encodeRows } from '../codec/rows';
import { GrpcTransport } from '../grpc/grpc-transport';
import { PeerMailbox } from '../grpc/peer-mailbox';
import { peerServiceHandlers } from '../grpc/peer-service';
import { GRPC_OPTIONS, loadMoeProto } from '../proto/load';
import { PeerSocketServer } from '../socket/socket-server';
import { SocketTransport } from '../socket/socket-transport';
import type { Transport } from '../transport/transport';

export type AllToAllPlane = 'tcp' | 'tcp-stream' | 'grpc' | 'socket' | 'socket-tcp';

export interface RankAddresses {
  tcp: string;
  grpc: string;
}

export interface RankRun {
  plane: AllToAllPlane;
  runId: string;
  frameBytes: number;
  /** Columns of a frame's rows (its width on the wire, as the bench's hidden size). */
  cols: number;
  rounds: number;
  depth: number;
  /** How long a rank waits for a peer's frame before its run fails. */
  receiveTimeoutMs: number;
}

export interface RankReport {
  ms: number;
  bytes: number;
  /** CPU time (user + system) this process spent in the run, ms: the cost per byte, whatever the host's load. */
  cpuMs: number;
  /** The kernel's share of cpuMs (system time): syscalls, copies, page faults. */
  sysMs: number;
}

const cpuSince = (since: NodeJS.CpuUsage): { cpuMs: number; sysMs: number } => {
  const u = process.cpuUsage(since);
  return { cpuMs: (u.user + u.system) / 1e3, sysMs: u.system / 1e3 };
};

const rank = Number(process.argv[2]);
const world = Number(process.argv[3]);
const send = (message: unknown): void => void process.send!(message);

// Raw TCP sink: each connection starts with its sender's rank (4 bytes), then bytes counted per sender.
const tcpFrom = new Array<number>(world).fill(0);
let tcpWaiters: { want: number; resolve: () => void }[] = [];
const tcpMin = () => Math.min(...tcpFrom.filter((_, r) => r !== rank));
const sink = net.createServer({ noDelay: true }, (socket) => {
  let source = -1;
  socket.on('data', (chunk: Buffer) => {
    if (source < 0) {
      source = chunk.readUInt32BE(0); // the 4-byte prefix is written alone, before any payload
      chunk = chunk.subarray(4);
    }
    tcpFrom[source]! += chunk.byteLength;
    const min = tcpMin();
    tcpWaiters = tcpWaiters.filter((w) => (w.want <= min ? (w.resolve(), false) : true));
  });
});
/** Resolves once every other rank has sent at least `bytes` in all. */
const tcpReceived = (bytes: number): Promise<void> =>
  tcpMin() >= bytes ? Promise.resolve() : new Promise((resolve) => tcpWaiters.push({ want: bytes, resolve }));
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));

const mailbox = new PeerMailbox();
const sockets = {
  unix: await PeerSocketServer.start({ host: '127.0.0.1', advertiseHost: '127.0.0.1' }),
  tcp: await PeerSocketServer.start({ host: '127.0.0.1', advertiseHost: '127.0.0.1', unix: false }),
};
// Which socket server the Peer service offers: the run's plane says (socket: Unix, socket-tcp: TCP).
let offered: PeerSocketServer | undefined;
const server = new grpc.Server(GRPC_OPTIONS);
server.addService(loadMoeProto().moe.v1.Peer.service, peerServiceHandlers(mailbox, { socketEndpoint: () => offered?.endpoint() }));
const grpcPort = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
);

let peers: RankAddresses[] = [];
const tcpLinks: net.Socket[] = [];

/** Bytes every other rank had sent this rank before the current tcp run. */
let tcpBase = 0;

async function connectTcp(): Promise<void> {
  for (let dest = 0; dest < world; dest++) {
    if (dest === rank) continue;
    const [host, port] = peers[dest]!.tcp.split(':') as [string, string];
    const socket = net.connect({ host, port: Number(port), noDelay: true });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(rank);
    socket.write(prefix);
    tcpLinks.push(socket);
  }
}

/** Writes `buffer` to `socket` `times` times, honouring backpressure, writing again from inside 'drain'. */
function writeTimes(socket: net.Socket, buffer: Buffer, times: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let left = times;
    const pump = (): void => {
      while (left > 0) {
        left--;
        if (!socket.write(buffer)) {
          socket.once('drain', pump);
          return;
        }
      }
      resolve();
    };
    pump();
  });
}

/**
 * Raw TCP, the baseline. `tcp`: the same all-to-all as the data planes (round r: one frame to
 * every peer, done when a frame from every peer is in; `depth` rounds in flight), with nothing but
 * the bytes: no headers, no acks, no mailbox. `tcp-stream`: every rank streams all its rounds at
 * once, no rounds at all (the most the sockets can move; an upper bound, not an all-to-all).
 */
async function runTcp(run: RankRun): Promise<number> {
  const buffer = Buffer.alloc(run.frameBytes, 7);
  const base = tcpBase;
  tcpBase += run.rounds * run.frameBytes;
  if (run.plane === 'tcp-stream') {
    await Promise.all([...tcpLinks.map((s) => writeTimes(s, buffer, run.rounds)), tcpReceived(tcpBase)]);
  } else {
    const inflight = new Set<Promise<void>>();
    for (let step = 1; step <= run.rounds; step++) {
      const r = Promise.all([...tcpLinks.map((s) => writeTimes(s, buffer, 1)), tcpReceived(base + step * run.frameBytes)])
        .then(() => undefined)
        .finally(() => inflight.delete(r));
      inflight.add(r);
      if (inflight.size >= run.depth) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  }
  return run.rounds * run.frameBytes * (world - 1);
}

async function runPlane(run: RankRun): Promise<number> {
  const options = { runId: run.runId, rank, peers: peers.map((p) => p.grpc), mailbox, credentials: grpc.credentials.createInsecure() };
  const transport: Transport = run.plane === 'grpc' ? new GrpcTransport(options) : new SocketTransport({ ...options, plane: 'socket', server: offered });
  const rows = Math.max(1, Math.round(run.frameBytes / (2 * run.cols)));
  const payload = encodeRows(new Float32Array(rows * run.cols).fill(0.25), rows, run.cols, 'bf16');
  const ids = new Int32Array(rows);
  const others = [...Array(world).keys()].filter((r) => r !== rank);
  const round = async (step: number): Promise<void> => {
    const key = { step, layer: 0, chunk: 0, phase: 'DISPATCH' as const };
    await Promise.all([
      ...others.map((dest) => transport.send(dest, key, { payload, expertIds: ids })),
      ...others.map((source) => transport.receive(source, key, run.receiveTimeoutMs)),
    ]);
  };
  try {
    await round(0); // connects and negotiates; not what is measured
    send({ warm: true });
    await new Promise<void>((resolve) => process.once('message', () => resolve())); // the parent's 'go'
    const started = performance.now();
    const cpu = process.cpuUsage();
    const inflight = new Set<Promise<void>>();
    for (let step = 1; step <= run.rounds; step++) {
      const r = round(step).finally(() => inflight.delete(r));
      inflight.add(r);
      if (inflight.size >= run.depth) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    const ms = performance.now() - started;
    send({ ms, ...cpuSince(cpu), bytes: transport.bytesSent() - payload.data.byteLength * (world - 1) } satisfies RankReport);
  } catch (error) {
    // Said at once: the parent waits for this rank's next message (warm or report) and sends nothing
    // more, so waiting for its 'finish' here would leave it to time out without the reason.
    send({ error: `rank ${rank}, ${run.plane} run ${run.runId}: ${(error as Error).message}` });
    await transport.close();
    return 0;
  }
  // the others may still be taking this rank's last frames: wait for the parent before closing
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  await transport.close();
  send({ closed: true });
  return 0;
}

/** Runs `run` once the parent has said start (see the 'run' message). */
function startRun(run: RankRun): void {
  if (run.plane === 'tcp' || run.plane === 'tcp-stream') {
    void (tcpLinks.length > 0 ? Promise.resolve() : connectTcp()).then(() => send({ warm: true }));
    process.once('message', () => {
      const started = performance.now();
      const cpu = process.cpuUsage();
      void runTcp(run).then((bytes) => send({ ms: performance.now() - started, ...cpuSince(cpu), bytes } satisfies RankReport));
    });
  } else {
    void runPlane(run).catch((error: Error) => send({ error: `rank ${rank}: ${error.message}` }));
  }
}

process.on('message', (m: { peers?: RankAddresses[]; run?: RankRun; exit?: boolean; go?: boolean; finish?: boolean; start?: boolean }) => {
  if (m.exit) {
    for (const s of tcpLinks) s.destroy();
    server.forceShutdown();
    void Promise.all([sockets.unix.close(), sockets.tcp.close()]).then(() => process.exit(0));
  } else if (m.peers) {
    peers = m.peers;
    send({ ready: true });
  } else if (m.run) {
    // The run's socket server is offered before any rank dials: a peer that asked this rank's Peer
    // service while it still offered the last run's (none, after a grpc run) was told it speaks only
    // gRPC, and its socket run failed (2 of 37 transport lines in a loop). The parent says start once every rank has taken the run.
    const run = m.run;
    offered = run.plane === 'socket' ? sockets.unix : run.plane === 'socket-tcp' ? sockets.tcp : undefined;
    send({ taken: true });
    process.once('message', () => startRun(run));
  }
});
process.on('disconnect', () => process.exit(0));
send({ addresses: { tcp: `127.0.0.1:${(sink.address() as net.AddressInfo).port}`, grpc: `127.0.0.1:${grpcPort}` } satisfies RankAddresses });
