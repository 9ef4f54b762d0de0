/**
 * The shapes a benchmark report is made of: what the driver hands in (timelines of measured
 * steps) and what comes out (`report.json`, schema `moe-bench/1`).
 *
 * Units: every `*_ms` / `*Ms` is milliseconds, every `bytes*` is bytes, `*_gbps` is 10^9 bytes
 * per second, `*_mbps` is 10^6 bytes per second. Ratios are plain numbers.
 */

import type { OpDirection, OpRecordData, OpStream } from '@moe/comm';
import type { BenchLoad } from './load-section';

/** The two streams of a worker's step, and an op's direction: as the worker records them. */
export type Stream = OpStream;
export type Direction = OpDirection;
export type { OpRecordData };
/** A registered schedule's name (`@moe/schedule`'s SCHEDULE_NAMES). */
export type ScheduleName = string;

/** One step as every worker ran it. */
export interface StepSample {
  /** Step number within the run (0-based), as sent in RunStep. */
  step: number;
  /** ms from the scheduler sending RunStep to the last worker's reply. */
  stepMs: number;
  /** [world_size]: each rank's ops of this step, indexed by rank. */
  timelines: OpRecordData[][];
}

/** Every step of one run: one (schedule, chunks, setting). */
export interface RunSamples {
  schedule: ScheduleName;
  /** Token chunks per layer; 1 for naive. */
  chunks: number;
  /** The setting: compute-to-communication ratio the run was made to have (1 = headline). */
  ratio: number;
  /** The first `warmupSteps` steps are dropped before any figure is taken. */
  warmupSteps: number;
  /** All steps, warm-up included, in step order. */
  steps: StepSample[];
  /** [world_size]: worker id of each rank, for labels; optional. */
  workerIds?: string[];
}

/** One step picked to be drawn (timeline.svg) or traced (trace.json). */
export interface StepTimeline {
  schedule: ScheduleName;
  chunks: number;
  ratio: number;
  step: number;
  /** ms, scheduler-measured (see `StepSample.stepMs`). */
  stepMs: number;
  /** [world_size]: each rank's ops, indexed by rank. */
  timelines: OpRecordData[][];
  /** [world_size]: worker id of each rank; optional. */
  workerIds?: string[];
}

/** min, median and max of a set of measurements, in the unit of the measurements. */
export interface Range {
  min: number;
  median: number;
  max: number;
}

/** One `results` row: one (schedule, chunks, setting) over its measured steps. */
export interface ResultRow {
  schedule: ScheduleName;
  chunks: number;
  /** Compute-to-communication ratio of the setting. */
  ratio: number;
  /** Steps measured (after warm-up). */
  steps: number;
  warmup_steps: number;
  /** ms, scheduler sends RunStep -> last worker's reply. */
  step_ms: Range;
  /** ms, busy time of the compute stream on the slowest worker. */
  compute_ms: Range;
  /** ms, time at least one all-to-all op is in flight on that worker. */
  comm_ms: Range;
  /** ms, time that worker's compute stream sat idle while an all-to-all was in flight. */
  exposed_comm_ms: Range;
  /** (step - compute) / compute, from medians. */
  overhead: number;
  /** ms, max(compute, comm) of this setting's naive run (medians); null without a naive run. */
  ideal_ms: number | null;
  /** naive step / this step (medians); 1 for the naive row; null without a naive run. */
  speedup: number | null;
  /** ideal / this step (medians); null without a naive run. */
  efficiency: number | null;
  /**
   * 10^9 bytes/s: bytes the slowest worker sent in all-to-alls (dispatch, combine and their
   * backward: dispatch_bwd, combine_bwd) / comm_ms; median over steps. 0 when comm_ms is 0.
   */
  algbw_gbps: number;
  /** bytes the slowest worker sent in all-to-alls in a step (median over steps). */
  bytes_per_step: number;
  /** Rank that was slowest (largest compute busy time) in most measured steps. */
  slowest_rank: number;
  /** true on the row with the smallest median step among its schedule's rows of its setting (never on naive). */
  winner: boolean;
  /**
   * ms, the cost model's compute time on the slowest worker (sum of its modeled compute ops),
   * beside compute_ms (what was measured); null when the backend models no device (cpu).
   */
  modeled_compute_ms?: Range | null;
  /**
   * Median over every modeled compute op of the run (all ranks, measured steps) of
   * (measured - modeled) / modeled: 0.05 means ops ran 5% longer than the cost model says. null without a model.
   */
  compute_drift?: number | null;
  /** ms, the cluster simulator's step for this row (libs/sim predictStep); absent when not simulated. */
  predicted_step_ms?: number;
  /** ms, the simulator's compute_ms, comm_ms and exposed_comm_ms of the row, beside the measured ones (where a miss comes from). */
  predicted_compute_ms?: number;
  predicted_comm_ms?: number;
  predicted_exposed_comm_ms?: number;
  /** 1 - |predicted - measured median| / measured median. */
  alignment?: number;
  /** What bound the row's all-to-alls: the modeled links or the host transport (absent when the workers do not shape links). */
  link?: LinkRecord | null;
  /** How the local workers' main threads shared the machine's cores in the row's run and in its prediction's probes; null when not read (not Linux, or workers this bench did not start). */
  host_cpu?: HostCpu | null;
}

/**
 * The worker processes' main threads (the kernel's schedstat), ms a step (warm-up steps included),
 * mean over the workers: over the row's run and over the host probes of its schedule that its
 * prediction stands on.
 */
export interface HostCpu {
  /** on a CPU, a step of the row's run */
  run_ms: number;
  /** runnable but waiting for a core, a step of the row's run */
  wait_ms: number;
  /** the same wait, a step, mean over the probes */
  probes_wait_ms: number;
  /** probes watched */
  probes: number;
}

/** Modeled links against the host transport under them, over a row's measured steps. */
export interface LinkRecord {
  /** true when in most measured steps some rank's host transport added more than 10% to its modeled link time. */
  host_bound: boolean;
  /** Measured steps in which some rank was host-bound. */
  host_bound_steps: number;
  /** ms, median over steps of the largest per-rank time the host transport added on top of the model. */
  host_transport_ms: number;
  /** ms, median over steps of that rank's modeled link time (queueing + latency + bytes/bandwidth, summed over its frames). */
  modeled_link_ms: number;
}

/** One schedule's best run of a setting (its winning chunk count), against that setting's naive run. */
export interface ScheduleSummary {
  schedule: ScheduleName;
  chunks: number;
  /** ms, median. */
  step_ms: number;
  /** naive step / this step; null without a naive run. */
  speedup: number | null;
  /** ideal / this step; null without a naive run. */
  efficiency: number | null;
  overhead: number;
  /** exposed_comm_ms / comm_ms (medians): the share of this run's all-to-all time that compute did not hide. */
  exposed_comm_share: number;
}

/** Headline figures of one setting: naive against its best overlapped run. */
export interface SettingSummary {
  ratio: number;
  /** ms, medians. */
  naive_step_ms: number | null;
  overlapped_step_ms: number | null;
  ideal_ms: number | null;
  /** naive step / best overlapped step. */
  speedup: number | null;
  /** ideal / best overlapped step. */
  efficiency: number | null;
  overhead_naive: number | null;
  overhead_overlapped: number | null;
  /** Chunk count of the best overlapped run. */
  winning_chunks: number | null;
  /** Naive, then each other schedule's best run (overlapped, fb-overlap, ...), in result order. */
  schedules: ScheduleSummary[];
}

/** The headline setting's figures at the top level, and every setting's in `settings`. */
export interface ReportSummary extends SettingSummary {
  /** The headline setting: ratio 1 when measured, else the ratio nearest 1 (log scale). */
  headline_ratio: number;
  settings: SettingSummary[];
}

/** Bandwidth of the host transport, measured in the same run (`what` says exactly what was measured). */
export interface TransportBench {
  /** What the two figures measure, in words. */
  what?: string;
  /** 10^6 bytes/s over a raw TCP socket. */
  tcp_mbps: number;
  /** 10^6 bytes/s over the gRPC Peer transport. */
  grpc_mbps: number;
  /** grpc_mbps / tcp_mbps: the fraction of raw TCP the gRPC transport reaches. */
  ratio: number;
  /**
   * The all-to-all on every data plane (tcp_mbps and grpc_mbps are its raw TCP and gRPC rows):
   * `world` processes, one `frame_bytes` frame per peer per round, in the same run.
   */
  planes?: {
    plane: string;
    /** The median of runs_mbps. */
    mbps: number;
    ratio: number;
    /** Every measured run, in run order (the planes' runs interleave: tcp, grpc, socket, ..., then again). */
    runs_mbps?: number[];
    /** CPU ms all ranks spent per MB moved (median of the runs): what the plane costs, whatever the host's load. */
    cpu_ms_per_mb?: number;
  }[];
  frame_bytes?: number;
  world?: number;
  /** The data plane the bench's runs sent frames over, as the workers reported it ("socket", "grpc", "socket+grpc"). */
  used?: string;
}

export interface ReportEnvironment {
  node: string;
  platform: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  hostname?: string;
  /** ISO 8601. */
  date: string;
  /** `git rev-parse HEAD` of the checkout, with `-dirty` appended when tracked files had changes. */
  gitCommit?: string;
}

/** Settings of the run; `command` is the exact command line that reproduces it. */
export interface ReportConfig {
  command: string;
  [key: string]: unknown;
}

export const REPORT_SCHEMA = 'moe-bench/1';

/** `report.json`. */
export interface BenchReport {
  schema: typeof REPORT_SCHEMA;
  config: ReportConfig;
  environment: ReportEnvironment;
  /** One row per (schedule, chunks, ratio), ordered by ratio, then naive first, then chunks. */
  results: ResultRow[];
  summary: ReportSummary;
  /** null when the run did not measure the transport. */
  transport: TransportBench | null;
  /** Expert load of the sweep, and the skewed-routing comparison with and without redundant experts (absent in older reports). */
  load?: BenchLoad;
}

/** Input that cannot make a report; the message names what is wrong. */
export class ReportError extends Error {
  override readonly name = 'ReportError';
}
