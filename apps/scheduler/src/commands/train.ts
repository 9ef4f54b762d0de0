/** `moe train`: start a local cluster (or wait for external workers), train, print every step, optionally check parity. */
import { lineLog, log } from '@moe/log';
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ModelConfig, TrainConfig } from '@moe/model';
import { parsePlacement, type Placement } from '@moe/placement';
import { fmtDuration, median } from '@moe/report';
import { COMBINE_CODECS, DEFAULT_STEP_SETTINGS, describeStepSettings, DISPATCH_CODECS, SCHEDULE_NAMES, type CombineCodecName, type DispatchCodecName } from '@moe/schedule';
import { integer, jsonObject, nonNegativeNumber } from './flags';
import { EXIT, interruptOn, reportError } from './exit';
import { clusterOptions, schedulerSettingsOf, splitArgs, type ClusterFlags } from './cluster';
import { loadCheckpoint } from '../run/checkpoint';
import { formatParity } from '@moe/model';
import { loadRunConfig } from '../run/run-config';
import { JOB_LIMITS } from '../queue/run-job';
import type { StepMetrics } from '../run/step-driver';
import { DEFAULT_RPC_TIMEOUT_MS, DEFAULT_STEP_TIMEOUT_MS, runTraining, type RunInfo, type TrainingResult } from '../run/train-run';
import { addCommsOptions, printComms, readExpertLoads, withRouting, writeLoadReport, type CommsFlags } from './train-comms';
import type { ExpertPlacement } from '@moe/placement';

const placementArg = (value: string): Placement => {
  try {
    return parsePlacement(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

export interface TrainFlags extends ClusterFlags, CommsFlags {
  steps?: number;
  config?: string;
  schedule: string;
  chunks?: number;
  microBatches?: number;
  dispatchCodec: DispatchCodecName;
  combineCodec: CombineCodecName;
  placement: Placement;
  checkReference: boolean;
  lossTolerance?: number;
  paramTolerance?: number;
  seed?: number;
  externalWorkers: boolean;
  stepTimeout: number;
  rpcTimeout: number;
  timeline: boolean;
  json?: string;
  backendOptions?: Record<string, unknown>;
  deviceProfile?: string;
  checkpointDir?: string;
  checkpointEvery?: number;
  resume?: string;
}

/** "0-2" or "0,3,6" or "none": the experts a rank holds a copy of (a redundant expert's copies count once per rank). */
function expertList(placement: ExpertPlacement, rank: number): string {
  const ids = [...new Set(placement.physicalToLogical.filter((_, q) => placement.physicalOwner[q] === rank))].sort((a, b) => a - b);
  if (ids.length === 0) return 'none';
  const contiguous = ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1);
  return contiguous && ids.length > 1 ? `${ids[0]}-${ids[ids.length - 1]}` : ids.join(',');
}

function printRun(run: RunInfo, model: ModelConfig, train: TrainConfig): void {
  run.workers.forEach((w, rank) => {
    const r = run.ranges[rank]!;
    console.log(
      `rank ${rank}: ${w.workerId} at ${w.address} (${w.backend || '?'}, pid ${w.pid})  experts ${expertList(run.placement, rank)}  sequences ${r.first}-${r.first + r.count - 1}`,
    );
  });
  const s = run.settings;
  console.log(
    `run ${run.runId}: ${model.layers} layers x ${model.routedExperts} experts (top-${model.topK}), batch ${train.batchSequences} x ${train.seqLen} tokens, ` +
      describeStepSettings(s),
  );
  console.log(`data entropy ${run.entropy.toFixed(4)} nats/token: the loss a perfect model reaches`);
}

/**
 * `step 21 [22/200]  loss ...`: the step's index (from 0, as errors, flight records and the wire
 * number it) and, in brackets, how many of the run's steps are done.
 */
function printStep(m: StepMetrics, steps: number, entropy: number): void {
  const width = String(steps).length;
  console.log(
    `step ${String(m.step).padStart(width)} [${String(m.step + 1).padStart(width)}/${steps}]  loss ${m.loss.toFixed(6)}  entropy ${entropy.toFixed(4)}  aux ${m.auxLoss.toExponential(3)}  ${fmtDuration(m.stepMs)}`,
  );
}

function summaryJson(result: TrainingResult, model: ModelConfig, train: TrainConfig) {
  return {
    runId: result.runId,
    config: { model, train },
    settings: result.settings,
    workers: result.workers.map((w, rank) => ({ rank, workerId: w.workerId, address: w.address, backend: w.backend, pid: w.pid })),
    expertOwner: result.owner,
    placement: result.placement,
    finalPlacement: result.finalPlacement,
    sequenceRanges: result.ranges,
    entropy: result.entropy,
    trainMs: result.trainMs,
    steps: result.steps,
    parity: result.parity ?? null,
    reference: result.reference ?? null,
    finalExpertOwner: result.finalOwner,
    rebalances: result.rebalances,
  };
}

/** Trains (a local cluster, or external workers), prints every step and the parity; resolves with the exit code. */
export async function trainCommand(flags: TrainFlags): Promise<number> {
  // --resume: the model and the batch are the checkpoint's; --steps sets the total.
  const resume = flags.resume ? loadCheckpoint(flags.resume) : undefined;
  const loaded = resume
    ? { model: resume.model, train: { ...resume.train, steps: flags.steps ?? resume.train.steps } }
    : loadRunConfig(flags.config, { steps: flags.steps, seed: flags.seed });
  const train = loaded.train;
  const model = resume ? loaded.model : withRouting(loaded.model, flags);
  if (resume) console.log(`resuming run ${resume.runId} at step ${resume.step} (${resume.step} steps done) from ${flags.resume}`);
  const controller = new AbortController();
  const release = interruptOn(controller);
  const logLine = lineLog(log());
  try {
    const result = await runTraining({
      model,
      train,
      workers: flags.workers,
      step: {
        schedule: flags.schedule,
        chunks: flags.chunks,
        microBatches: flags.microBatches,
        dispatchCodec: flags.dispatchCodec,
        combineCodec: flags.combineCodec,
        recordTimeline: flags.timeline,
        allToAll: flags.allToAll,
        nodeSize: flags.nodeSize,
      },
      rebalance: flags.rebalanceEvery ? { every: flags.rebalanceEvery, decay: flags.rebalanceDecay } : undefined,
      redundantExperts: flags.redundantExperts,
      expertLoads: flags.expertLoads ? readExpertLoads(flags.expertLoads) : undefined,
      placement: flags.placement,
      external: flags.externalWorkers,
      scheduler: {
        ...schedulerSettingsOf(flags),
        log: (line, fields) => (flags.verbose || flags.externalWorkers || line.startsWith('scheduler listening') ? logLine(line, fields) : undefined),
      },
      backend: flags.backend,
      backendOptions:
        flags.backendOptions || flags.deviceProfile
          ? { ...flags.backendOptions, ...(flags.deviceProfile ? { profile: flags.deviceProfile } : {}) }
          : undefined,
      workerArgs: splitArgs(flags.workerArgs),
      echoWorkerOutput: flags.verbose,
      stepTimeoutMs: flags.stepTimeout,
      rpcTimeoutMs: flags.rpcTimeout,
      checkReference: flags.checkReference,
      checkpointDir: flags.checkpointDir ?? (flags.checkpointEvery ? flags.resume : undefined),
      checkpointEvery: flags.checkpointEvery ?? (flags.checkpointDir ? 10 : undefined),
      resume,
      tolerances: { loss: flags.lossTolerance, param: flags.paramTolerance },
      signal: controller.signal,
      log: logLine,
      onReady: (run) => printRun(run, model, train),
      onStep: (m, run) => printStep(m, train.steps, run.entropy),
    });
    const last = result.losses[result.losses.length - 1];
    console.log(
      result.steps.length === 0
        ? `trained no steps (${train.steps} asked${resume ? `, ${resume.step} done before` : ''}); final loss ${last?.toFixed(6) ?? '-'} vs entropy ${result.entropy.toFixed(4)}`
        : `trained ${result.steps.length} steps in ${fmtDuration(result.trainMs)} (median step ${fmtDuration(median(result.steps.map((s) => s.stepMs)))}); ` +
            `final loss ${last?.toFixed(6) ?? '-'} vs entropy ${result.entropy.toFixed(4)}`,
    );
    printComms(result, model, train, flags.deviceProfile ?? (flags.backendOptions?.['profile'] as string | undefined));
    if (flags.loadReport) console.log(`wrote ${writeLoadReport(flags.loadReport, result, model).join(', ')}`);
    if (flags.json) {
      writeFileSync(flags.json, JSON.stringify(summaryJson(result, model, train), null, 2));
      console.log(`wrote ${flags.json}`);
    }
    if (result.parity) {
      console.log(`parity with the single-process reference:\n  ${formatParity(result.parity).replace('\n', '\n  ')}`);
      if (!result.parity.ok) {
        logLine('moe: parity check failed: the distributed run differs from the reference by more than the tolerance', { level: 'error', runId: result.runId });
        return EXIT.parity;
      }
      console.log('parity check passed');
    }
    return EXIT.ok;
  } catch (error) {
    return reportError(controller.signal.aborted ? controller.signal.reason : error);
  } finally {
    release();
  }
}

/** Adds `train` to `program`; the action sets `process.exitCode`. */
export function addTrainCommand(program: Command, run: (flags: TrainFlags) => Promise<number> = trainCommand): void {
  const train = clusterOptions(
    program
      .command('train')
      .description('start a local cluster (or wait for external workers), train, print every step, optionally check parity')
      .option('-s, --steps <n>', 'training steps (default: the config\'s train.steps)', integer('--steps', 0, JOB_LIMITS.steps))
      .option('-c, --config <file>', 'JSON { "model": {...}, "train": {...} }; fields left out keep the tiny defaults')
      .addOption(new Option('--schedule <name>', 'step schedule').choices(SCHEDULE_NAMES).default(DEFAULT_STEP_SETTINGS.schedule))
      .option('--chunks <n>', "token chunks per layer, chunked schedules (default: the schedule's: overlapped 2, fb-overlap 1)", integer('--chunks', 1))
      .option('--micro-batches <n>', 'micro-batches each worker splits its sequences into; gradients accumulate, one update a step (default 1)', integer('--micro-batches', 1))
      .addOption(new Option('--dispatch-codec <codec>', 'wire format of dispatched tokens').choices(DISPATCH_CODECS).default(DEFAULT_STEP_SETTINGS.dispatchCodec))
      .addOption(new Option('--combine-codec <codec>', 'wire format of combined outputs').choices(COMBINE_CODECS).default(DEFAULT_STEP_SETTINGS.combineCodec))
      .option('--placement <rule|ranks>', 'expert placement: contiguous, round-robin, or an owner rank per expert (0,0,1,1,...)', placementArg, 'contiguous')
      .option('--check-reference', 'train the single-process reference on the same batches and compare (exit 3 beyond tolerance)', false)
      .option('--loss-tolerance <x>', 'max relative loss difference per step (default 1e-5; 5e-2 with a bf16 or fp8 codec)', nonNegativeNumber('--loss-tolerance'))
      .option('--param-tolerance <x>', 'max absolute parameter difference (default 1e-4; not checked with a bf16 or fp8 codec)', nonNegativeNumber('--param-tolerance'))
      .option('--seed <n>', 'seed of the initial parameters and of the data (overrides the config)', integer('--seed'))
      .option('--external-workers', 'start no workers: wait for --workers to register (moe worker --scheduler <host:port>)', false)
      .option('--step-timeout <ms>', 'deadline of each step', integer('--step-timeout', 1), DEFAULT_STEP_TIMEOUT_MS)
      .option('--rpc-timeout <ms>', 'deadline of LoadShard and FetchParams', integer('--rpc-timeout', 1), DEFAULT_RPC_TIMEOUT_MS)
      .option('--checkpoint-dir <dir>', 'save parameters and optimizer state to <dir>/checkpoint.moe (atomically) every --checkpoint-every steps')
      .option('--checkpoint-every <k>', 'steps between checkpoints (default 10 with --checkpoint-dir)', integer('--checkpoint-every', 1))
      .option('--resume <dir>', "continue the run checkpointed in <dir> (its model and batch; --steps sets the total)")
      .option('--timeline', 'ask the workers for their op timelines (kept in --json)', false)
      .option('--json <file>', 'write the run (config, per-step metrics, parity) as JSON')
      .option('--backend-options <json>', 'backend settings sent to every worker in LoadShard, e.g. \'{"dilation": 1000}\' for sim', jsonObject('--backend-options'))
      .option('--device-profile <name>', 'device profile of sim workers (H800, H100, H200, A100); sets "profile" in --backend-options'),
  );
  addCommsOptions(train).action(async (flags: TrainFlags) => {
    process.exitCode = await run(flags);
  });
}
