import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from '../generated/moe';
import type { PeerMessageOut } from './types';
import { markingDeserializer, tolerantDeserializer } from '../grpc/tolerant-deserialize';

/** Directory holding the `.proto` files: the only place the wire contract is written. */
export const PROTO_ROOT = fileURLToPath(new URL('../../../../proto', import.meta.url));
export const PROTO_FILE = 'moe/v1/moe.proto';

/**
 * Loader options shared by every process. They match the flags used to generate the
 * TypeScript types (`nx run comm:generate`), so the runtime objects have the generated shapes.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

let cached: ProtoGrpcType | undefined;

/** The `moe.v1` package: service constructors and message types, loaded once per process. */
export function loadMoeProto(): ProtoGrpcType {
  if (!cached) {
    const definition = protoLoader.loadSync(PROTO_FILE, PROTO_LOADER_OPTIONS);
    // Bytes that are not a PeerMessage are refused with a PeerAck, not by failing the stream.
    const exchange = (definition['moe.v1.Peer'] as protoLoader.ServiceDefinition)['Exchange']!;
    (exchange as { requestDeserialize: (b: Buffer) => unknown }).requestDeserialize = tolerantDeserializer(
      exchange.requestDeserialize as (b: Buffer) => PeerMessageOut,
    );
    // Bytes that are not a Worker or Scheduler request reach the handler as a marker it refuses (INVALID_ARGUMENT).
    for (const service of ['moe.v1.Worker', 'moe.v1.Scheduler']) {
      for (const [name, method] of Object.entries(definition[service] as protoLoader.ServiceDefinition)) {
        const m = method as { requestDeserialize: (b: Buffer) => unknown };
        m.requestDeserialize = markingDeserializer(`${name} request`, m.requestDeserialize);
      }
    }
    cached = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return cached;
}

/**
 * gRPC channel and server options: message sizes are set explicitly (never the 4 MiB
 * default), large enough for a whole shard of parameters or a multi-GiB step of tokens.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;
export const GRPC_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Receive window of a client's connections (server to client: RunStep and FetchParams replies).
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
};
