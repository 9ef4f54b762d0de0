/**
 * `moe serve`, `moe submit bench|train`, `moe runs`, `moe cancel`: flags, a progress bar and
 * printing over `RunService` and `RunQueue`. Every command reads REDIS_URL and MOE_QUEUE_PREFIX
 * (or --redis / --prefix); serve also reads the MOE_* variables its flags name.
 *
 * Exit codes: 0 done; 1 the run failed (or Redis is unreachable); 2 bad input (the run was not
 * submitted); 130 `--wait` stopped by Ctrl-C (the run goes on).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { COMBINE_CODECS, DISPATCH_CODECS, SCHEDULE_NAMES, type CombineCodecName, type DispatchCodecName } from '@moe/schedule';
import { integer, jsonObject, numberList, positiveNumber } from './flags';
import { DEFAULT_PREFIX, DEFAULT_REDIS_URL, queueLocationFromEnv, redactUrl, type QueueLocation } from '../queue/connection';
import { InvalidRunError, RedisUnavailableError, UnknownRunError } from '../queue/errors';
import { RunQueue, SUBMIT_DEFAULTS, type RunOutcome } from '../queue/run-queue';
import { RunService } from '../queue/run-service';
import { DEFAULT_HTTP_PORT, HttpServer } from '../http/index';
import { mountDashboard, type Dashboard } from '../dashboard/index';
import { fmtMs, formatRun, formatRuns, progressText, summaryLine } from '../queue/format-runs';
import { validateRunJob, type BenchJobData, type RunJobData, type TrainJobData } from '../queue/run-job';

type OnError = (error: unknown) => number;

/** Redis not answering is neither a run's failure nor bad input: say so plainly, exit 1. */
const withRedisHint = (onError: OnError): OnError => (error) => {
  if (error instanceof RedisUnavailableError) {
    console.error(`moe: ${error.message}`);
    return 1;
  }
  return onError(error);
};

/** An integer environment variable, or `fallback` when unset. */
function envInt(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidRunError(`environment variable ${name} must be a non-negative integer, got "${raw}"`, name);
  return n;
}

interface LocationFlags {
  redis?: string;
  prefix?: string;
}

function locationOf(flags: LocationFlags): QueueLocation {
  const env = queueLocationFromEnv();
  return { redisUrl: flags.redis ?? env.redisUrl, prefix: flags.prefix ?? env.prefix };
}

function locationOptions(command: Command): Command {
  return command
    .option('--redis <url>', `Redis of the queue (default: $REDIS_URL, else ${DEFAULT_REDIS_URL})`)
    .option('--prefix <prefix>', `key prefix of the queue (default: $MOE_QUEUE_PREFIX, else "${DEFAULT_PREFIX}")`);
}

// ---------------------------------------------------------------------------------------------
// serve

interface ServeFlags extends LocationFlags {
  host?: string;
  port?: number;
  httpHost?: string;
  httpPort?: number;
  reports?: string;
  rendezvousTimeout?: number;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
}

async function serveCommand(flags: ServeFlags, onError: OnError): Promise<number> {
  const log = (line: string) => console.error(line);
  let service: RunService | undefined;
  let http: HttpServer | undefined;
  let dashboard: Dashboard | undefined;
  let signalled: ((signal: NodeJS.Signals) => void) | undefined;
  const stopped = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let count = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++count > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    log(`serve: ${signal}: aborting the current run (it goes back to the queue), closing the queue (again to force)`);
    signalled!(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const stopAll = async (why: string) => {
    await http?.close();
    await dashboard?.close();
    await service?.stop(why);
  };
  try {
    const location = locationOf(flags);
    const reportsDir = resolve(flags.reports ?? process.env.MOE_REPORTS_DIR ?? 'reports');
    service = await RunService.start({
      ...location,
      host: flags.host ?? process.env.MOE_SCHEDULER_HOST ?? '127.0.0.1',
      port: flags.port ?? envInt('MOE_SCHEDULER_PORT', 7000),
      reportsDir,
      rendezvousTimeoutMs: flags.rendezvousTimeout ?? envInt('MOE_RENDEZVOUS_TIMEOUT_MS', 60_000),
      heartbeatIntervalMs: flags.heartbeatInterval ?? envInt('MOE_HEARTBEAT_INTERVAL_MS', 1_000),
      heartbeatTimeoutMs: flags.heartbeatTimeout ?? envInt('MOE_HEARTBEAT_TIMEOUT_MS', 10_000),
      log,
    });
    // The one HTTP server of serve: the dashboard, Bull Board and /healthz; other modules mount theirs on `http`.
    http = new HttpServer({ host: flags.httpHost ?? process.env.MOE_HTTP_HOST ?? '127.0.0.1', port: flags.httpPort ?? envInt('MOE_HTTP_PORT', DEFAULT_HTTP_PORT), log });
    dashboard = await mountDashboard(http, service, location, reportsDir);
    log(`serve: dashboard on ${await http.listen()}${http.tokenRequired ? ' (cluster token required: open it with ?token=<MOE_CLUSTER_TOKEN>)' : ''}`);
    const signal = await stopped;
    await stopAll(signal);
    return 0;
  } catch (error) {
    await stopAll('error');
    return onError(error);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

// ---------------------------------------------------------------------------------------------
// submit

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
  warmup?: number;
  steps?: number;
  profile?: string;
  hidden?: number;
  nodeSize?: number;
  commTarget?: number;
  transportSeconds?: number;
}

interface TrainSubmitFlags extends SubmitFlags {
  steps?: number;
  seed?: number;
  schedule?: string;
  chunks?: number;
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
      warmupSteps: flags.warmup,
      measuredSteps: flags.steps,
      profile: flags.profile,
      hiddenSize: flags.hidden,
      nodeSize: flags.nodeSize,
      commTargetMs: flags.commTarget,
      transportSeconds: flags.transportSeconds,
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

/** Follows `jobId` with a progress bar (stderr), prints the outcome; returns the exit code. */
async function followAndPrint(runs: RunQueue, jobId: string, flags: { json: boolean; progress: boolean }, events?: Awaited<ReturnType<RunQueue['events']>>): Promise<number> {
  const showBar = flags.progress && process.stderr.isTTY;
  const bar = new cliProgress.SingleBar(
    { format: `run ${jobId} [{bar}] {value}/{total} {unit} | {info}`, hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let lastLine = '';
  let lastAt = 0;
  const stopBar = () => {
    if (started) bar.stop();
    started = false;
  };
  const detach = new AbortController();
  const onSigint = () => detach.abort();
  process.once('SIGINT', onSigint);
  try {
    const outcome: RunOutcome = await runs.follow(
      jobId,
      {
        signal: detach.signal,
        onProgress: (p) => {
          const unit = `${p.unit}s`;
          if (showBar && p.total > 0) {
            if (!started) bar.start(p.total, p.done, { unit, info: progressText(p) });
            started = true;
            bar.setTotal(p.total);
            bar.update(p.done, { unit, info: progressText(p) });
          } else if (flags.progress) {
            const count = p.total ? `${p.unit} ${p.done}/${p.total}` : 'starting';
            const line = p.phase === 'waiting' ? progressText(p) : `${count}${progressText(p) ? `  ${progressText(p)}` : ''}`;
            // Without a terminal: a line per phase, then at most one a second, and the last.
            const due = p.phase !== 'running' || !lastLine || Date.now() - lastAt >= 1_000 || (p.total > 0 && p.done === p.total);
            if (line !== lastLine && due) {
              console.error(`run ${jobId}: ${line}`);
              lastLine = line;
              lastAt = Date.now();
            }
          }
        },
        onRetry: (reason, made) => {
          stopBar();
          console.error(`run ${jobId}: attempt ${made} failed: ${reason}; retrying after the backoff`);
        },
        onRequeued: () => {
          stopBar();
          console.error(`run ${jobId}: back in the queue (its service stopped); it resumes when a service runs`);
        },
      },
      events,
    );
    stopBar();
    if (outcome.state === 'detached') {
      console.error(`stopped following run ${jobId}; it goes on (moe runs ${jobId} --wait, or moe cancel ${jobId})`);
      return 130;
    }
    if (outcome.state === 'failed') {
      if (flags.json) console.log(JSON.stringify(outcome, null, 2));
      console.error(`moe: run ${jobId} failed after ${outcome.attemptsMade} attempt(s): ${outcome.reason}`);
      return 1;
    }
    if (flags.json) {
      console.log(JSON.stringify(outcome, null, 2));
    } else {
      const r = outcome.result;
      console.log(`run ${jobId} (${r.kind}) done on attempt ${r.attempt} in ${fmtMs(r.durationMs)} on ${r.workers.length} workers: ${summaryLine(r)}`);
      console.log(`report on the scheduler at ${r.report.dir}:`);
      for (const file of r.report.files) console.log(`  ${file}`);
    }
    return 0;
  } finally {
    stopBar();
    process.off('SIGINT', onSigint);
  }
}

async function submitCommand(data: RunJobData, flags: SubmitFlags, onError: OnError): Promise<number> {
  try {
    validateRunJob(data);
  } catch (error) {
    if (error instanceof InvalidRunError) {
      console.error(`moe: invalid input: ${error.message} (nothing was submitted)`);
      return 2;
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
      if (flags.json) console.log(JSON.stringify({ jobId: job.id, kind: data.kind, data }, null, 2));
      else console.log(`submitted run ${job.id} (${data.kind}) to ${where}; follow it: moe runs ${job.id} --wait`);
      return 0;
    }
    console.error(`submitted run ${job.id} (${data.kind}) to ${where}; following it (Ctrl-C stops following, not the run)`);
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

// ---------------------------------------------------------------------------------------------
// runs, cancel

interface RunsFlags extends LocationFlags {
  limit: number;
  json: boolean;
  wait: boolean;
  progress: boolean;
}

/**
 * Connects to the queue, runs `use`, and closes: an unknown run id exits 2, other errors go to
 * `onError`.
 */
async function withRunQueue(flags: LocationFlags, onError: OnError, use: (runs: RunQueue) => Promise<number>): Promise<number> {
  let runs: RunQueue | undefined;
  try {
    runs = await RunQueue.connect(locationOf(flags));
    return await use(runs);
  } catch (error) {
    if (error instanceof UnknownRunError) {
      console.error(`moe: ${error.message}`);
      return 2;
    }
    return onError(error);
  } finally {
    await runs?.close();
  }
}

function runsCommand(jobId: string | undefined, flags: RunsFlags, onError: OnError): Promise<number> {
  return withRunQueue(flags, onError, async (runs) => {
    if (jobId && flags.wait) return followAndPrint(runs, jobId, flags);
    if (jobId) {
      const row = await runs.get(jobId);
      console.log(flags.json ? JSON.stringify(row, null, 2) : formatRun(row));
    } else {
      const rows = await runs.list(flags.limit);
      console.log(flags.json ? JSON.stringify(rows, null, 2) : formatRuns(rows));
    }
    return 0;
  });
}

function cancelCommand(jobId: string, flags: LocationFlags, onError: OnError): Promise<number> {
  return withRunQueue(flags, onError, async (runs) => {
    const state = await runs.cancel(jobId);
    if (state === 'completed' || state === 'failed') console.log(`run ${jobId} already ${state}; nothing to cancel`);
    else if (state === 'active') console.log(`run ${jobId} is running: cancel sent; it stops now and fails as cancelled (no retry)`);
    else console.log(`run ${jobId} is ${state}: it fails as cancelled when a service picks it up (no retry)`);
    return 0;
  });
}

/** The action of `submit bench|train`: build the job from the flags and submit it; bad input exits 2. */
function submitAction<F extends SubmitFlags>(jobData: (flags: F) => RunJobData, onError: OnError) {
  return async (flags: F) => {
    try {
      process.exitCode = await submitCommand(jobData(flags), flags, onError);
    } catch (error) {
      console.error(`moe: invalid input: ${(error as Error).message}`);
      process.exitCode = 2;
    }
  };
}

/** Adds `serve`, `submit bench|train`, `runs` and `cancel` to `program`; each action sets `process.exitCode`. */
export function addQueueCommands(program: Command, reportError: OnError): void {
  const onError = withRedisHint(reportError);
  locationOptions(
    program
      .command('serve')
      .description(
        'run the scheduler as a service: workers register on their own (moe worker --scheduler HOST:PORT); runs come from the BullMQ queue "runs" (moe submit), one at a time; SIGTERM aborts the current run and puts it back in the queue',
      )
      .option('--host <host>', 'interface the Scheduler service binds (default: $MOE_SCHEDULER_HOST, else 127.0.0.1)')
      .option('--port <port>', 'its port (default: $MOE_SCHEDULER_PORT, else 7000)', integer('--port'))
      .option('--reports <dir>', 'reports go to <dir>/<job id>/ (default: $MOE_REPORTS_DIR, else ./reports)')
      .option('--rendezvous-timeout <ms>', 'how long a run waits for its workers (default: $MOE_RENDEZVOUS_TIMEOUT_MS, else 60000)', integer('--rendezvous-timeout', 1))
      .option('--heartbeat-interval <ms>', 'heartbeat interval told to workers (default: $MOE_HEARTBEAT_INTERVAL_MS, else 1000)', integer('--heartbeat-interval', 1))
      .option('--heartbeat-timeout <ms>', 'silence after which a worker is lost (default: $MOE_HEARTBEAT_TIMEOUT_MS, else 10000)', integer('--heartbeat-timeout', 1))
      .option('--http-host <host>', 'interface of the dashboard and /healthz (default: $MOE_HTTP_HOST, else 127.0.0.1)')
      .option('--http-port <port>', 'their port, 0 for any free one (default: $MOE_HTTP_PORT, else 8080)', integer('--http-port')),
  ).action(async (flags: ServeFlags) => {
    process.exitCode = await serveCommand(flags, onError);
  });

  const submit = program
    .command('submit')
    .description('put a run on the queue for `moe serve` (bench or train); --wait follows it and prints its result');

  submitOptions(
    submit
      .command('bench')
      .description('benchmark naive vs overlapped all-to-all on the registered sim workers (fields as moe bench)')
      .option('-c, --config <file>', 'JSON object of bench fields: workers, quick, ratios, chunks, warmupSteps, measuredSteps, profile, commTargetMs, hiddenSize, nodeSize, transportSeconds')
      .option('--quick', "start from moe bench --quick's settings", false)
      .option('--ratios <list>', 'compute-to-communication ratios', numberList('--ratios', false))
      .option('--chunks <list>', 'chunk counts of the overlapped schedule', numberList('--chunks', true))
      .option('--warmup <n>', 'warm-up steps per run', integer('--warmup'))
      .option('--steps <n>', 'measured steps per run', integer('--steps', 1))
      .option('--profile <name>', 'device profile: H800, H100, H200, A100')
      .option('--hidden <n>', 'modeled hidden size', integer('--hidden', 1))
      .option('--node-size <n>', 'workers per modeled node', integer('--node-size', 1))
      .option('--comm-target <ms>', 'all-to-all time of one naive step', positiveNumber('--comm-target'))
      .option('--transport-seconds <s>', 'seconds of each loopback measurement (0 skips)', (v) => (v === '0' ? 0 : positiveNumber('--transport-seconds')(v))),
  ).action(submitAction(benchJobData, onError));

  submitOptions(
    submit
      .command('train')
      .description('train on the registered workers (sim workers need --backend-options with profile and dilation)')
      .option('-c, --config <file>', 'JSON { "model": {...}, "train": {...} } as for moe train')
      .option('-s, --steps <n>', "training steps (default: the config's train.steps)", integer('--steps'))
      .option('--seed <n>', 'seed of the parameters and the data', integer('--seed'))
      .addOption(new Option('--schedule <name>', 'step schedule').choices(SCHEDULE_NAMES))
      .option('--chunks <n>', 'micro-batches per step, overlapped schedule', integer('--chunks', 1))
      .addOption(new Option('--dispatch-codec <codec>', 'wire format of dispatched tokens').choices(DISPATCH_CODECS))
      .addOption(new Option('--combine-codec <codec>', 'wire format of combined outputs').choices(COMBINE_CODECS))
      .option('--placement <rule|ranks>', 'contiguous, round-robin, or an owner rank per expert (0,0,1,1,...)')
      .option('--check-reference', 'compare with the single-process reference trainer (the run fails beyond tolerance)', false)
      .option('--backend-options <json>', 'sent to every worker in LoadShard, e.g. \'{"profile":"H800","dilation":1}\' for sim', jsonObject('--backend-options'))
      .option('--step-timeout <ms>', 'deadline of each step', integer('--step-timeout', 1)),
  ).action(submitAction(trainJobData, onError));

  locationOptions(
    program
      .command('runs')
      .description('list recent runs of the queue with their state and outcome; with an id, that run (--wait follows it)')
      .argument('[id]', 'a run (job) id')
      .option('-n, --limit <n>', 'how many runs', integer('--limit', 1), 20)
      .option('--json', 'as JSON', false)
      .option('--wait', 'with an id: follow the run until it ends', false)
      .option('--no-progress', 'with --wait: no progress bar'),
  ).action(async (id: string | undefined, flags: RunsFlags) => {
    process.exitCode = await runsCommand(id, flags, onError);
  });

  locationOptions(
    program
      .command('cancel')
      .description('cancel a run: a running one stops now, a queued one fails as cancelled when picked up; no retry')
      .argument('<id>', 'a run (job) id'),
  ).action(async (id: string, flags: LocationFlags) => {
    process.exitCode = await cancelCommand(id, flags, onError);
  });
}
