/**
 * A job on the `runs` queue: its data (what to run), its progress (where it is) and its result
 * (what came of it). The data is validated in full before anything starts: `validateRunJob`
 * returns a run ready to execute or throws an `InvalidRunError` that names the field.
 *
 * Job data, one of (fields left out take the defaults of `moe bench` / `moe train`):
 *
 * ```json
 * { "kind": "bench", "workers": 4, "quick": true, "ratios": [0.5, 1, 2], "chunks": [2, 4], "profile": "H800" }
 * { "kind": "train", "workers": 4, "steps": 20, "schedule": "overlapped", "chunks": 2,
 *   "config": { "model": { "routedExperts": 8 }, "train": { "batchSequences": 8 } },
 *   "backendOptions": { "profile": "H800", "dilation": 1 } }
 * ```
 */
import { ConfigError, type ModelConfig, type TrainConfig } from '@moe/model';
import { z } from 'zod';
import { splitSequences } from '@moe/placement';
import { BENCH_DEFAULTS, BENCH_QUICK, type BenchOptions } from '../run/run-bench';
import { defaultRedundantExperts, redundantExpertsProblem } from '../run/bench-load';
import { BatchSplitError, ConfigFileError, PlacementError } from '../errors';
import type { ParityReport } from '@moe/model';
import { planExperts, PLACEMENT_RULES, type Placement } from '@moe/placement';
import type { ReportSummary } from '@moe/report';
import { resolveRunConfig } from '../run/run-config';
import { COMBINE_CODECS, DISPATCH_CODECS, MAX_MICRO_BATCHES, resolveStepSettings, SCHEDULE_NAMES, StepSettingsError, type StepSettings } from '@moe/schedule';
import { InvalidRunError } from './errors';
import { RUN_ID_PATTERN } from '../run/run-id';

export type RunKind = 'bench' | 'train';
export const RUN_KINDS: readonly RunKind[] = ['bench', 'train'];

/**
 * Every count has an upper bound: a typo (`workers: 40000`, `steps: 1e12`) is refused naming the
 * field, not discovered as a run that never ends or a host that runs out of memory.
 */
export const JOB_LIMITS = {
  workers: 1_024,
  steps: 10_000_000,
  chunks: 256,
  listEntries: 32,
  ms: 24 * 3600 * 1000,
  hiddenSize: 65_536,
  transportSeconds: 600,
  redundantExperts: 1_024,
} as const;

const count = (max: number) => z.int().positive().max(max);
const ms = z.int().positive().max(JOB_LIMITS.ms);
/**
 * The run's id (`newRunId`): `RunQueue.submit` sets it; a job added without one gets one from
 * the service on its first attempt. Reports, checkpoints and progress live under it.
 */
const runId = z.string().regex(RUN_ID_PATTERN, 'a run id is run-YYYYMMDD-HHMMSS-<12 hex digits> (leave it out: one is assigned)');

/** `kind: "bench"`: a benchmark on the registered `sim` workers (see `moe bench --help`). */
export const benchJobSchema = z.strictObject({
  kind: z.literal('bench'),
  runId: runId.optional(),
  /** Workers the run takes (the first registered). */
  workers: count(JOB_LIMITS.workers).optional(),
  /** Start from `moe bench --quick`'s settings. */
  quick: z.boolean().optional(),
  ratios: z.array(z.number().positive().max(1_000)).min(1).max(JOB_LIMITS.listEntries).optional(),
  chunks: z.array(count(JOB_LIMITS.chunks)).min(1).max(JOB_LIMITS.listEntries).optional(),
  /** Chunk counts of the fb-overlap schedule. */
  fbChunks: z.array(count(JOB_LIMITS.chunks)).min(1).max(JOB_LIMITS.listEntries).optional(),
  /** Micro-batches per step, every schedule alike. */
  microBatches: z.int().min(1).max(MAX_MICRO_BATCHES).optional(),
  warmupSteps: z.int().nonnegative().max(JOB_LIMITS.steps).optional(),
  measuredSteps: count(JOB_LIMITS.steps).optional(),
  dispatchCodec: z.enum(['f32', 'bf16', 'fp8']).optional(),
  combineCodec: z.enum(['f32', 'bf16']).optional(),
  profile: z.string().min(1).optional(),
  commTargetMs: z.number().positive().max(JOB_LIMITS.ms).optional(),
  hiddenSize: count(JOB_LIMITS.hiddenSize).optional(),
  nodeSize: count(JOB_LIMITS.workers).optional(),
  transportSeconds: z.number().nonnegative().max(JOB_LIMITS.transportSeconds).optional(),
  /** Copies in the skewed-routing comparison (`moe bench --redundant-experts`); 0 skips it. */
  redundantExperts: z.int().nonnegative().max(JOB_LIMITS.redundantExperts).optional(),
  /** How long to wait for the workers to register. Default: the service's. */
  rendezvousTimeoutMs: ms.optional(),
});

/** `kind: "train"`: distributed training on the registered workers (see `moe train --help`). */
export const trainJobSchema = z.strictObject({
  kind: z.literal('train'),
  runId: runId.optional(),
  workers: count(JOB_LIMITS.workers).optional(),
  /** `{ "model": {...}, "train": {...} }`, as `moe train --config` reads; left-out fields keep the tiny defaults. */
  config: z.record(z.string(), z.unknown()).optional(),
  steps: z.int().nonnegative().max(JOB_LIMITS.steps).optional(),
  seed: z.int().nonnegative().optional(),
  schedule: z.enum(SCHEDULE_NAMES as [string, ...string[]]).optional(),
  chunks: count(JOB_LIMITS.chunks).optional(),
  microBatches: z.int().min(1).max(MAX_MICRO_BATCHES).optional(),
  dispatchCodec: z.enum(DISPATCH_CODECS).optional(),
  combineCodec: z.enum(COMBINE_CODECS).optional(),
  placement: z.union([z.enum(PLACEMENT_RULES), z.array(z.int().nonnegative())]).optional(),
  checkReference: z.boolean().optional(),
  tolerances: z.strictObject({ loss: z.number().nonnegative().optional(), param: z.number().nonnegative().optional() }).optional(),
  /** Sent to every worker in LoadShard (sim workers need `profile` and `dilation`). */
  backendOptions: z.record(z.string(), z.unknown()).optional(),
  stepTimeoutMs: ms.optional(),
  rpcTimeoutMs: ms.optional(),
  rendezvousTimeoutMs: ms.optional(),
});

export const runJobSchema = z.discriminatedUnion('kind', [benchJobSchema, trainJobSchema]);

/** What a client puts on the queue (the job's name is its `kind`). */
export type RunJobData = z.input<typeof runJobSchema>;
export type BenchJobData = z.input<typeof benchJobSchema>;
export type TrainJobData = z.input<typeof trainJobSchema>;

/** Settings of a benchmark run, ready for `runBench` (less what the service adds). */
export type BenchSettings = Omit<BenchOptions, 'out' | 'command' | 'signal' | 'log' | 'onProgress' | 'onStep' | 'cluster'>;

export type ValidRun =
  | { kind: 'bench'; runId?: string; workers: number; rendezvousTimeoutMs?: number; bench: BenchSettings }
  | {
      kind: 'train';
      runId?: string;
      workers: number;
      rendezvousTimeoutMs?: number;
      model: ModelConfig;
      train: TrainConfig;
      step: StepSettings;
      placement: Placement;
      checkReference: boolean;
      tolerances?: { loss?: number; param?: number };
      backendOptions?: Record<string, unknown>;
      stepTimeoutMs?: number;
      rpcTimeoutMs?: number;
    };

/** The value at `path` in `input`, for messages. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}

const show = (value: unknown) => {
  const text = JSON.stringify(value);
  return text === undefined ? 'nothing' : text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/**
 * Checks job data in full: its shape, then what the shape cannot say (the model config, the
 * expert placement and the batch split against the worker count, whole nodes for a bench).
 *
 * `name`, when given, is the job's name, which must be its kind (a job named "nonsense" is not
 * run as a training).
 *
 * @throws InvalidRunError naming the field and the rule, e.g.
 *   `workers: Too small: expected number to be >0 (got 0)` or `config: ConfigError: model.topK=9 ...`
 */
export function validateRunJob(data: unknown, name?: string): ValidRun {
  const parsed = runJobSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.');
    const got = issue.code === 'unrecognized_keys' ? '' : ` (got ${show(valueAt(data, issue.path))})`;
    const more = parsed.error.issues.length > 1 ? `; and ${parsed.error.issues.length - 1} more problem(s)` : '';
    throw new InvalidRunError(`invalid run: ${field || 'job data'}: ${issue.message}${got}${more}`, field);
  }
  const job = parsed.data;
  if (name !== undefined && name !== job.kind) {
    throw new InvalidRunError(`invalid run: name: the job is named "${name}" but its data.kind is "${job.kind}" (a run's job is named after its kind)`, 'name');
  }
  if (job.kind === 'bench') return validateBench(job);

  const workers = job.workers ?? 4;
  let model: ModelConfig;
  let train: TrainConfig;
  try {
    ({ model, train } = resolveRunConfig(job.config ?? {}, { steps: job.steps, seed: job.seed }, 'config'));
  } catch (error) {
    if (error instanceof ConfigError) throw new InvalidRunError(`invalid run: config: ${error.message}`, `config.${error.field}`);
    if (error instanceof ConfigFileError) throw new InvalidRunError(`invalid run: ${error.message}`, 'config');
    throw error;
  }
  const placement: Placement = job.placement ?? 'contiguous';
  try {
    planExperts(model.routedExperts, workers, placement);
  } catch (error) {
    if (error instanceof PlacementError) throw new InvalidRunError(`invalid run: placement: ${error.message}`, 'placement');
    throw error;
  }
  try {
    splitSequences(train.batchSequences, workers);
  } catch (error) {
    if (error instanceof BatchSplitError) throw new InvalidRunError(`invalid run: workers: ${error.message}`, 'workers');
    throw error;
  }
  let step: StepSettings;
  try {
    step = resolveStepSettings({ schedule: job.schedule, chunks: job.chunks, microBatches: job.microBatches, dispatchCodec: job.dispatchCodec, combineCodec: job.combineCodec });
  } catch (error) {
    if (error instanceof StepSettingsError) throw new InvalidRunError(`invalid run: ${error.field}: ${error.message}`, error.field);
    throw error;
  }
  return {
    kind: 'train',
    runId: job.runId,
    workers,
    rendezvousTimeoutMs: job.rendezvousTimeoutMs,
    model,
    train,
    step,
    placement,
    checkReference: job.checkReference ?? false,
    tolerances: job.tolerances,
    backendOptions: job.backendOptions,
    stepTimeoutMs: job.stepTimeoutMs,
    rpcTimeoutMs: job.rpcTimeoutMs,
  };
}

function validateBench(job: z.output<typeof benchJobSchema>): ValidRun {
  const preset: BenchSettings = { ...BENCH_DEFAULTS, ...(job.quick ? BENCH_QUICK : {}) };
  const { kind: _kind, quick: _quick, rendezvousTimeoutMs, runId, ...fields } = job;
  const defined = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<BenchSettings>;
  const bench: BenchSettings = { ...preset, ...defined };
  bench.redundantExperts = defined.redundantExperts ?? defaultRedundantExperts(bench.workers);
  if (bench.workers % bench.nodeSize !== 0 && bench.workers > bench.nodeSize) {
    throw new InvalidRunError(
      `invalid run: nodeSize: ${bench.workers} workers are not a whole number of nodes of ${bench.nodeSize} (use a nodeSize that divides workers)`,
      'nodeSize',
    );
  }
  const copies = redundantExpertsProblem(bench.workers, bench.redundantExperts);
  if (copies) throw new InvalidRunError(`invalid run: redundantExperts: ${copies}`, 'redundantExperts');
  return { kind: 'bench', runId, workers: bench.workers, rendezvousTimeoutMs, bench };
}

/** What `job.progress` holds while a run goes on (and after it ended: its last value). */
export interface RunProgress {
  kind: RunKind;
  /** The run's id (reports and checkpoints are under it). */
  runId?: string;
  /** waiting: for the workers; running: steps or benchmark runs going; done: the report is written. */
  phase: 'waiting' | 'running' | 'done';
  /** 1-based attempt of the job this progress belongs to. */
  attempt: number;
  /** What `done` and `total` count: training steps (train) or benchmark runs (bench). */
  unit: 'step' | 'run';
  done: number;
  total: number;
  /** Duration of the latest step, ms. */
  stepMs?: number;
  /** Loss of the latest training step. */
  loss?: number;
  /** What ran last (bench: "ratio 1: overlapped C2"). */
  label?: string;
  /** Worker ids of the run, index = rank, once gathered. */
  workers?: string[];
}

export interface BenchRunSummary extends Omit<ReportSummary, 'settings'> {
  dilation: number;
  natural_ratio: number;
  settings: ReportSummary['settings'];
}

export interface TrainRunSummary {
  steps: number;
  /** Loss of the last step; the data's entropy is the floor. */
  final_loss: number | null;
  entropy: number;
  train_ms: number;
  median_step_ms: number | null;
  parity: Pick<ParityReport, 'ok' | 'lossTolerance' | 'paramTolerance'> & { max_loss_relative: number; max_param_absolute: number } | null;
}

/** What a finished job's `returnvalue` holds. */
export interface RunResult {
  kind: RunKind;
  jobId: string;
  /** 1-based attempt that completed. */
  attempt: number;
  /** The run's id, unique for all time; the report folder is named after it. */
  runId: string;
  /** The run's workers, index = rank. */
  workers: { rank: number; workerId: string; address: string; backend: string }[];
  summary: BenchRunSummary | TrainRunSummary;
  /** Where the report is, on the scheduler's file system (in compose: the `reports` volume). */
  report: { dir: string; files: string[] };
  durationMs: number;
}
