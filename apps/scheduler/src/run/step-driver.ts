/**
 * The step driver: sends a run's RPCs (LoadShard, RunStep, FetchParams) to every worker at once,
 * gathers the replies and checks them; a failed step's error names what every rank was doing.
 * The requests are built in step-requests.ts, the replies checked in step-replies.ts.
 */
import type { FetchParamsResponseOut, LoadShardRequest, RunStepRequest, RunStepResponseOut } from '@moe/comm';
import type { ModelConfig } from '@moe/model';
import type { ExpertPlacement } from '@moe/placement';
import { allRanks } from './all-ranks';
import { formatFlightRecords } from './flight-recorder';
import { assertSameChecksum, gatherStep, type StepMetrics } from './step-replies';
import { WorkerLostError, WorkerProcessExitError } from '../errors';
import type { RunGuard } from '../control/run-guard';
import type { WorkerHandle } from '../control/worker-client';

export { allRanks } from './all-ranks';
export { loadShardRequests, runStepRequests, type ShardPlan } from './step-requests';
export { assertSameChecksum, gatherStep, type StepMetrics } from './step-replies';

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

  /**
   * One step on every rank: `stepMs` runs from sending the first RunStep to the last reply.
   * With redundant experts (`placement`) the copies' checksums are checked too.
   */
  async runStep(step: number, requests: readonly RunStepRequest[], model: ModelConfig, placement?: ExpertPlacement): Promise<StepMetrics> {
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
      // Only this run's records: a worker's recorder also holds earlier runs' ops (bench sub-runs, earlier attempts).
      throw await this.withFlightRecords(failure, requests[0]?.runId);
    }
    return gatherStep(step, replies, model, performance.now() - started, placement);
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
  private async withFlightRecords(error: unknown, runId: string | undefined): Promise<unknown> {
    if (!(error instanceof Error)) return error;
    const records = await Promise.all(
      this.workers.map((w) =>
        typeof w.flightRecord === 'function' ? w.flightRecord(FLIGHT_RECORD_TIMEOUT_MS).catch(() => undefined) : Promise.resolve(undefined),
      ),
    );
    const summary = formatFlightRecords(records, runId);
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
