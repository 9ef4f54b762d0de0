import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { isScheduleName, SCHEDULE_NAMES } from '@moe/schedule';
import { aggregateRuns, headlineRatio, ratiosOf, summarizeSettings } from './metrics';
import {
  REPORT_SCHEMA,
  ReportError,
  type BenchReport,
  type ReportConfig,
  type ReportEnvironment,
  type RunSamples,
  type TransportBench,
} from './types';

export interface ReportInput {
  /** Settings of the run, with the exact command line that reproduces it. */
  config: ReportConfig;
  /** Every run of the benchmark: one per (schedule, chunks, ratio). */
  runs: readonly RunSamples[];
  /** Host transport bandwidth measured in the same run, 10^6 bytes/s; omit when not measured. */
  transport?: {
    tcpMbps: number;
    grpcMbps: number;
    /** Every data plane's all-to-all, 10^6 bytes/s (raw TCP first), with the frame size and ranks. */
    planes?: { plane: string; mbps: number; runs?: readonly number[]; cpuMsPerMb?: number }[];
    frameBytes?: number;
    world?: number;
    used?: string;
  } | null;
  /** Defaults to `collectEnvironment()`. */
  environment?: ReportEnvironment;
}

/** Builds `report.json` from the measured runs (see `aggregateRuns` for the figures). */
export function buildReport(input: ReportInput): BenchReport {
  if (typeof input.config.command !== 'string' || input.config.command === '') {
    throw new ReportError('config.command is empty; the report must name the command line that reproduces it');
  }
  const results = aggregateRuns(input.runs);
  const settings = summarizeSettings(results);
  const headline = headlineRatio(ratiosOf(results));
  const top = settings.find((s) => s.ratio === headline)!;
  return {
    schema: REPORT_SCHEMA,
    config: input.config,
    environment: input.environment ?? collectEnvironment(),
    results,
    summary: { ...top, headline_ratio: headline, settings },
    transport: input.transport ? withPlanes(transportBench(input.transport.tcpMbps, input.transport.grpcMbps), input.transport) : null,
  };
}

/** Raw TCP against gRPC all-to-all bandwidth, both in 10^6 bytes/s. */
export function transportBench(tcpMbps: number, grpcMbps: number): TransportBench {
  if (!(tcpMbps > 0) || !(grpcMbps >= 0)) {
    throw new ReportError(`transport: tcp_mbps=${tcpMbps} must be > 0 and grpc_mbps=${grpcMbps} must be >= 0`);
  }
  return { tcp_mbps: tcpMbps, grpc_mbps: grpcMbps, ratio: grpcMbps / tcpMbps };
}

/** `bench` with the per-plane all-to-all figures of `input`, each as a fraction of raw TCP. */
function withPlanes(bench: TransportBench, input: NonNullable<ReportInput['transport']>): TransportBench {
  const out: TransportBench = { ...bench };
  if (input.planes) {
    out.planes = input.planes.map((p) => ({
      plane: p.plane,
      mbps: p.mbps,
      ratio: p.mbps / bench.tcp_mbps,
      ...(p.runs ? { runs_mbps: [...p.runs] } : {}),
      ...(p.cpuMsPerMb !== undefined ? { cpu_ms_per_mb: p.cpuMsPerMb } : {}),
    }));
  }
  if (input.frameBytes !== undefined) out.frame_bytes = input.frameBytes;
  if (input.world !== undefined) out.world = input.world;
  if (input.used !== undefined) out.used = input.used;
  return out;
}

export interface EnvironmentOptions {
  /** Include the host name (off by default: reports get shared). */
  hostname?: boolean;
  /** Directory whose git commit is recorded; default the process's working directory. */
  cwd?: string;
  now?: Date;
}

/** Node version, OS, CPUs, date and (when in a git checkout) the commit. Reads only. */
export function collectEnvironment(options: EnvironmentOptions = {}): ReportEnvironment {
  const cpus = os.cpus();
  const env: ReportEnvironment = {
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    arch: process.arch,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    date: (options.now ?? new Date()).toISOString(),
  };
  if (options.hostname) env.hostname = os.hostname();
  const commit = gitCommit(options.cwd ?? process.cwd());
  if (commit) env.gitCommit = commit;
  return env;
}

function gitCommit(cwd: string): string | undefined {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 })
      .toString()
      .trim();
    if (!/^[0-9a-f]{40}$/.test(head)) return undefined;
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    })
      .toString()
      .trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return undefined;
  }
}

/** `report.json`'s text: 2-space indented; fractional numbers kept to 6 significant digits. */
export function reportToJson(report: BenchReport): string {
  return `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isInteger(value) && Number.isFinite(value) ? Number(value.toPrecision(6)) : value), 2)}\n`;
}

// ---------------------------------------------------------------- validation

type Problems = string[];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

function checkNumber(p: Problems, path: string, v: unknown, opts: { nullable?: boolean; min?: number; integer?: boolean } = {}): void {
  if (v === null && opts.nullable) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    p.push(`${path}: expected a ${opts.nullable ? 'finite number or null' : 'finite number'}, got ${describe(v)}`);
    return;
  }
  if (opts.integer && !Number.isInteger(v)) p.push(`${path}: expected an integer, got ${v}`);
  if (opts.min !== undefined && v < opts.min) p.push(`${path}: ${v} is below ${opts.min}`);
}

function checkString(p: Problems, path: string, v: unknown, optional = false): void {
  if (v === undefined && optional) return;
  if (typeof v !== 'string') p.push(`${path}: expected a string, got ${describe(v)}`);
}

function checkRange(p: Problems, path: string, v: unknown): void {
  if (!isObject(v)) {
    p.push(`${path}: expected {min, median, max}, got ${describe(v)}`);
    return;
  }
  for (const k of ['min', 'median', 'max'] as const) checkNumber(p, `${path}.${k}`, v[k], { min: 0 });
  const { min, median, max } = v as Record<string, number>;
  if (min! > median! || median! > max!) p.push(`${path}: min=${min} <= median=${median} <= max=${max} does not hold`);
}

const SETTING_FIELDS = [
  'naive_step_ms',
  'overlapped_step_ms',
  'ideal_ms',
  'speedup',
  'efficiency',
  'overhead_naive',
  'overhead_overlapped',
  'winning_chunks',
] as const;

function checkSetting(p: Problems, path: string, v: unknown): void {
  if (!isObject(v)) {
    p.push(`${path}: expected an object, got ${describe(v)}`);
    return;
  }
  checkNumber(p, `${path}.ratio`, v.ratio, { min: 0 });
  for (const k of SETTING_FIELDS) checkNumber(p, `${path}.${k}`, v[k], { nullable: true });
  if (!Array.isArray(v.schedules)) {
    p.push(`${path}.schedules: expected an array, got ${describe(v.schedules)}`);
    return;
  }
  v.schedules.forEach((s: unknown, i) => {
    const at = `${path}.schedules[${i}]`;
    if (!isObject(s)) {
      p.push(`${at}: expected an object, got ${describe(s)}`);
      return;
    }
    checkString(p, `${at}.schedule`, s.schedule);
    checkNumber(p, `${at}.chunks`, s.chunks, { min: 1, integer: true });
    for (const k of ['step_ms', 'exposed_comm_share'] as const) checkNumber(p, `${at}.${k}`, s[k], { min: 0 });
    checkNumber(p, `${at}.overhead`, s.overhead);
    for (const k of ['speedup', 'efficiency'] as const) checkNumber(p, `${at}.${k}`, s[k], { nullable: true, min: 0 });
  });
}

/**
 * Checks that `value` has the shape of `report.json` (schema `moe-bench/1`).
 * @returns one line per problem, naming the path (`results[2].step_ms.median: ...`); empty when valid.
 */
export function validateReport(value: unknown): string[] {
  const p: Problems = [];
  if (!isObject(value)) return [`report: expected an object, got ${describe(value)}`];
  if (value.schema !== REPORT_SCHEMA) p.push(`schema: expected "${REPORT_SCHEMA}", got ${JSON.stringify(value.schema)}`);

  if (!isObject(value.config)) p.push(`config: expected an object, got ${describe(value.config)}`);
  else checkString(p, 'config.command', value.config.command);

  const env = value.environment;
  if (!isObject(env)) p.push(`environment: expected an object, got ${describe(env)}`);
  else {
    for (const k of ['node', 'platform', 'arch', 'cpuModel', 'date'] as const) checkString(p, `environment.${k}`, env[k]);
    checkNumber(p, 'environment.cpus', env.cpus, { min: 0, integer: true });
    checkString(p, 'environment.hostname', env.hostname, true);
    checkString(p, 'environment.gitCommit', env.gitCommit, true);
    if (typeof env.date === 'string' && Number.isNaN(Date.parse(env.date))) p.push(`environment.date: "${env.date}" is not a date`);
  }

  if (!Array.isArray(value.results)) p.push(`results: expected an array, got ${describe(value.results)}`);
  else {
    if (value.results.length === 0) p.push('results: empty; a report has at least 1 row');
    const keys = new Set<string>();
    value.results.forEach((row: unknown, i) => {
      const at = `results[${i}]`;
      if (!isObject(row)) {
        p.push(`${at}: expected an object, got ${describe(row)}`);
        return;
      }
      if (typeof row.schedule !== 'string' || !isScheduleName(row.schedule)) {
        p.push(`${at}.schedule: expected one of ${SCHEDULE_NAMES.map((n) => JSON.stringify(n)).join(', ')}, got ${JSON.stringify(row.schedule)}`);
      }
      checkNumber(p, `${at}.chunks`, row.chunks, { min: 1, integer: true });
      checkNumber(p, `${at}.ratio`, row.ratio, { min: 0 });
      checkNumber(p, `${at}.steps`, row.steps, { min: 1, integer: true });
      checkNumber(p, `${at}.warmup_steps`, row.warmup_steps, { min: 0, integer: true });
      for (const k of ['step_ms', 'compute_ms', 'comm_ms', 'exposed_comm_ms'] as const) checkRange(p, `${at}.${k}`, row[k]);
      checkNumber(p, `${at}.overhead`, row.overhead);
      for (const k of ['ideal_ms', 'speedup', 'efficiency'] as const) checkNumber(p, `${at}.${k}`, row[k], { nullable: true, min: 0 });
      checkNumber(p, `${at}.algbw_gbps`, row.algbw_gbps, { min: 0 });
      checkNumber(p, `${at}.bytes_per_step`, row.bytes_per_step, { min: 0 });
      checkNumber(p, `${at}.slowest_rank`, row.slowest_rank, { min: 0, integer: true });
      if (typeof row.winner !== 'boolean') p.push(`${at}.winner: expected a boolean, got ${describe(row.winner)}`);
      if (isObject(row.host_cpu)) {
        for (const k of ['run_ms', 'wait_ms', 'probes_wait_ms'] as const) checkNumber(p, `${at}.host_cpu.${k}`, row.host_cpu[k], { min: 0 });
        checkNumber(p, `${at}.host_cpu.probes`, row.host_cpu.probes, { min: 1, integer: true });
      } else if (row.host_cpu !== undefined && row.host_cpu !== null) p.push(`${at}.host_cpu: expected an object or null, got ${describe(row.host_cpu)}`);
      const key = `${String(row.schedule)} C${String(row.chunks)} ratio ${String(row.ratio)}`;
      if (keys.has(key)) p.push(`${at}: a second row for ${key}`);
      keys.add(key);
    });
  }

  const s = value.summary;
  if (!isObject(s)) p.push(`summary: expected an object, got ${describe(s)}`);
  else {
    checkSetting(p, 'summary', s);
    checkNumber(p, 'summary.headline_ratio', s.headline_ratio, { min: 0 });
    if (!Array.isArray(s.settings)) p.push(`summary.settings: expected an array, got ${describe(s.settings)}`);
    else s.settings.forEach((setting: unknown, i) => checkSetting(p, `summary.settings[${i}]`, setting));
  }

  const t = value.transport;
  if (t !== null) {
    if (!isObject(t)) p.push(`transport: expected an object or null, got ${describe(t)}`);
    else for (const k of ['tcp_mbps', 'grpc_mbps', 'ratio'] as const) checkNumber(p, `transport.${k}`, t[k], { min: 0 });
  }
  if (value.load !== undefined) checkLoad(p, value.load);
  return p;
}

/** report.json's optional `load`: the sweep's imbalance, and each skewed row's figures. */
function checkLoad(p: Problems, load: unknown): void {
  if (!isObject(load) || !isObject(load.sweep) || !isObject(load.sweep.load)) {
    p.push(`load: expected { sweep: { run, load }, skewed? }, got ${describe(load)}`);
    return;
  }
  checkNumber(p, 'load.sweep.load.overallImbalance', load.sweep.load.overallImbalance, { min: 1 });
  if (load.skewed === undefined) return;
  const rows = isObject(load.skewed) ? load.skewed.rows : undefined;
  if (!Array.isArray(rows)) {
    p.push(`load.skewed.rows: expected an array, got ${describe(rows)}`);
    return;
  }
  rows.forEach((row: unknown, i) => {
    const at = `load.skewed.rows[${i}]`;
    if (!isObject(row)) return void p.push(`${at}: expected an object, got ${describe(row)}`);
    checkNumber(p, `${at}.redundant_experts`, row.redundant_experts, { min: 0, integer: true });
    checkNumber(p, `${at}.imbalance`, row.imbalance, { min: 1 });
    for (const k of ['step_ms', 'compute_ms'] as const) checkRange(p, `${at}.${k}`, row[k]);
  });
}
