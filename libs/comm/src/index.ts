export * from './proto/load';
export type * from './proto/types';
export * from './proto/tensors';
export * from './proto/config-msg';

// wire codecs
export { CODEC_DTYPE, DTYPE_BYTES, FP8_BLOCK_SIZE, fp8BlockSize, type CodecName, type EncodedTensor, type RowDType } from './codec/types';
export { encodeRows, encodeRowsOf, decodeRows, decodeRowsInto, encodedBytes, roundTripRows } from './codec/rows';
export { toTensorMsg, fromTensorMsg } from './codec/tensor-msg';
export { codecRounding } from './codec/wire-rounding';
export { f32ToBf16Bits, bf16BitsToF32 } from './codec/bf16';
export { f32ToE4m3, e4m3ToF32, E4M3_MAX, E4M3_NAN } from './codec/fp8-e4m3';

// keys, frames, transports
export { keyString, isPhase, microBatchOf, frameId, PHASES, type FrameKey, type Phase } from './transport/frame-key';
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

// socket data plane (negotiated over Peer.DataPlanes; Exchange stays the contract every worker speaks)
export { SocketTransport, DATA_PLANE_CHOICES, type DataPlaneChoice, type SocketTransportOptions } from './socket/socket-transport';
export { PeerSocketServer, localHostId, type PeerSocketServerOptions } from './socket/socket-server';
export { InboundLink, type InboundLinkOptions } from './socket/inbound-link';
export type { ReceiverConnection } from './socket/receiver-connection';
export { askDataPlanes } from './socket/negotiate';
export { SocketProtocolError } from './socket/records';

// all-to-all
export { exchange } from './alltoall/exchange';
export { dispatchLayout, type DispatchLayout } from './alltoall/layout';
export { ReplicaChooser, type ReplicaPlacement } from './alltoall/replicas';
export { dispatch, type DispatchHandle, type DispatchOptions, type ReceivedRows } from './alltoall/dispatch';
export { combine, type CombineOptions } from './alltoall/combine';
export { allReduceSum } from './alltoall/all-reduce';
export { exchangeAmong } from './alltoall/exchange-among';
export { nodeLayout, MAX_EXPERTS_PER_NODE, type HopTiming, type LinkBytes, type NodeLayout } from './alltoall/node-layout';
export { hierarchicalDispatch, hierarchicalCombineBackward } from './alltoall/hierarchical-dispatch';
export { hierarchicalCombine, hierarchicalDispatchBackward, type HierarchicalCombineOptions } from './alltoall/hierarchical-combine';
export type { HierarchicalBackwardHandle, HierarchicalHandle } from './alltoall/hierarchical-handle';
export {
  allToAllStrategy,
  flatLinkBytes,
  ALL_TO_ALL_MODES,
  type AllToAllBackwardHandle,
  type AllToAllHandle,
  type AllToAllMode,
  type AllToAllStrategy,
  type CombineStepOptions,
} from './alltoall/strategy';
export { AllToAllShapeError, ExchangeTimeoutError, LayoutError } from './alltoall/errors';

// link shaping (modeled links over any Transport)
export * from './link';

// the V8 flags of a process that moves frames (workers, benchmark ranks)
export { DATA_PLANE_NODE_FLAGS, dataPlaneChildExecArgv } from './transport/node-flags';

// loopback throughput (benchmarks): raw TCP vs the gRPC data plane between two processes
export { measureGrpcLoopback, measureTcpLoopback, type GrpcLoopbackOptions, type LoopbackResult } from './bench/loopback';
// the all-to-all between `world` processes on raw TCP and on every data plane, in one run
export { measureAllToAll, type AllToAllOptions, type AllToAllPlane, type AllToAllResult } from './bench/alltoall';

// op timeline of a step (the report's input)
export { TimelineRecorder, type Direction as OpDirection, type OpRecordData, type Stream as OpStream } from './timeline/recorder';
