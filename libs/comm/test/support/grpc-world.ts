import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, GrpcTransport, loadMoeProto, PeerMailbox, peerServiceHandlers, type GrpcTransportOptions, type PeerMailboxOptions } from '../../src/index';

/** Peer servers on 127.0.0.1 ephemeral ports, each with its mailbox, as worker processes run them. */
export interface PeerServers {
  addresses: string[];
  mailboxes: PeerMailbox[];
  servers: grpc.Server[];
}

export async function startPeerServers(count: number, options: PeerMailboxOptions = {}): Promise<PeerServers> {
  const proto = loadMoeProto();
  const out: PeerServers = { addresses: [], mailboxes: [], servers: [] };
  for (let i = 0; i < count; i++) {
    const server = new grpc.Server(GRPC_OPTIONS);
    const mailbox = new PeerMailbox(options);
    server.addService(proto.moe.v1.Peer.service, peerServiceHandlers(mailbox));
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
    );
    out.addresses.push(`127.0.0.1:${port}`);
    out.mailboxes.push(mailbox);
    out.servers.push(server);
  }
  return out;
}

export function stopPeerServers(peers: PeerServers): void {
  for (const server of peers.servers) server.forceShutdown();
}

let runs = 0;

/** One GrpcTransport per server, for a fresh run id. */
export function grpcTransports(peers: PeerServers, options: Partial<GrpcTransportOptions> = {}): GrpcTransport[] {
  const runId = `run-${++runs}`;
  return peers.mailboxes.map(
    (mailbox, rank) => new GrpcTransport({ runId, rank, peers: peers.addresses, mailbox, ...options }),
  );
}
