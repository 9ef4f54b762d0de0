/**
 * One training run, top to bottom: plan the experts and the batch split, gather the workers
 * (a local cluster of child processes unless given one), load the shards, drive the steps,
 * fetch the parameters, stop what was started, and optionally check parity with the reference.
 */
import type { LogLine } from '@moe/log';
import { checkWorkersRun, resolveStepSettings, stepOptionsToWire, StepSettingsError, type StepSettings, type StepSettingsInput } from '@moe/schedule';
import { initParams, MarkovChain, trainReference, type ModelConfig, type ModelParams, type TrainConfig } from '@moe/model';
import { splitSequences, type SequenceRange } from '@moe/placement';
import { LocalCluster, type Cluster, type SchedulerSettings } from '../control/local-cluster';
import { ExternalCluster } from '../control/external-cluster';
import { gatherOptimizerState, optimizerStateForRank, saveCheckpoint, type Checkpoint } from './checkpoint';
import { CheckpointError } from '../errors';
import { newRunId } from './run-id';
import { assembleParams } from './parity';
import { checkParity, parityTolerances, type ParityReport, type ParityTolerances } from '@moe/model';
import { replicaMirror, runMirror } from './parity-mirror';
import { balancedPlacement, describePlacement, primaryOwner, rebalanceProblem, singleCopy, planExperts, PlacementError, type ExpertPlacement, type Placement } from '@moe/placement';
import type { RegisteredWorker } from '../control/rendezvous';
import { RunGuard } from '../control/run-guard';
import {
  loadShardRequests,
  runStepRequests,
  StepDriver,
  type StepMetrics,
} from './step-driver';
import { WorkerHandle } from '../control/worker-client';
import { moveExperts, Rebalancer, type RebalanceEvent, type RebalanceSettings } from './rebalance-run';

/** Deadline of each RunStep unless told otherwise. */
export const DEFAULT_STEP_TIMEOUT_MS = 60_000;
/** Deadline of LoadShard and FetchParams unless told otherwise. */
export const DEFAULT_RPC_TIMEOUT_MS = 60_000;

export interface TrainingOptions {
  model: ModelConfig;
  train: TrainConfig;
  /** Workers in the run (W). */
  workers: number;
  /** Schedule, chunks, codecs, timeline; the rest of `DEFAULT_STEP_SETTINGS`. */
  step?: StepSettingsInput;
  /** Expert placement: a rule or an owner rank per expert. Default contiguous. */
  placement?: Placement;
  /**
   * Redundant experts (EPLB): this many physical copies beyond the E experts, placed by EPLB
   * (hierarchical policy when the routing groups split over the nodes, global otherwise) from
   * `expertLoads`, or from even loads when absent; every rebalance re-plans as many. Replaces `placement`.
   */
  redundantExperts?: number;
  /** [layers][E] expert loads to plan the first placement with redundant experts from (e.g. a previous run's load.json). */
  expertLoads?: number[][];
  /** Run on these registered workers (the first `workers` of them) instead of starting any; not stopped afterwards. */
  cluster?: Cluster;
  /** Start no workers: serve the scheduler and wait for `workers` started elsewhere (`moe worker`). */
  external?: boolean;
  /** Scheduler address, heartbeats, rendezvous timeout. */
  scheduler?: SchedulerSettings;
  /** Backend of locally started workers. Default "cpu". */
  backend?: string;
  /** Sent to every worker as LoadShard.backend_options_json (sim: profile, dilation, ...). */
  backendOptions?: Record<string, unknown>;
  /** More flags for locally started workers. */
  workerArgs?: readonly string[];
  /** Log every line locally started workers print. */
  echoWorkerOutput?: boolean;
  /** Deadline of each RunStep. Default 60 000 ms. */
  stepTimeoutMs?: number;
  /** Deadline of LoadShard and FetchParams. Default 60 000 ms. */
  rpcTimeoutMs?: number;
  /** Train the reference too and compare (`result.parity`). */
  checkReference?: boolean;
  /** Overrides of the run's parity tolerances (by default those of its codecs, `parityTolerances`). */
  tolerances?: ParityTolerances;
  /** Aborting stops the run (and the workers it started); the run rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * The run's id, unique for all time (default: a new one, or the checkpoint's when resuming).
   * Checkpoints carry it, and a run only ever resumes from a checkpoint with its own id.
   */
  runId?: string;
  /** The id sent to the workers (LoadShard, RunStep, FetchParams). Default `runId`; the queue adds the attempt. */
  wireRunId?: string;
  /** Save a checkpoint (`<dir>/checkpoint.moe`) every `checkpointEvery` steps. */
  checkpointDir?: string;
  checkpointEvery?: number;
  /**
   * Continue a stopped run from this checkpoint (`loadCheckpoint`): its parameters and AdamW
   * state, from step `resume.step` to `train.steps`. The model and the batch must be the
   * checkpoint's. `losses` then holds the checkpoint's losses followed by the new ones.
   */
  resume?: Checkpoint;
  /** Recompute the placement with EPLB from the measured loads every `rebalance.every` steps and move the experts. */
  rebalance?: RebalanceSettings;
  /** Called once the shards are loaded, before the first step. */
  onReady?: (run: RunInfo) => void;
  /** Called after every step. */
  onStep?: (metrics: StepMetrics, run: RunInfo) => void;
  log?: LogLine;
}

export interface RunInfo {
  runId: string;
  schedulerAddress: string;
  /** The run's workers, index = rank. */
  workers: RegisteredWorker[];
  /** [E] owner rank of each global expert (with redundant experts: its first copy's rank). */
  owner: number[];
  /** Every physical expert and its rank (one per expert without redundant experts). */
  placement: ExpertPlacement;
  /** [W] each rank's block of sequences. */
  ranges: SequenceRange[];
  settings: StepSettings;
  /** Entropy rate of the data (nats per token): the lowest mean loss a perfect model reaches. */
  entropy: number;
  /** Dense-parameter checksum after LoadShard. */
  initialChecksum: string;
  /** Tokens of one step's global batch (batchSequences x seqLen). */
  tokensPerStep: number;
}

export interface TrainingResult extends RunInfo {
  /** [S] mean cross-entropy of each step's global batch. */
  losses: number[];
  /** [S] auxiliary loss of each step. */
  auxLosses: number[];
  steps: StepMetrics[];
  /** Final parameters: dense from rank 0, each expert from its owner. */
  params: ModelParams;
  /** Wall time of the steps (first RunStep sent to last reply of the last step), ms. */
  trainMs: number;
  /** Present with `checkReference`. */
  parity?: ParityReport;
  reference?: { losses: number[]; auxLosses: number[] };
  /** [E] owner rank of each expert at the end (differs from `owner` after a rebalance). */
  finalOwner: number[];
  /** The placement at the end. */
  finalPlacement: ExpertPlacement;
  /** Every placement change, in order (empty without `rebalance`). */
  rebalances: RebalanceEvent[];
}

/**
 * Trains `train.steps` steps of `model` on `workers` workers and returns the losses, the step
 * metrics and the final parameters. Everything it started is stopped before it returns or throws.
 *
 * @throws PlacementError / BatchSplitError before anything starts, when the plan cannot work;
 *   RendezvousTimeoutError, WorkerProcessExitError, WorkerLostError, WorkerRpcError,
 *   ChecksumMismatchError when the run breaks; the signal's reason when aborted
 */
export async function runTraining(options: TrainingOptions): Promise<TrainingResult> {
  const { model, train, resume } = options;
  const log = options.log ?? (() => {});
  const settings = resolveStepSettings(options.step);
  if (settings.nodeSize > 0 && options.workers % settings.nodeSize !== 0) {
    throw new StepSettingsError(`nodeSize=${settings.nodeSize} does not split the ${options.workers} workers into whole nodes`, 'nodeSize');
  }
  const runId = options.runId ?? resume?.runId ?? newRunId();
  if (resume) checkResumable(resume, runId, model, train);
  const every = options.checkpointEvery ?? 0;
  if (options.checkpointDir && (!Number.isInteger(every) || every < 1)) {
    throw new RangeError(`checkpointEvery=${options.checkpointEvery} must be a positive integer when checkpointDir is set`);
  }
  let placement = initialPlacement(options, model, settings.nodeSize);
  let owner = primaryOwner(placement, model.routedExperts);
  if (options.redundantExperts) log(`redundant experts: ${describePlacement(placement, options.workers)}`);
  const rebalancer = options.rebalance ? new Rebalancer(model, options.workers, settings.nodeSize, options.rebalance, options.redundantExperts ?? 0) : undefined;
  const rebalances: RebalanceEvent[] = [];
  const ranges = splitSequences(train.batchSequences, options.workers);
  const wireRunId = options.wireRunId ?? runId;

  const schedulerSettings = { ...options.scheduler, log: options.scheduler?.log ?? options.log };
  const cluster: Cluster =
    options.cluster ??
    (options.external
      ? await ExternalCluster.start({ ...schedulerSettings, workers: options.workers, abort: options.signal })
      : await LocalCluster.start({
          ...schedulerSettings,
          workers: options.workers,
          backend: options.backend,
          workerArgs: options.workerArgs,
          echoWorkerOutput: options.echoWorkerOutput,
          abort: options.signal,
        }));
  const ownCluster = !options.cluster;
  const guard = new RunGuard();
  const unwatch = [guard.watch(options.signal), cluster.onFailure((error) => guard.fail(error))];
  let handles: WorkerHandle[] = [];

  let result: TrainingResult;
  try {
    if (cluster.workers.length < options.workers) {
      throw new RangeError(`the cluster has ${cluster.workers.length} workers but the run asks for ${options.workers}`);
    }
    const workers = cluster.workers.slice(0, options.workers);
    checkWorkersRun(workers, settings);
    handles = workers.map((w, rank) => new WorkerHandle(rank, w.workerId, w.address, cluster.scheduler.token ?? ''));
    const driver = new StepDriver(handles, guard, {
      stepTimeoutMs: options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS,
      rpcTimeoutMs: options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS,
    });

    const shardPlan = {
      runId: wireRunId,
      model,
      optimizer: train.optimizer,
      seqLen: train.seqLen,
      peers: workers.map((w) => w.address),
      backendOptions: options.backendOptions,
    };
    const shardRequests = loadShardRequests({ ...shardPlan, owner: placement }, resume?.params ?? initParams(model));
    if (resume) shardRequests.forEach((r, rank) => (r.optimizerState = optimizerStateForRank(resume.optimizer, placement, rank)));
    const initialChecksum = await driver.loadShards(shardRequests);
    const chain = new MarkovChain(model.vocabSize, train.dataSeed);
    const info: RunInfo = {
      runId,
      schedulerAddress: cluster.scheduler.address,
      workers,
      owner,
      placement,
      ranges,
      settings,
      entropy: chain.entropy,
      initialChecksum,
      tokensPerStep: train.batchSequences * train.seqLen,
    };
    options.onReady?.(info);

    const stepOptions = stepOptionsToWire(settings);
    const steps: StepMetrics[] = [];
    const trainStart = performance.now();
    const firstStep = resume?.step ?? 0;
    const losses = [...(resume?.losses ?? [])];
    const auxLosses = [...(resume?.auxLosses ?? [])];
    for (let step = firstStep; step < train.steps; step++) {
      const batch = chain.batch(step, train.batchSequences, train.seqLen);
      const metrics = await driver.runStep(step, runStepRequests(shardPlan.runId, step, batch, ranges, stepOptions), model, placement);
      steps.push(metrics);
      losses.push(metrics.loss);
      auxLosses.push(metrics.auxLoss);
      options.onStep?.(metrics, info);
      rebalancer?.observe(metrics.expertCounts);
      const event = rebalancer?.due(step, train.steps) ? rebalancer.plan(placement, step) : undefined;
      if (event) {
        // Each placement loads under its own run id (`<run>-p<n>`): the streams of the previous
        // placement, cut by the reload, must not count as lost peers of the new one.
        const loadedRunId = shardPlan.runId;
        shardPlan.runId = `${wireRunId}-p${rebalances.length + 1}`;
        await moveExperts(driver, loadedRunId, shardPlan, event);
        owner = event.to;
        placement = event.toPlacement;
        rebalances.push(event);
        log(`rebalanced after step ${step + 1}: ${event.moved} experts moved, imbalance ${event.imbalanceBefore.toFixed(3)} -> ${event.imbalanceAfter.toFixed(3)}`);
      }
      if (options.checkpointDir && (step + 1) % every === 0) {
        const replies = await driver.fetchParams(shardPlan.runId, true);
        const path = saveCheckpoint(options.checkpointDir, {
          runId,
          step: step + 1,
          model,
          train,
          losses,
          auxLosses,
          params: assembleParams(model, replies, placement),
          optimizer: gatherOptimizerState(replies),
        });
        log(`checkpoint after step ${step} (${step + 1} steps done): ${path}`);
      }
    }
    const trainMs = performance.now() - trainStart;
    const params = assembleParams(model, await driver.fetchParams(shardPlan.runId), placement);
    result = {
      ...info,
      losses,
      auxLosses,
      steps,
      params,
      trainMs,
      finalOwner: [...owner],
      finalPlacement: placement,
      rebalances,
    };
  } finally {
    unwatch.forEach((off) => off());
    handles.forEach((h) => h.close());
    if (ownCluster) await cluster.stop();
  }

  if (options.checkReference) {
    log('training the single-process reference on the same batches, with the run\'s codec rounding and summation order');
    const mirror = runMirror(settings, ranges, train.seqLen);
    const replicas = new Map<ExpertPlacement, ReturnType<typeof replicaMirror>>();
    const placementAt = placementOfStep(result);
    const mirrorAt = (step: number) => {
      const p = placementAt(step);
      if (!replicas.has(p)) replicas.set(p, replicaMirror(p, model.routedExperts, ranges, train.seqLen, settings.nodeSize));
      const r = replicas.get(p);
      return r ? { ...mirror, replicas: r } : mirror;
    };
    const reference = trainReference(model, train, { mirrorAt });
    result.reference = { losses: reference.losses, auxLosses: reference.auxLosses };
    // The policy lives here, not in a command: the CLI and the queue check the same way.
    result.parity = checkParity(result, reference, parityTolerances(settings, options.tolerances));
  }
  return result;
}

/** The run's first placement: EPLB's with redundant experts (from the given loads, or even ones), else the placement rule's. */
function initialPlacement(options: TrainingOptions, model: ModelConfig, nodeSize: number): ExpertPlacement {
  const redundant = options.redundantExperts ?? 0;
  if (redundant === 0) return singleCopy(planExperts(model.routedExperts, options.workers, options.placement ?? 'contiguous'));
  if (options.placement !== undefined && options.placement !== 'contiguous') {
    throw new PlacementError(`redundant experts are placed by EPLB; leave out placement=${JSON.stringify(options.placement)}`);
  }
  const topology = { gpus: options.workers, nodeSize, groups: model.routerGroups };
  const problem = rebalanceProblem(model.routedExperts, topology, redundant);
  if (problem) throw new PlacementError(problem);
  const loads = options.expertLoads ?? [new Array<number>(model.routedExperts).fill(1)];
  if (loads.some((row) => row.length !== model.routedExperts)) {
    throw new PlacementError(`the expert loads have ${loads.find((row) => row.length !== model.routedExperts)!.length} experts a layer; the model has ${model.routedExperts}`);
  }
  return balancedPlacement(loads, topology, redundant).placement;
}

/** The placement each step ran with (a rebalance after step s takes effect at s + 1): the reference mirrors each step's replica choices. */
function placementOfStep(result: TrainingResult): (step: number) => ExpertPlacement {
  return (step) => {
    let placement = result.placement;
    for (const e of result.rebalances) if (step > e.afterStep) placement = e.toPlacement;
    return placement;
  };
}

/**
 * A checkpoint continues only the run that wrote it: the same run id, model, batches and
 * optimizer. Retrying cannot change any of these, so the CheckpointError is final.
 */
function checkResumable(resume: Checkpoint, runId: string, model: ModelConfig, train: TrainConfig): void {
  if (resume.runId !== runId) {
    throw new CheckpointError(`the checkpoint belongs to run ${resume.runId}, not to this run ${runId}: a run only resumes from its own checkpoint`);
  }
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(resume.model, model)) throw new CheckpointError(`the checkpoint's model ${JSON.stringify(resume.model)} is not this run's ${JSON.stringify(model)}`);
  for (const key of ['batchSequences', 'seqLen', 'dataSeed', 'optimizer'] as const) {
    if (!same(resume.train[key], train[key])) {
      throw new CheckpointError(`the checkpoint's train.${key}=${JSON.stringify(resume.train[key])} differs from this run's ${JSON.stringify(train[key])}`);
    }
  }
  if (resume.step > train.steps) throw new CheckpointError(`the checkpoint is after step ${resume.step}, past this run's ${train.steps} steps`);
}
