/**
 * `moe submit bench|train`: puts a run on the queue for `moe serve`; --wait follows it. Bad
 * input exits 2 and submits nothing; Ctrl-C while following exits 130 (the run goes on).
 */
import { lineLog, log } from '@moe/log';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { COMBINE_CODECS, DISPATCH_CODECS, SCHEDULE_NAMES, type CombineCodecName, type DispatchCodecName } from '@moe/schedule';
import { integer, jsonObject, numberList, positiveNumber } from './flags';
import { EXIT, type OnError } from './exit';
import { locationOf, locationOptions, withRedisHint, type LocationFlags } from './queue-options';
import { redactUrl } from '../queue/connection';
import { InvalidRunError } from '../queue/errors';
import { followAndPrint } from '../queue/follow';
import { RunQueue, SUBMIT_DEFAULTS } from '../queue/run-queue';
import { validateRunJob, type BenchJobData, type RunJobData, type TrainJobData } from '../queue/run-job';

interface SubmitFlags extends LocationFlags {
  workers?: number;
  config?: string;
  attempts: number;
  backoff: number;
  rendezvousTimeout?: number;
  wait: boolean;
  json: boolean;
  progress: boolean;
}

interface BenchSubmitFlags extends SubmitFlags {
  quick: boolean;
  ratios?: number[];
  chunks?: number[];
  fbChunks?: number[];
  microBatches?: number;
  warmup?: number;
  steps?: number;
  profile?: string;
  hidden?: number;
  nodeSize?: number;
  commTarget?: number;
  transportSeconds?: number;
  redundantExperts?: number;
}

interface TrainSubmitFlags extends SubmitFlags {
  steps?: number;
  seed?: number;
  schedule?: string;
  chunks?: number;
  microBatches?: number;
  dispatchCodec?: DispatchCodecName;
  combineCodec?: CombineCodecName;
  placement?: string;
  checkReference: boolean;
  backendOptions?: Record<string, unknown>;
  stepTimeout?: number;
}

function readJsonFile(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InvalidRunError(`cannot read config file ${path}: ${(error as Error).message}`, 'config');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidRunError(`config file ${path} must hold a JSON object`, 'config');
  return parsed as Record<string, unknown>;
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Job data of `moe submit bench`: the config file's fields (bench job fields), then the flags. */
export function benchJobData(flags: Partial<BenchSubmitFlags>): BenchJobData {
  const file = flags.config ? readJsonFile(flags.config) : {};
  return {
    ...file,
    kind: 'bench',
    ...defined({
      workers: flags.workers,
      quick: flags.quick || undefined,
      ratios: flags.ratios,
      chunks: flags.chunks,
      fbChunks: flags.fbChunks,
      microBatches: flags.microBatches,
      warmupSteps: flags.warmup,
      measuredSteps: flags.steps,
      profile: flags.profile,
      hiddenSize: flags.hidden,
      nodeSize: flags.nodeSize,
      commTargetMs: flags.commTarget,
      transportSeconds: flags.transportSeconds,
      redundantExperts: flags.redundantExperts,
      rendezvousTimeoutMs: flags.rendezvousTimeout,
    }),
  } as BenchJobData;
}

/** Job data of `moe submit train`: the config file is `{ "model", "train" }` as for `moe train`; then the flags. */
export function trainJobData(flags: Partial<TrainSubmitFlags>): TrainJobData {
  const placement = flags.placement?.trim();
  return {
    kind: 'train',
    ...defined({
      config: flags.config ? readJsonFile(flags.config) : undefined,
      workers: flags.workers,
      steps: flags.steps,
      seed: flags.seed,
      schedule: flags.schedule,
      chunks: flags.chunks,
      microBatches: flags.microBatches,
      dispatchCodec: flags.dispatchCodec,
      combineCodec: flags.combineCodec,
      placement: placement === undefined ? undefined : /^[\d,\s]+$/.test(placement) ? placement.split(',').map(Number) : placement,
      checkReference: flags.checkReference || undefined,
      backendOptions: flags.backendOptions,
      stepTimeoutMs: flags.stepTimeout,
      rendezvousTimeoutMs: flags.rendezvousTimeout,
    }),
  } as TrainJobData;
}

async function submitCommand(data: RunJobData, flags: SubmitFlags, onError: OnError): Promise<number> {
  try {
    validateRunJob(data);
  } catch (error) {
    if (error instanceof InvalidRunError) {
      lineLog(log())(`moe: invalid input: ${error.message} (nothing was submitted)`, { level: 'error', err: error });
      return EXIT.badInput;
    }
    throw error;
  }
  let runs: RunQueue | undefined;
  let events: Awaited<ReturnType<RunQueue['events']>> | undefined;
  try {
    runs = await RunQueue.connect(locationOf(flags));
    events = flags.wait ? await runs.events() : undefined;
    const job = await runs.submit(data, { attempts: flags.attempts, backoffMs: flags.backoff });
    const where = `queue "runs" at ${redactUrl(runs.location.redisUrl)}`;
    if (!flags.wait) {
      const runId = (job.data as { runId?: string }).runId;
      if (flags.json) console.log(JSON.stringify({ jobId: job.id, runId, kind: data.kind, data: job.data }, null, 2));
      else console.log(`submitted run ${runId} (job ${job.id}, ${data.kind}) to ${where}; follow it: moe runs ${job.id} --wait`);
      return EXIT.ok;
    }
    const runId = (job.data as { runId?: string }).runId;
    log().info({ jobId: job.id, runId }, `submitted run ${runId} (job ${job.id}, ${data.kind}) to ${where}; following it (Ctrl-C stops following, not the run)`);
    return await followAndPrint(runs, job.id!, flags, events);
  } catch (error) {
    return onError(error);
  } finally {
    await events?.close();
    await runs?.close();
  }
}

function submitOptions(command: Command): Command {
  return locationOptions(
    command
      .option('-w, --workers <n>', 'workers the run takes from those registered (default 4)', integer('--workers', 1))
      .option('--attempts <n>', 'attempts in all; an infrastructure failure (a worker lost) is retried', integer('--attempts', 1), SUBMIT_DEFAULTS.attempts)
      .option('--backoff <ms>', 'delay before the first retry, doubled for each next one', integer('--backoff', 0), SUBMIT_DEFAULTS.backoffMs)
      .option('--rendezvous-timeout <ms>', "how long the run waits for its workers (default: the service's)", integer('--rendezvous-timeout', 1))
      .option('--wait', 'follow the run with a progress bar until it ends, then print its result', false)
      .option('--json', 'print the submitted job (or with --wait, the outcome) as JSON on stdout', false)
      .option('--no-progress', 'with --wait: no progress bar or progress lines'),
  );
}

/** The action of `submit bench|train`: build the job from the flags and submit it; bad input exits 2. */
function submitAction<F extends SubmitFlags>(jobData: (flags: F) => RunJobData, onError: OnError) {
  return async (flags: F) => {
    try {
      process.exitCode = await submitCommand(jobData(flags), flags, onError);
    } catch (error) {
      lineLog(log())(`moe: invalid input: ${(error as Error).message}`, { level: 'error', err: error });
      process.exitCode = EXIT.badInput;
    }
  };
}

/** Adds `submit bench` and `submit train` to `program`; each action sets `process.exitCode`. */
export function addSubmitCommand(program: Command, reportError: OnError): void {
  const onError = withRedisHint(reportError);
  const submit = program
    .command('submit')
    .description('put a run on the queue for `moe serve` (bench or train); --wait follows it and prints its result');

  submitOptions(
    submit
      .command('bench')
      .description('benchmark naive, overlapped and fb-overlap all-to-all on the registered sim workers (fields as moe bench)')
      .option('-c, --config <file>', 'JSON object of bench fields: workers, quick, ratios, chunks, warmupSteps, measuredSteps, profile, commTargetMs, hiddenSize, nodeSize, transportSeconds, redundantExperts')
      .option('--quick', "start from moe bench --quick's settings", false)
      .option('--ratios <list>', 'compute-to-communication ratios', numberList('--ratios', false))
      .option('--chunks <list>', 'chunk counts of the overlapped schedule', numberList('--chunks', true))
      .option('--fb-chunks <list>', 'chunk counts of the fb-overlap schedule', numberList('--fb-chunks', true))
      .option('--micro-batches <n>', 'micro-batches per step, every schedule', integer('--micro-batches', 1))
      .option('--warmup <n>', 'warm-up steps per run', integer('--warmup'))
      .option('--steps <n>', 'measured steps per run', integer('--steps', 1))
      .option('--profile <name>', 'device profile: H800, H100, H200, A100')
      .option('--hidden <n>', 'modeled hidden size', integer('--hidden', 1))
      .option('--node-size <n>', 'workers per modeled node', integer('--node-size', 1))
      .option('--comm-target <ms>', 'all-to-all time of one naive step', positiveNumber('--comm-target'))
      .option('--transport-seconds <s>', 'seconds of each loopback measurement (0 skips)', (v) => (v === '0' ? 0 : positiveNumber('--transport-seconds')(v)))
      .option('--redundant-experts <n>', 'redundant experts of the skewed-routing comparison (0 skips it)', integer('--redundant-experts', 0)),
  ).action(submitAction(benchJobData, onError));

  submitOptions(
    submit
      .command('train')
      .description('train on the registered workers (sim workers need --backend-options with profile and dilation)')
      .option('-c, --config <file>', 'JSON { "model": {...}, "train": {...} } as for moe train')
      .option('-s, --steps <n>', "training steps (default: the config's train.steps)", integer('--steps'))
      .option('--seed <n>', 'seed of the parameters and the data', integer('--seed'))
      .addOption(new Option('--schedule <name>', 'step schedule').choices(SCHEDULE_NAMES))
      .option('--chunks <n>', 'token chunks per layer, chunked schedules', integer('--chunks', 1))
      .option('--micro-batches <n>', 'micro-batches each worker splits its sequences into (default 1)', integer('--micro-batches', 1))
      .addOption(new Option('--dispatch-codec <codec>', 'wire format of dispatched tokens').choices(DISPATCH_CODECS))
      .addOption(new Option('--combine-codec <codec>', 'wire format of combined outputs').choices(COMBINE_CODECS))
      .option('--placement <rule|ranks>', 'contiguous, round-robin, or an owner rank per expert (0,0,1,1,...)')
      .option('--check-reference', 'compare with the single-process reference trainer (the run fails beyond tolerance)', false)
      .option('--backend-options <json>', 'sent to every worker in LoadShard, e.g. \'{"profile":"H800","dilation":1}\' for sim', jsonObject('--backend-options'))
      .option('--step-timeout <ms>', 'deadline of each step', integer('--step-timeout', 1)),
  ).action(submitAction(trainJobData, onError));
}
