/**
 * The step driver: builds each rank's LoadShard and RunStep, sends them to every worker at once,
 * gathers the replies and checks them. The scheduler never touches token payloads in flight:
 * it hands each rank its slice of the batch, and the workers exchange tokens peer to peer.
 *
 * Shapes: W = world size, E = routed experts, layers = MoE layers, B = global sequences,
 * L = tokens per sequence.
 */
import {
  i32TensorMsg,
  modelConfigMsg,
  namedTensorMsg,
  optimizerConfigMsg,
  type ExpertShard,
  type FetchParamsResponseOut,
  type LoadShardRequest,
  type NamedTensor,
  type OpRecordOut,
  type RunStepRequest,
  type RunStepResponseOut,
  type StepOptions,
} from '@moe/comm';
import { denseParams, expertParams, type Batch, type ModelConfig, type ModelParams, type OptimizerConfig } from '@moe/model';
import { sliceSequences, type SequenceRange } from '@moe/placement';
import { formatFlightRecords } from './flight-recorder';
import { ChecksumMismatchError, WorkerLostError, WorkerProcessExitError, WorkerRpcError } from '../errors';
import type { RunGuard } from '../control/run-guard';
import type { WorkerHandle } from '../control/worker-client';

export interface ShardPlan {
  runId: string;
  model: ModelConfig;
  optimizer: OptimizerConfig;
  /** L: tokens per sequence. */
  seqLen: number;
  /** [E] owner rank of each global expert. */
  owner: readonly number[];
  /** [W] host:port of every rank's Worker/Peer services. */
  peers: readonly string[];
  /** Backend-specific settings, sent as LoadShard.backend_options_json when given. */
  backendOptions?: Record<string, unknown>;
}

/**
 * Every rank's LoadShard: all dense parameters (replicated; one encoding shared by all
 * requests) and, for every layer, exactly the experts that rank owns.
 *
 * @returns [W] requests, index = rank
 */
export function loadShardRequests(plan: ShardPlan, params: ModelParams): LoadShardRequest[] {
  const dense: NamedTensor[] = denseParams(params).map((p) => namedTensorMsg(p.name, p.tensor));
  const experts: ExpertShard[][] = plan.peers.map(() => []);
  params.experts.forEach((layer, l) =>
    layer.forEach((expert, e) => {
      experts[plan.owner[e]!]!.push({ layer: l, expert: e, params: expertParams(expert).map((p) => namedTensorMsg(p.name, p.tensor)) });
    }),
  );
  return plan.peers.map((_, rank) => ({
    runId: plan.runId,
    rank,
    worldSize: plan.peers.length,
    peerAddresses: [...plan.peers],
    model: modelConfigMsg(plan.model),
    optimizer: optimizerConfigMsg(plan.optimizer),
    expertOwner: [...plan.owner],
    denseParams: dense,
    experts: experts[rank]!,
    seqLen: plan.seqLen,
    backendOptionsJson: plan.backendOptions ? JSON.stringify(plan.backendOptions) : '',
  }));
}

/**
 * Every rank's RunStep for one step: rank r gets the sequences of `ranges[r]` (inputs and
 * targets, I32 [count * L]); the divisors are the global batch's.
 *
 * @returns [W] requests, index = rank
 */
export function runStepRequests(
  runId: string,
  step: number,
  batch: Batch,
  ranges: readonly SequenceRange[],
  options: StepOptions,
): RunStepRequest[] {
  return ranges.map((range) => ({
    runId,
    step,
    inputs: i32TensorMsg(sliceSequences(batch.inputs, batch.seqLen, range)),
    targets: i32TensorMsg(sliceSequences(batch.targets, batch.seqLen, range)),
    globalTokens: batch.sequences * batch.seqLen,
    globalSequences: batch.sequences,
    options,
  }));
}

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
  /** Checksum of the replicated dense parameters after the update (equal on every rank). */
  checksum: string;
  /** [W] each rank's op timeline (empty unless `recordTimeline`). */
  timelines: OpRecordOut[][];
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
 * Gathers one step's replies (index = rank) into `StepMetrics`, checking each reply's shape.
 * @throws WorkerRpcError (code -1) for a reply of the wrong step or shape; ChecksumMismatchError
 */
export function gatherStep(step: number, replies: readonly RunStepResponseOut[], model: ModelConfig, stepMs: number): StepMetrics {
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
    checksum,
    timelines: replies.map((r) => r.timeline),
  };
}

export interface StepDriverOptions {
  /** Deadline of each RunStep. */
  stepTimeoutMs: number;
  /** Deadline of LoadShard and FetchParams. */
  rpcTimeoutMs: number;
}

/** After a worker is lost in a step, at most this long for the others' RunSteps to say which op they were waiting on. */
const LOST_SETTLE_MS = 3_000;

/** Deadline of each FlightRecord asked after a failed step. */
const FLIGHT_RECORD_TIMEOUT_MS = 2_000;

/** After the first failure, how long the other ranks' calls get to settle, so the error can name them all. */
const SETTLE_GRACE_MS = 250;

/**
 * Every rank's reply (index = rank), or, when a call fails, an error that names every rank whose
 * call failed (those failing within a short grace of the first) and those still pending.
 */
export function allRanks<T>(what: string, calls: readonly Promise<T>[]): Promise<T[]> {
  return new Promise<T[]>((resolve, reject) => {
    const replies = new Array<T>(calls.length);
    const failures = new Map<number, Error>();
    let settled = 0;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const failed = [...failures.keys()].sort((a, b) => a - b);
      const pending = calls.flatMap((_, rank) => (failures.has(rank) || rank in replies ? [] : [rank]));
      const first = failures.get(failed[0]!)!;
      if (failed.length === 1 && pending.length === 0) return reject(first);
      const details = failed.map((rank) => failures.get(rank)!.message).join('; ');
      const summary =
        `${what} failed on ${failed.length === 1 ? 'rank' : 'ranks'} ${failed.join(', ')} of ${calls.length}` +
        (pending.length ? ` (no reply yet from ${pending.length === 1 ? 'rank' : 'ranks'} ${pending.join(', ')})` : '');
      const rank = first instanceof WorkerRpcError ? first.rank : failed[0]!;
      const code = first instanceof WorkerRpcError ? first.code : -1;
      const method = first instanceof WorkerRpcError ? first.method : what;
      reject(new WorkerRpcError(`${summary}: ${details}`, rank, method, code));
    };
    calls.forEach((call, rank) =>
      call.then(
        (value) => {
          replies[rank] = value;
          if (++settled === calls.length) (failures.size ? finish() : resolve(replies));
        },
        (error: unknown) => {
          failures.set(rank, error instanceof Error ? error : new Error(String(error)));
          if (++settled === calls.length) finish();
          else timer ??= setTimeout(finish, SETTLE_GRACE_MS);
        },
      ),
    );
    if (calls.length === 0) resolve([]);
  });
}

/** Sends a run's RPCs to its workers (index = rank), concurrently, every wait raced against the run's guard. */
export class StepDriver {
  constructor(
    private readonly workers: readonly WorkerHandle[],
    private readonly guard: RunGuard,
    private readonly options: StepDriverOptions,
  ) {}

  /** LoadShard on every rank; resolves with the initial dense checksum (checked equal everywhere). */
  async loadShards(requests: readonly LoadShardRequest[]): Promise<string> {
    const replies = await this.guard.run(
      allRanks(
        'LoadShard',
        this.workers.map((w, rank) => w.loadShard(requests[rank]!, this.options.rpcTimeoutMs)),
      ),
    );
    return assertSameChecksum(
      replies.map((r) => r.paramChecksum),
      -1,
      'after LoadShard',
    );
  }

  /** One step on every rank: `stepMs` runs from sending the first RunStep to the last reply. */
  async runStep(step: number, requests: readonly RunStepRequest[], model: ModelConfig): Promise<StepMetrics> {
    const started = performance.now();
    const calls = this.workers.map((w, rank) => w.runStep(requests[rank]!, this.options.stepTimeoutMs));
    let replies: RunStepResponseOut[];
    try {
      replies = await this.guard.run(allRanks(`RunStep of step ${step}`, calls));
    } catch (error) {
      const failure =
        error === this.guard.failure && (error instanceof WorkerProcessExitError || error instanceof WorkerLostError)
          ? await this.lostInStep(step, error, calls)
          : error;
      throw await this.withFlightRecords(failure);
    }
    return gatherStep(step, replies, model, performance.now() - started);
  }

  /**
   * A worker was lost while step `step` ran: gives the other ranks' RunSteps a short time to
   * fail (their peers' sends and receives notice the lost rank) and names, per rank, the op it
   * was waiting on. Bounded by a quarter of the step deadline, at most LOST_SETTLE_MS.
   * Returns an error of the same class, its message extended by a last line:
   * `in step 3, rank 1 was lost; the other ranks: rank 0 (...) failed: ABORTED: rank 0, step 3, op dispatch layer 1 ...`
   */
  private async lostInStep<E extends WorkerProcessExitError | WorkerLostError>(step: number, lost: E, calls: readonly Promise<unknown>[]): Promise<E> {
    const rank = lost instanceof WorkerLostError ? lost.rank : this.workers.findIndex((w) => w.workerId === lost.workerId);
    const outcomes: string[] = calls.map(() => '');
    calls.forEach((call, r) =>
      call.then(
        () => (outcomes[r] = 'finished the step'),
        (error: Error) => (outcomes[r] = error.message.replace(/^RunStep of step \d+ on /, '')),
      ),
    );
    const settleMs = Math.min(LOST_SETTLE_MS, this.options.stepTimeoutMs / 4);
    const others = calls.filter((_, r) => r !== rank);
    await Promise.race([Promise.allSettled(others), new Promise((resolve) => setTimeout(resolve, settleMs).unref())]);
    const ranks = calls.flatMap((_, r) => {
      if (r === rank) return [];
      const outcome = outcomes[r] || `still in the step after ${Math.round(settleMs)} ms (no op failed yet)`;
      return [outcome.startsWith(`rank ${r} `) ? outcome : `rank ${r}: ${outcome}`];
    });
    const message = `${lost.message}\nin step ${step}, rank ${rank} was lost; the other ranks: ${ranks.join('; ')}`;
    const error =
      lost instanceof WorkerLostError
        ? new WorkerLostError(message, lost.workerId, lost.rank)
        : new WorkerProcessExitError(message, lost.workerId, lost.exitCode, lost.signal, lost.stderrTail);
    return Object.assign(error, { cause: lost, step }) as unknown as E;
  }

  /**
   * A step failed or timed out: asks every rank that still answers (FLIGHT_RECORD_TIMEOUT_MS) for
   * its flight recorder and appends the watchdog summary (which ranks entered which collective op
   * and which did not) to the error's message as a last line. Workers without FlightRecord
   * (it is optional in the contract) simply count as not answering; never throws.
   */
  private async withFlightRecords(error: unknown): Promise<unknown> {
    if (!(error instanceof Error)) return error;
    const records = await Promise.all(
      this.workers.map((w) =>
        typeof w.flightRecord === 'function' ? w.flightRecord(FLIGHT_RECORD_TIMEOUT_MS).catch(() => undefined) : Promise.resolve(undefined),
      ),
    );
    const summary = formatFlightRecords(records);
    if (summary) error.message = `${error.message}\n${summary}`;
    return error;
  }

  /** Every rank's current parameters (and AdamW state when asked), index = rank. */
  fetchParams(runId: string, includeOptimizerState = false): Promise<FetchParamsResponseOut[]> {
    return this.guard.run(
      allRanks(
        'FetchParams',
        this.workers.map((w) => w.fetchParams(runId, this.options.rpcTimeoutMs, includeOptimizerState)),
      ),
    );
  }
}
