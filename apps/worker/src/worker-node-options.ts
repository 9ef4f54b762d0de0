import type { DataPlaneChoice, Transport } from '@moe/comm';
import type { LogLine } from '@moe/log';
import type { Backend } from './backend';
import type { PlantedFault } from './schedule/faults';

export interface WorkerNodeOptions {
  /** host:port of the scheduler's Scheduler service. */
  scheduler: string;
  /** Interface to bind; 127.0.0.1 unless told otherwise. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Address peers and the scheduler use to reach this worker; defaults to host:boundPort. */
  advertise?: string;
  workerId?: string;
  backend: Backend;
  /** Timeout of every wait for a peer's frame during a step. */
  peerTimeoutMs?: number;
  /** How long to keep trying to register before giving up. */
  registerTimeoutMs?: number;
  /** Default: the process's pino logger. Lines carry workerId, and runId and rank once a shard is loaded. */
  log?: LogLine;
  /** Called once the server is bound, with the address peers reach it at (moe worker prints it for its parent). */
  onListening?: (address: string) => void;
  /** Called after each step this worker ran (its metrics endpoint counts them). */
  onStep?: (step: WorkerStepRecord) => void;
  /** Wraps the step's transport (the metrics count bytes by link class); `nodeSize` of the link model, if any. */
  wrapTransport?: (transport: Transport, nodeSize: number | undefined) => Transport;
  /**
   * Cluster token: required (gRPC metadata `x-moe-token`) on every Worker RPC and Peer stream
   * this worker serves, and sent on Register, Heartbeat and its own Peer streams.
   * Default: `MOE_CLUSTER_TOKEN`; unset or empty: none.
   */
  token?: string;
  /** true at each Register/Heartbeat the scheduler acknowledges, false when it no longer knows this worker (`moe health worker`). */
  onRegistration?: (registered: boolean) => void;
  /** A planted fault (tests only; `moe worker` reads env MOE_FAULT). */
  fault?: PlantedFault;
  /**
   * Data plane for frames to peers: `auto` (default: the socket data plane to every peer that
   * speaks it, gRPC Exchange to the others), `socket` (every peer must speak it) or `grpc`
   * (Exchange only; then this worker offers no socket either). Exchange is always served.
   */
  transport?: DataPlaneChoice;
  /** Called when the scheduler refuses this worker after it was registered (default: exit 1). */
  onRefused?: (error: Error) => void;
}

/** One finished step as this worker saw it: its duration and the bytes it sent, by link class. */
export interface WorkerStepRecord {
  stepMs: number;
  bytesSent: number;
  /** The step's ops as run (start/end in ms from the step's start; stream 'compute' or 'comm'). */
  timeline: readonly { stream: string; startMs: number; endMs: number }[];
}

