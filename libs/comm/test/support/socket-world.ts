import * as grpc from '@grpc/grpc-js';
import {
  GRPC_OPTIONS,
  loadMoeProto,
  PeerMailbox,
  peerServiceHandlers,
  PeerSocketServer,
  SocketTransport,
  type SocketTransportOptions,
  type TlsFiles,
} from '../../src/index';

/** Per rank: does it serve the socket data plane, and how. */
export interface SocketRankSetup {
  /** false: a worker that speaks only gRPC Exchange (its Peer service has no DataPlanes answer). */
  socket: boolean;
  unix?: boolean;
  token?: string;
  /** The mailbox's bound (PeerMailboxOptions.capacityBytes). */
  capacityBytes?: number;
}

/** Workers as worker processes run them: a gRPC Peer service and a socket server over one mailbox each. */
export interface SocketWorld {
  addresses: string[];
  mailboxes: PeerMailbox[];
  servers: grpc.Server[];
  sockets: (PeerSocketServer | undefined)[];
}

export async function startSocketWorld(setups: SocketRankSetup[], tls?: TlsFiles): Promise<SocketWorld> {
  const proto = loadMoeProto();
  const world: SocketWorld = { addresses: [], mailboxes: [], servers: [], sockets: [] };
  for (const setup of setups) {
    const mailbox = new PeerMailbox({ capacityBytes: setup.capacityBytes });
    const socket = setup.socket
      ? await PeerSocketServer.start({ host: '127.0.0.1', advertiseHost: '127.0.0.1', token: setup.token, tls, unix: setup.unix })
      : undefined;
    const server = new grpc.Server(GRPC_OPTIONS);
    server.addService(proto.moe.v1.Peer.service, peerServiceHandlers(mailbox, { token: setup.token, socketEndpoint: () => socket?.endpoint() }));
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
    );
    world.addresses.push(`127.0.0.1:${port}`);
    world.mailboxes.push(mailbox);
    world.servers.push(server);
    world.sockets.push(socket);
  }
  return world;
}

export async function stopSocketWorld(world: SocketWorld): Promise<void> {
  for (const server of world.servers) server.forceShutdown();
  await Promise.all(world.sockets.map((s) => s?.close()));
}

let runs = 0;

/** One SocketTransport per rank of `world`, for a fresh run id, once every link is set up (as after LoadShard). */
export async function readySocketTransports(world: SocketWorld, options: Partial<SocketTransportOptions> = {}): Promise<SocketTransport[]> {
  const transports = socketTransports(world, options);
  await Promise.all(transports.map((t) => t.ready()));
  return transports;
}

/** One SocketTransport per rank of `world`, for a fresh run id. */
export function socketTransports(world: SocketWorld, options: Partial<SocketTransportOptions> = {}): SocketTransport[] {
  const runId = `socket-run-${++runs}`;
  return world.mailboxes.map(
    (mailbox, rank) =>
      new SocketTransport({
        runId,
        rank,
        peers: world.addresses,
        mailbox,
        plane: 'auto',
        server: world.sockets[rank],
        credentials: grpc.credentials.createInsecure(),
        ...options,
      }),
  );
}
