/**
 * `moe`: the command line. Thin: it parses flags, calls `LocalCluster` / `runTraining`, prints,
 * and maps errors to exit codes. Run through bin/moe.mjs (`npx moe ...`).
 *
 * Exit codes: 0 done; 1 the run failed (a worker exited or was lost, an RPC failed, replicas
 * diverged); 2 bad input (usage, config file, placement); 3 the parity check exceeded its
 * tolerance; 130 / 143 stopped by SIGINT / SIGTERM.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { integer, jsonObject, nonNegativeNumber } from './commands/flags';
import { ConfigError, type ModelConfig, type TrainConfig } from '@moe/model';
import { LocalCluster } from './control/local-cluster';
import { loadCheckpoint } from './run/checkpoint';
import { BatchSplitError, CheckpointError, ConfigFileError, InterruptedError, PlacementError } from './errors';
import { formatParity } from './run/parity';
import { parsePlacement, type Placement } from '@moe/placement';
import { loadRunConfig } from './run/run-config';
import { COMBINE_CODECS, DEFAULT_STEP_SETTINGS, describeStepSettings, ScheduleError, DISPATCH_CODECS, SCHEDULE_NAMES, type CombineCodecName, type DispatchCodecName } from '@moe/schedule';
import type { StepMetrics } from './run/step-driver';
import { runTraining, type RunInfo, type TrainingResult } from './run/train-run';
import { WORKER_MAIN } from './paths';
import { addBenchCommand } from './commands/bench';
import { addQueueCommands } from './queue/index';
import { registerConformanceCommand } from './conformance/index';

export const EXIT = { ok: 0, failed: 1, badInput: 2, parity: 3, sigint: 130, sigterm: 143 } as const;

const splitArgs = (text: string | undefined) => (text ? text.trim().split(/\s+/).filter(Boolean) : []);
const placementArg = (value: string): Placement => {
  try {
    return parsePlacement(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

interface ClusterFlags {
  workers: number;
  backend: string;
  workerArgs?: string;
  host: string;
  port: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  rendezvousTimeout: number;
  verbose: boolean;
  token?: string;
}

/** The scheduler's address, liveness and rendezvous settings, as the cluster flags give them. */
function schedulerSettingsOf(flags: ClusterFlags) {
  return {
    host: flags.host,
    port: flags.port,
    heartbeatIntervalMs: flags.heartbeatInterval,
    heartbeatTimeoutMs: flags.heartbeatTimeout,
    rendezvousTimeoutMs: flags.rendezvousTimeout,
    token: flags.token,
  };
}

interface TrainFlags extends ClusterFlags {
  steps?: number;
  config?: string;
  schedule: string;
  chunks?: number;
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

function clusterOptions(command: Command): Command {
  return command
    .option('-w, --workers <n>', 'worker processes', integer('--workers', 1), 4)
    .option('--backend <name>', 'compute backend of the workers', 'cpu')
    .option('--worker-args <flags>', 'more flags for every worker process, e.g. "--peer-timeout 60000"')
    .option('--host <host>', 'interface the scheduler and the workers bind', '127.0.0.1')
    .option('--port <port>', 'scheduler port (0: any free port)', integer('--port'), 0)
    .option('--heartbeat-interval <ms>', 'heartbeat interval told to workers', integer('--heartbeat-interval', 1), 1_000)
    .option('--heartbeat-timeout <ms>', 'silence after which a worker is lost', integer('--heartbeat-timeout', 1), 10_000)
    .option('--rendezvous-timeout <ms>', 'how long to wait for the workers to register', integer('--rendezvous-timeout', 1), 60_000)
    .option('-v, --verbose', "print the scheduler's log and every worker's output", false)
    .option('--token <token>', 'cluster token required from every worker and peer (default: MOE_CLUSTER_TOKEN; prefer the variable, flags show in ps)');
}

/** SIGINT/SIGTERM abort `controller`; a second signal exits at once (children are SIGKILLed on exit). */
function interruptOn(controller: AbortController): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);
    console.error(`\n${signal}: stopping the workers (again to force)`);
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

function exitCodeOf(error: unknown): number {
  if (error instanceof InterruptedError) return error.signal === 'SIGINT' ? EXIT.sigint : EXIT.sigterm;
  if (error instanceof ConfigError || error instanceof ConfigFileError || error instanceof CheckpointError || error instanceof PlacementError || error instanceof BatchSplitError || error instanceof ScheduleError) {
    return EXIT.badInput;
  }
  return EXIT.failed;
}

function reportError(error: unknown): number {
  const code = exitCodeOf(error);
  const e = error as Error;
  const label = code === EXIT.badInput ? 'invalid input' : code === EXIT.failed ? 'run failed' : 'stopped';
  console.error(`moe: ${label}: ${e?.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e?.message ?? String(error)}`);
  return code;
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

/** "0-2" or "0,3,6" or "-": the experts a rank owns. */
function expertList(owner: readonly number[], rank: number): string {
  const ids = owner.flatMap((r, e) => (r === rank ? [e] : []));
  if (ids.length === 0) return 'none';
  const contiguous = ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1);
  return contiguous && ids.length > 1 ? `${ids[0]}-${ids[ids.length - 1]}` : ids.join(',');
}

function printRun(run: RunInfo, model: ModelConfig, train: TrainConfig): void {
  run.workers.forEach((w, rank) => {
    const r = run.ranges[rank]!;
    console.log(
      `rank ${rank}: ${w.workerId} at ${w.address} (${w.backend || '?'}, pid ${w.pid})  experts ${expertList(run.owner, rank)}  sequences ${r.first}-${r.first + r.count - 1}`,
    );
  });
  const s = run.settings;
  console.log(
    `run ${run.runId}: ${model.layers} layers x ${model.routedExperts} experts (top-${model.topK}), batch ${train.batchSequences} x ${train.seqLen} tokens, ` +
      describeStepSettings(s),
  );
  console.log(`data entropy ${run.entropy.toFixed(4)} nats/token: the loss a perfect model reaches`);
}

function printStep(m: StepMetrics, steps: number, entropy: number): void {
  const width = String(steps).length;
  console.log(
    `step ${String(m.step + 1).padStart(width)}/${steps}  loss ${m.loss.toFixed(6)}  entropy ${entropy.toFixed(4)}  aux ${m.auxLoss.toExponential(3)}  ${fmtMs(m.stepMs)}`,
  );
}

function summaryJson(result: TrainingResult, model: ModelConfig, train: TrainConfig) {
  return {
    runId: result.runId,
    config: { model, train },
    settings: result.settings,
    workers: result.workers.map((w, rank) => ({ rank, workerId: w.workerId, address: w.address, backend: w.backend, pid: w.pid })),
    expertOwner: result.owner,
    sequenceRanges: result.ranges,
    entropy: result.entropy,
    trainMs: result.trainMs,
    steps: result.steps,
    parity: result.parity ?? null,
    reference: result.reference ?? null,
  };
}

async function trainCommand(flags: TrainFlags): Promise<number> {
  // --resume: the model and the batch are the checkpoint's; --steps sets the total.
  const resume = flags.resume ? loadCheckpoint(flags.resume) : undefined;
  const { model, train } = resume
    ? { model: resume.model, train: { ...resume.train, steps: flags.steps ?? resume.train.steps } }
    : loadRunConfig(flags.config, { steps: flags.steps, seed: flags.seed });
  if (resume) console.log(`resuming run ${resume.runId} after step ${resume.step} from ${flags.resume}`);
  const controller = new AbortController();
  const release = interruptOn(controller);
  try {
    const result = await runTraining({
      model,
      train,
      workers: flags.workers,
      step: {
        schedule: flags.schedule,
        chunks: flags.chunks,
        dispatchCodec: flags.dispatchCodec,
        combineCodec: flags.combineCodec,
        recordTimeline: flags.timeline,
      },
      placement: flags.placement,
      external: flags.externalWorkers,
      scheduler: {
        ...schedulerSettingsOf(flags),
        log: (line) => (flags.verbose || flags.externalWorkers || line.startsWith('scheduler listening') ? console.error(line) : undefined),
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
      log: (line) => console.error(line),
      onReady: (run) => printRun(run, model, train),
      onStep: (m, run) => printStep(m, train.steps, run.entropy),
    });
    const last = result.losses[result.losses.length - 1];
    console.log(
      `trained ${result.steps.length} steps in ${fmtMs(result.trainMs)} (median step ${fmtMs(median(result.steps.map((s) => s.stepMs)))}); ` +
        `final loss ${last?.toFixed(6) ?? '-'} vs entropy ${result.entropy.toFixed(4)}`,
    );
    if (flags.json) {
      writeFileSync(flags.json, JSON.stringify(summaryJson(result, model, train), null, 2));
      console.log(`wrote ${flags.json}`);
    }
    if (result.parity) {
      console.log(`parity with the single-process reference:\n  ${formatParity(result.parity).replace('\n', '\n  ')}`);
      if (!result.parity.ok) {
        console.error('moe: parity check failed: the distributed run differs from the reference by more than the tolerance');
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

async function clusterCommand(flags: ClusterFlags): Promise<number> {
  const controller = new AbortController();
  const release = interruptOn(controller);
  const log = (line: string) => console.error(line);
  let cluster: LocalCluster | undefined;
  try {
    cluster = await LocalCluster.start({
      workers: flags.workers,
      backend: flags.backend,
      workerArgs: splitArgs(flags.workerArgs),
      ...schedulerSettingsOf(flags),
      echoWorkerOutput: flags.verbose,
      log: flags.verbose ? log : undefined,
      abort: controller.signal,
    });
    console.log(`scheduler listening on ${cluster.scheduler.address}`);
    for (const line of cluster.describe()) console.log(line);
    console.log(`${flags.workers} workers up; Ctrl-C stops them all`);
    const running = cluster;
    const error = await new Promise<Error>((resolve) => {
      running.onFailure(resolve);
      controller.signal.addEventListener('abort', () => resolve(controller.signal.reason as Error), { once: true });
    });
    throw error;
  } catch (error) {
    return reportError(controller.signal.aborted ? controller.signal.reason : error);
  } finally {
    await cluster?.stop();
    release();
  }
}

/** `moe worker ...`: this process becomes one worker (apps/worker/src/main.ts, same flags). */
async function workerCommand(args: readonly string[]): Promise<undefined> {
  process.argv = [process.argv[0]!, WORKER_MAIN, ...args];
  await import(pathToFileURL(WORKER_MAIN).href);
  return undefined;
}

export function buildProgram(run: { train: (f: TrainFlags) => Promise<number>; cluster: (f: ClusterFlags) => Promise<number> }): Command {
  const program = new Command('moe')
    .description('expert-parallel Mixture-of-Experts training: a scheduler and worker processes over gRPC')
    .exitOverride()
    .showHelpAfterError('(moe <command> --help for usage)');

  clusterOptions(
    program
      .command('train')
      .description('start a local cluster (or wait for external workers), train, print every step, optionally check parity')
      .option('-s, --steps <n>', 'training steps (default: the config\'s train.steps)', integer('--steps', 0))
      .option('-c, --config <file>', 'JSON { "model": {...}, "train": {...} }; fields left out keep the tiny defaults')
      .addOption(new Option('--schedule <name>', 'step schedule').choices(SCHEDULE_NAMES).default(DEFAULT_STEP_SETTINGS.schedule))
      .option('--chunks <n>', 'micro-batches per step, overlapped schedule (default 2)', integer('--chunks', 1))
      .addOption(new Option('--dispatch-codec <codec>', 'wire format of dispatched tokens').choices(DISPATCH_CODECS).default('f32'))
      .addOption(new Option('--combine-codec <codec>', 'wire format of combined outputs').choices(COMBINE_CODECS).default('f32'))
      .option('--placement <rule|ranks>', 'expert placement: contiguous, round-robin, or an owner rank per expert (0,0,1,1,...)', placementArg, 'contiguous')
      .option('--check-reference', 'train the single-process reference on the same batches and compare (exit 3 beyond tolerance)', false)
      .option('--loss-tolerance <x>', 'max relative loss difference per step (default 1e-5; 5e-2 with a bf16 or fp8 codec)', nonNegativeNumber('--loss-tolerance'))
      .option('--param-tolerance <x>', 'max absolute parameter difference (default 1e-4; not checked with a bf16 or fp8 codec)', nonNegativeNumber('--param-tolerance'))
      .option('--seed <n>', 'seed of the initial parameters and of the data (overrides the config)', integer('--seed'))
      .option('--external-workers', 'start no workers: wait for --workers to register (moe worker --scheduler <host:port>)', false)
      .option('--step-timeout <ms>', 'deadline of each step', integer('--step-timeout', 1), 60_000)
      .option('--rpc-timeout <ms>', 'deadline of LoadShard and FetchParams', integer('--rpc-timeout', 1), 60_000)
      .option('--checkpoint-dir <dir>', 'save parameters and optimizer state to <dir>/checkpoint.moe (atomically) every --checkpoint-every steps')
      .option('--checkpoint-every <k>', 'steps between checkpoints (default 10 with --checkpoint-dir)', integer('--checkpoint-every', 1))
      .option('--resume <dir>', "continue the run checkpointed in <dir> (its model and batch; --steps sets the total)")
      .option('--timeline', 'ask the workers for their op timelines (kept in --json)', false)
      .option('--json <file>', 'write the run (config, per-step metrics, parity) as JSON')
      .option('--backend-options <json>', 'backend settings sent to every worker in LoadShard, e.g. \'{"dilation": 1000}\' for sim', jsonObject('--backend-options'))
      .option('--device-profile <name>', 'device profile of sim workers (H800, H100, H200, A100); sets "profile" in --backend-options'),
  ).action(async (flags: TrainFlags) => {
    process.exitCode = await run.train(flags);
  });

  clusterOptions(
    program
      .command('cluster')
      .description('start the scheduler and N worker processes on this machine; print their addresses; stop them all on Ctrl-C'),
  ).action(async (flags: ClusterFlags) => {
    process.exitCode = await run.cluster(flags);
  });

  addBenchCommand(program, reportError);
  addQueueCommands(program, reportError);
  registerConformanceCommand(program);

  program
    .command('worker')
    .description('run one worker in the foreground (flags as apps/worker: --scheduler <host:port> [--host] [--port] [--backend] [--worker-id] ...)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments();

  return program;
}

/**
 * Runs the command line `argv` (without node and the script). Resolves with the exit code, or
 * undefined when this process went on to be a worker (and must not exit).
 */
export async function main(argv: readonly string[]): Promise<number | undefined> {
  if (argv[0] === 'worker') return workerCommand(argv.slice(1));
  const program = buildProgram({ train: trainCommand, cluster: clusterCommand });
  process.exitCode = undefined;
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.ok : EXIT.badInput; // help asked for: 0; usage error or help for a missing command: 2
    }
    return reportError(error);
  }
  const code = process.exitCode;
  return typeof code === 'number' ? code : EXIT.ok;
}
