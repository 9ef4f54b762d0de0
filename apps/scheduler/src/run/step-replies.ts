/**
 * The checks of the workers' replies: one step's replies gathered into `StepMetrics` (each of
 * the right step and shape), and the replicated dense parameters equal on every rank.
 *
 * Shapes: W = world size, E = routed experts, layers = MoE layers.
 */
import type { LinkStatsOut, OpRecordOut, RunStepResponseOut } from '@moe/comm';
import type { ModelConfig } from '@moe/model';
import { hasRedundantExperts, holdersOf, type ExpertPlacement } from '@moe/placement';
import { ChecksumMismatchError, WorkerRpcError } from '../errors';
import { assertReplicasAgree } from './replica-checks';

/** What one step did, gathered from every rank. */
export interface StepMetrics {
  step: number;
  /** Mean cross-entropy of the global batch: Σ loss_sum over ranks, in rank order. */
  loss: number;
  /** Auxiliary (balancing) loss: Σ aux_loss over ranks. */
  auxLoss: number;
  /** From sending RunStep to the last worker's reply, ms (the scheduler's clock). */
  stepMs: number;
  /** [W] each worker's own measure of its step, ms. */
  workerStepMs: number[];
  /** [layers * E] tokens routed to each (layer, expert), summed over ranks. */
  expertCounts: number[];
  /** [W] payload bytes each rank sent to its peers. */
  bytesSent: number[];
  /** [W] all-to-all bytes each rank sent within its node (intra) and to other nodes (inter). */
  linkBytes: { intra: number; inter: number }[];
  /** [W] each worker process's peak resident set size so far, bytes (0 from a worker that does not report it). */
  peakRssBytes: number[];
  /** [W] the data plane each rank's frames went out over ("socket", "grpc", "socket+grpc"; "" from a worker that does not say). */
  dataPlanes: string[];
  /** Checksum of the replicated dense parameters after the update (equal on every rank). */
  checksum: string;
  /** [W] each rank's op timeline (empty unless `recordTimeline`). */
  timelines: OpRecordOut[][];
  /** [W] each rank's modeled links in the step (null from a worker without link shaping). */
  link: (LinkStatsOut | null)[];
  /** Redundant experts only: [layers * P] tokens routed to each physical expert, summed over ranks. */
  physicalCounts?: number[];
}

/**
 * Checks that all ranks report the same dense-parameter checksum.
 * @throws ChecksumMismatchError naming the ranks that differ from rank 0, and their checksums
 */
export function assertSameChecksum(checksums: readonly string[], step: number, when: string): string {
  const reference = checksums[0] ?? '';
  const differing = checksums.flatMap((c, rank) => (c === reference ? [] : [rank]));
  if (differing.length === 0) return reference;
  const groups = new Map<string, number[]>();
  checksums.forEach((c, rank) => groups.set(c, [...(groups.get(c) ?? []), rank]));
  const described = [...groups]
    .map(([c, ranks]) => `${ranks.length > 1 ? 'ranks' : 'rank'} ${ranks.join(', ')} ${ranks.length > 1 ? 'have' : 'has'} ${c || '(empty)'}`)
    .join('; ');
  throw new ChecksumMismatchError(
    `${when}: the replicated dense parameters diverged (param_checksum differs: ${described}); ` +
      `ranks ${differing.join(', ')} disagree with rank 0, stopping the run`,
    step,
    differing,
  );
}

/**
 * Gathers one step's replies (index = rank) into `StepMetrics`, checking each reply's shape and,
 * with redundant experts (`placement`), that every expert's copies agree.
 * @throws WorkerRpcError (code -1) for a reply of the wrong step or shape; ChecksumMismatchError
 */
export function gatherStep(step: number, replies: readonly RunStepResponseOut[], model: ModelConfig, stepMs: number, placement?: ExpertPlacement): StepMetrics {
  const countsLength = model.layers * model.routedExperts;
  const expertCounts = new Array<number>(countsLength).fill(0);
  let loss = 0;
  let auxLoss = 0;
  replies.forEach((reply, rank) => {
    if (reply.step !== step) {
      throw new WorkerRpcError(`RunStep on rank ${rank} answered for step ${reply.step} where step ${step} was asked`, rank, 'RunStep', -1);
    }
    if (reply.expertCounts.length !== countsLength) {
      throw new WorkerRpcError(
        `RunStep on rank ${rank}, step ${step}: expert_counts has ${reply.expertCounts.length} entries, expected layers*experts = ${model.layers}*${model.routedExperts} = ${countsLength}`,
        rank,
        'RunStep',
        -1,
      );
    }
    loss += reply.lossSum;
    auxLoss += reply.auxLoss;
    reply.expertCounts.forEach((c, i) => (expertCounts[i]! += c));
  });
  const checksum = assertSameChecksum(
    replies.map((r) => r.paramChecksum),
    step,
    `step ${step}`,
  );
  const redundant = placement && hasRedundantExperts(placement, model.routedExperts);
  if (redundant) assertReplicasAgree(replies.map((r) => r.replicaChecksums ?? []), holdersOf(placement, model.routedExperts), model.layers, step, `step ${step}`);
  const physicalLength = redundant ? model.layers * placement.physicalToLogical.length : 0;
  const physicalCounts = new Array<number>(physicalLength).fill(0);
  replies.forEach((reply, rank) => {
    const counts = reply.physicalCounts ?? [];
    if (redundant && counts.length !== physicalLength) {
      throw new WorkerRpcError(`RunStep on rank ${rank}, step ${step}: physical_counts has ${counts.length} entries, expected layers*physical experts = ${physicalLength}`, rank, 'RunStep', -1);
    }
    counts.forEach((c, i) => (physicalCounts[i]! += c));
  });
  return {
    step,
    loss,
    auxLoss,
    stepMs,
    workerStepMs: replies.map((r) => r.stepMs),
    expertCounts,
    bytesSent: replies.map((r) => Number(r.bytesSent)),
    linkBytes: replies.map((r) => ({ intra: Number(r.intraNodeBytes ?? 0), inter: Number(r.interNodeBytes ?? 0) })),
    peakRssBytes: replies.map((r) => Number(r.peakRssBytes ?? 0)),
    dataPlanes: replies.map((r) => r.dataPlane ?? ''),
    checksum,
    timelines: replies.map((r) => r.timeline),
    link: replies.map((r) => r.link ?? null),
    ...(redundant ? { physicalCounts } : {}),
  };
}
