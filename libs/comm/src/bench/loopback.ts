import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { encodeRows } from '../codec/rows';
import { GrpcTransport } from '../grpc/grpc-transport';
import { PeerMailbox } from '../grpc/peer-mailbox';
import type { SinkReport } from './loopback-peer';
import { dataPlaneChildExecArgv } from '../transport/node-flags';

/** One loopback throughput measurement between two processes. */
export interface LoopbackResult {
  transport: 'tcp' | 'grpc';
  /** Bytes per message (TCP write, or frame payload). */
  messageBytes: number;
  connections: number;
  /** Payload bytes the receiver timed. */
  bytes: number;
  ms: number;
  /** 10^6 bytes per second, at the receiver. */
  mbPerSecond: number;
}

export interface GrpcLoopbackOptions {
  connections?: number;
  maxFrameBytes?: number;
  ackWindow?: number;
  /** Frames the sender keeps in flight (send() calls not yet acknowledged). */
  inflight?: number;
  /** The receiver's HTTP/2 receive window (PeerMailboxOptions.receiveWindowBytes; 0: Node's 64 KiB default). */
  receiveWindowBytes?: number;
}

/** Forks the receiving process in `mode`, waiting for the address it reports. */
async function startSink(mode: 'tcp' | 'grpc', args: string[] = []): Promise<{ child: ChildProcess; address: string; report: Promise<SinkReport> }> {
  const script = new URL('./loopback-peer.ts', import.meta.url);
  // the child runs TypeScript and moves frames: the parent's loader (tsx), and the flags a worker runs with
  const execArgv = dataPlaneChildExecArgv();
  const child = fork(script, [mode, ...args], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const messages: unknown[] = [];
  const waiters: ((m: unknown) => void)[] = [];
  child.on('message', (m) => (waiters.length ? waiters.shift()!(m) : messages.push(m)));
  const next = (): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (messages.length) return resolve(messages.shift());
      waiters.push(resolve);
      child.once('exit', (code) => reject(new Error(`loopback ${mode} receiver exited with code ${code} before reporting`)));
    });
  const { address } = (await next()) as { address: string };
  return { child, address, report: next() as Promise<SinkReport> };
}

/** Asks the receiving process to exit, killing it if it has not within a second. */
async function stopSink(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.send('exit');
  const timer = setTimeout(() => child.kill(), 1_000);
  await exited;
  clearTimeout(timer);
}

const result = (transport: LoopbackResult['transport'], messageBytes: number, connections: number, r: SinkReport): LoopbackResult => ({
  transport,
  messageBytes,
  connections,
  bytes: r.bytes,
  ms: r.ms,
  mbPerSecond: r.ms > 0 ? r.bytes / 1e6 / (r.ms / 1e3) : 0,
});

/**
 * Raw TCP throughput on 127.0.0.1 from this process to a child process: writes `messageBytes`
 * buffers for `seconds`, honouring write() backpressure. The baseline the gRPC transport is held to.
 */
export async function measureTcpLoopback(messageBytes: number, seconds: number): Promise<LoopbackResult> {
  const { child, address, report } = await startSink('tcp');
  try {
    const [host, port] = address.split(':') as [string, string];
    const socket = net.connect(Number(port), host);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const buffer = Buffer.alloc(messageBytes, 7);
    const end = performance.now() + seconds * 1000;
    // writes from inside 'drain' itself: an await between drain and write costs TCP half its speed
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (performance.now() < end) {
          if (!socket.write(buffer)) {
            socket.once('drain', pump);
            return;
          }
        }
        socket.end(resolve);
      };
      pump();
    });
    return result('tcp', messageBytes, 1, await report);
  } finally {
    await stopSink(child);
  }
}

/**
 * GrpcTransport throughput on 127.0.0.1 from this process (rank 0) to a child process (rank 1):
 * sends frames of `messageBytes` (f32 payload) for `seconds`, keeping `inflight` unacknowledged,
 * over `connections` connections. The receiver times frames taken out of its mailbox.
 */
export async function measureGrpcLoopback(messageBytes: number, seconds: number, options: GrpcLoopbackOptions = {}): Promise<LoopbackResult> {
  const connections = options.connections ?? 1;
  const sinkOptions = options.receiveWindowBytes === undefined ? {} : { receiveWindowBytes: options.receiveWindowBytes };
  const { child, address, report } = await startSink('grpc', [JSON.stringify(sinkOptions)]);
  const transport = new GrpcTransport({
    runId: 'loopback',
    rank: 0,
    peers: ['', address],
    mailbox: new PeerMailbox(),
    connectionsPerPeer: connections,
    credentials: grpc.credentials.createInsecure(), // the sink binds plaintext on 127.0.0.1
    ...(options.maxFrameBytes ? { maxFrameBytes: options.maxFrameBytes } : {}),
    ...(options.ackWindow ? { ackWindow: options.ackWindow } : {}),
  });
  try {
    const values = new Float32Array(Math.floor(messageBytes / 4)).fill(0.5);
    const payload = encodeRows(values, 1, values.length, 'f32');
    const key = (step: number) => ({ step, layer: -1, chunk: 0, phase: 'DISPATCH' as const });
    const inflight = new Set<Promise<void>>();
    const end = performance.now() + seconds * 1000;
    let step = 0;
    while (performance.now() < end) {
      const sending = transport.send(1, key(step++), { payload }).finally(() => inflight.delete(sending));
      inflight.add(sending);
      if (inflight.size >= (options.inflight ?? 8)) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    await transport.send(1, key(step), { payload: encodeRows(new Float32Array(0), 0, 1, 'f32') });
    return result('grpc', messageBytes, connections, await report);
  } finally {
    await transport.close();
    await stopSink(child);
  }
}
