/**
 * The receiving process of the loopback benchmarks (src/bench/loopback.ts forks it).
 * argv[2] = 'tcp': listens on a TCP socket and counts bytes until the sender ends the connection.
 * argv[2] = 'grpc' (argv[3]: PeerMailboxOptions as JSON): serves Peer with a PeerMailbox and receives frames of steps 0, 1, ... until a
 *   frame with no rows. Reports its address over IPC, then { bytes, ms } timed from the first
 *   byte (frame) to the last, not counting the first.
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, loadMoeProto } from '../proto/load';
import { GrpcTransport } from '../grpc/grpc-transport';
import { PeerMailbox, type PeerMailboxOptions } from '../grpc/peer-mailbox';
import { peerServiceHandlers } from '../grpc/peer-service';

export interface SinkReport {
  bytes: number;
  ms: number;
}

const send = (message: unknown): void => void process.send!(message);

async function tcpSink(): Promise<void> {
  const server = net.createServer((socket) => {
    let first = 0;
    let last = 0;
    let bytes = 0;
    socket.on('data', (chunk) => {
      const now = performance.now();
      if (first === 0) first = now;
      else bytes += chunk.byteLength;
      last = now;
    });
    socket.on('end', () => send({ bytes, ms: last - first } satisfies SinkReport));
  });
  server.listen(0, '127.0.0.1', () => send({ address: `127.0.0.1:${(server.address() as net.AddressInfo).port}` }));
}

async function grpcSink(options: PeerMailboxOptions): Promise<void> {
  const mailbox = new PeerMailbox(options);
  const server = new grpc.Server(GRPC_OPTIONS);
  server.addService(loadMoeProto().moe.v1.Peer.service, peerServiceHandlers(mailbox));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const address = `127.0.0.1:${port}`;
  const transport = new GrpcTransport({ runId: 'loopback', rank: 1, peers: ['', address], mailbox, credentials: grpc.credentials.createInsecure() });
  send({ address });
  let first = 0;
  let last = 0;
  let bytes = 0;
  for (let step = 0; ; step++) {
    const frame = await transport.receive(0, { step, layer: -1, chunk: 0, phase: 'DISPATCH' }, 120_000);
    if (frame.payload.rows === 0) break;
    const now = performance.now();
    if (first === 0) first = now;
    else bytes += frame.payload.data.byteLength;
    last = now;
  }
  // stay up (the last ack may still be on its way) until the parent ends this process
  send({ bytes, ms: last - first } satisfies SinkReport);
}

// the parent says when to go (after the last ack is in); a clean exit also flushes --cpu-prof
process.on('message', (m) => m === 'exit' && process.exit(0));
process.on('disconnect', () => process.exit(0));

if (process.argv[2] === 'tcp') void tcpSink();
else if (process.argv[2] === 'grpc') void grpcSink(JSON.parse(process.argv[3] ?? '{}') as PeerMailboxOptions);
