export * from './proto/load';
export type * from './proto/types';
export * from './proto/tensors';
export * from './proto/config-msg';

// wire codecs
export { CODEC_DTYPE, DTYPE_BYTES, FP8_BLOCK_SIZE, type CodecName, type EncodedTensor, type RowDType } from './codec/types';
export { encodeRows, decodeRows, encodedBytes } from './codec/rows';
export { toTensorMsg, fromTensorMsg } from './codec/tensor-msg';
export { f32ToBf16Bits, bf16BitsToF32 } from './codec/bf16';
export { f32ToE4m3, e4m3ToF32, E4M3_MAX, E4M3_NAN } from './codec/fp8-e4m3';

// keys, frames, transports
export { keyString, isPhase, PHASES, type FrameKey, type Phase } from './transport/frame-key';
export type { IncomingFrame, OutgoingFrame, Transport } from './transport/transport';
export {
  DuplicateFrameError,
  PeerRefusedError,
  PeerUnreachableError,
  RankRangeError,
  ReceiveTimeoutError,
  StaleFrameError,
  TransportClosedError,
} from './transport/errors';
export { createInMemoryTransports } from './transport/in-memory';
export { DEFAULT_MAILBOX_BYTES } from './transport/frame-store';

// gRPC data plane
export { GrpcTransport, GRPC_TRANSPORT_DEFAULTS, type GrpcTransportOptions, type PeerEndpoint } from './grpc/grpc-transport';
export { PeerMailbox, RunMismatchError, type InboundConnection, type PeerMailboxOptions } from './grpc/peer-mailbox';
export { peerServiceHandlers } from './grpc/peer-service';
export { undecodableReason } from './grpc/tolerant-deserialize';
export { guardedServerOptions, serverGuard, SERVER_GUARD_DEFAULTS, type ServerGuardOptions } from './grpc/server-guard';
export { TOKEN_ENV, TOKEN_METADATA_KEY, clientOptions, envToken, tokenInterceptor, tokenProblem } from './grpc/cluster-token';
export { TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV, TlsConfigError, channelCredentials, serverCredentials, tlsEnabled, tlsFromEnv, type TlsFiles } from './grpc/tls';
export { MalformedFrameError } from './grpc/frame-message';

// all-to-all
export { exchange } from './alltoall/exchange';
export { dispatchLayout, type DispatchLayout } from './alltoall/layout';
export { dispatch, type DispatchHandle, type DispatchOptions, type ReceivedRows } from './alltoall/dispatch';
export { combine, type CombineOptions } from './alltoall/combine';
export { allReduceSum } from './alltoall/all-reduce';
export { AllToAllShapeError, ExchangeTimeoutError, LayoutError } from './alltoall/errors';

// link shaping (modeled links over any Transport)
export * from './link';

// loopback throughput (benchmarks): raw TCP vs the gRPC data plane between two processes
export { measureGrpcLoopback, measureTcpLoopback, type GrpcLoopbackOptions, type LoopbackResult } from './bench/loopback';

// op timeline of a step (the report's input)
export { TimelineRecorder, type Direction as OpDirection, type OpRecordData, type Stream as OpStream } from './timeline/recorder';
