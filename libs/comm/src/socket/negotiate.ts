import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, loadMoeProto } from '../proto/load';
import type { SocketEndpointOut as SocketEndpoint } from '../proto/types';
import { tokenInterceptor } from '../grpc/cluster-token';
import { PeerUnreachableError } from '../transport/errors';

export interface AskDataPlanesOptions {
  runId: string;
  source: number;
  dest: number;
  /** The peer's gRPC address (its Peer service). */
  address: string;
  credentials: grpc.ChannelCredentials;
  token?: string;
  timeoutMs: number;
}

/**
 * Asks rank `dest`'s Peer service which faster data planes it speaks (Peer.DataPlanes): its
 * socket endpoint, or undefined when it speaks only Exchange (it answered UNIMPLEMENTED, as a
 * worker built to the older contract does, or offered nothing). Any other failure (unreachable,
 * wrong token, deadline) is a PeerUnreachableError: falling back would only fail again later.
 */
export async function askDataPlanes(o: AskDataPlanesOptions): Promise<SocketEndpoint | undefined> {
  const client = new (loadMoeProto().moe.v1.Peer)(o.address, o.credentials, {
    ...GRPC_OPTIONS,
    ...(o.token ? { interceptors: [tokenInterceptor(o.token)] } : {}),
  });
  try {
    const reply = await new Promise<{ socket?: SocketEndpoint | null }>((resolve, reject) =>
      client.DataPlanes({ runId: o.runId, source: o.source }, { deadline: new Date(Date.now() + o.timeoutMs) }, (error, response) =>
        error ? reject(error) : resolve(response ?? {}),
      ),
    );
    return reply.socket && reply.socket.tcpAddress ? reply.socket : undefined;
  } catch (error) {
    const e = error as grpc.ServiceError;
    if (e.code === grpc.status.UNIMPLEMENTED) return undefined;
    throw new PeerUnreachableError(o.dest, o.address, `asking which data planes it speaks: ${grpc.status[e.code] ?? e.code}: ${e.details || e.message}`);
  } finally {
    client.close();
  }
}
