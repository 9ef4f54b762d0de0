/**
 * `moe bench`: a local cluster of `sim` workers, the naive, overlapped and fb-overlap schedules
 * over a sweep of chunk counts and of modeled compute-to-communication ratios, every run on the
 * same global batch split into the same micro-batches, then a report.
 *
 * How a ratio is set: the sim backend models compute and links of a device profile, both slowed
 * by one dilation factor. Two calibration runs (naive, compute scale 1, two dilations) separate
 * the host transport's share of a step's comm time from the modeled links'; the dilation is then
 * set so the modeled links of one naive step take `commTargetMs`, and each ratio r sets the sim's
 * compute scale so that compute ≈ r × comm (bench-calibration.ts).
 * The achieved ratio of every naive run is in the report (compute_ms / comm_ms).
 *
 * Every row is also predicted by the cluster simulator (bench-prediction.ts), on the host terms
 * that the probe runs of its schedule at the rows' dilation measured, one before each of its rows (bench-host.ts).
 * Each row's run and each probe also record how long the workers' main threads waited for a core (bench-cpu.ts).
 * Then the expert load (bench-load.ts): the headline naive run's tokens per expert and per GPU,
 * and a skewed-routing run without and with redundant experts.
 */
import { measureBenchTransport, planesUsed } from './bench-transport';
import type { LogLine } from '@moe/log';
import { FB_OVERLAP, NAIVE, OVERLAPPED, stepSettingsLabel } from '@moe/schedule';
import { parseModelConfig } from '@moe/model';
import { PlacementError } from '@moe/placement';
import { LocalCluster, type Cluster } from '../control/local-cluster';
import {
  buildReport,
  headlineRatio,
  median,
  collectEnvironment,
  representativeSteps,
  stepMetrics,
  toStepSample,
  writeReport,
  type BenchReport,
  type ReportFiles,
  type RunSamples,
  type StepSample,
  type BenchLoad,
} from '@moe/report';
import { DEFAULT_REDUNDANT_EXPERTS, measuredLoad, redundantExpertsProblem, skewedComparison } from './bench-load';
import { BENCH_SIM_SETTINGS, benchConfigs, modeledModel } from './bench-model';
import type { StepMetrics } from './step-driver';
import { runTraining, type RunInfo, type TrainingResult } from './train-run';
import { linkRecord, transportMeasured } from './bench-records';
import { alignment, predictBenchRow, type BenchStepSettings } from './bench-prediction';
import { calibrateDilation } from './bench-calibration';
import { benchHostModel, type HostProbe } from './bench-host';
import { BenchCpu } from './bench-cpu';

export interface BenchOptions {
  /** Sim workers in the cluster. */
  workers: number;
  /** Compute-to-communication ratios to sweep. */
  ratios: number[];
  /** Chunk counts of the overlapped schedule. */
  chunks: number[];
  /** Chunk counts of the fb-overlap schedule. */
  fbChunks: number[];
  /** Micro-batches each worker splits its share of the global batch into, every schedule alike (gradients accumulate; one update a step). */
  microBatches: number;
  /** Tokens a rank models in a step (all its micro-batches): the rows the all-to-alls carry. */
  tokensPerRank: number;
  warmupSteps: number;
  measuredSteps: number;
  /** Wire codecs of the all-to-alls (DeepSeek-V3 dispatches in fp8 and combines in bf16). */
  dispatchCodec: 'f32' | 'bf16' | 'fp8';
  combineCodec: 'f32' | 'bf16';
  /** Device profile the workers model. */
  profile: string;
  /** ms a naive step should spend in all-to-alls (sets the dilation). */
  commTargetMs: number;
  /** Modeled hidden size: the width of every row on the wire. */
  hiddenSize: number;
  /** Ranks per modeled node (intra-node links inside, inter-node between). */
  nodeSize: number;
  /** Seconds of each loopback throughput measurement (0 skips it). */
  transportSeconds: number;
  /** Skewed-routing comparison: physical copies beyond the experts in its second run (0 skips the comparison). */
  redundantExperts: number;
  /** top-k of the skewed comparison's model (its skew puts every token's k slots on rank 0's experts). */
  skewedTopK: number;
  /** Folder for the report files. */
  out: string;
  /** The command line, recorded in the report for reproduction. */
  command: string;
  signal?: AbortSignal;
  log?: LogLine;
  /** Called as runs finish: `done` of `total` runs, and what ran. */
  onProgress?: (done: number, total: number, label: string) => void;
  /** Called after every step of every run (calibration included). */
  onStep?: (metrics: StepMetrics, run: RunInfo) => void;
  /** Run on these registered `sim` workers (the first `workers`) instead of starting a local cluster; not stopped afterwards (`moe serve`). */
  cluster?: Cluster;
}

export const BENCH_DEFAULTS: Omit<BenchOptions, 'out' | 'command'> = {
  workers: 4,
  ratios: [0.25, 0.5, 1, 2, 4],
  chunks: [2, 4],
  fbChunks: [1, 2],
  microBatches: 4,
  tokensPerRank: 1024,
  warmupSteps: 1,
  measuredSteps: 3,
  dispatchCodec: 'bf16',
  combineCodec: 'bf16',
  profile: 'H800',
  commTargetMs: 250,
  hiddenSize: 256,
  nodeSize: 2,
  transportSeconds: 1.5,
  redundantExperts: DEFAULT_REDUNDANT_EXPERTS,
  skewedTopK: 2,
};

export const BENCH_QUICK: Partial<BenchOptions> = {
  chunks: [2],
  fbChunks: [1],
  measuredSteps: 2,
  commTargetMs: 150,
  transportSeconds: 0.5,
};

/** Steps of each schedule's warm-up run (none measured; no such runs with --warmup 0): a worker's steps settle after 3 or 4. */
export const WARMUP_RUN_STEPS = 6;

export interface BenchResult {
  report: BenchReport;
  files: ReportFiles;
  dilation: number;
  /** compute_ms / comm_ms of the device at compute scale 1 (its natural ratio at these sizes). */
  naturalRatio: number;
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  if (options.workers % options.nodeSize !== 0 && options.workers > options.nodeSize) {
    throw new RangeError(`--workers ${options.workers} is not a whole number of nodes of --node-size ${options.nodeSize}`);
  }
  const copies = redundantExpertsProblem(options.workers, options.redundantExperts);
  if (copies) throw new PlacementError(`--redundant-experts ${options.redundantExperts}: ${copies}`);
  const { model, train } = benchConfigs(options.workers, options.microBatches);
  // Settings of the sim workers that shape the figures but are not flags: stated once, recorded in config.
  // One optimizer update a step: the step's micro-batches are real (options.microBatches), not modeled.
  const { accumulationSteps, latencyScale } = BENCH_SIM_SETTINGS;
  const simOptions = (dilation: number, computeScale: number) => ({
    profile: options.profile,
    dilation,
    computeScale,
    nodeSize: options.nodeSize,
    tokensPerRank: options.tokensPerRank,
    accumulationSteps,
    latencyScale,
    model: modeledModel(options.hiddenSize, model.routedExperts),
  });
  const schedules = [
    { schedule: NAIVE, chunks: 1 },
    ...options.chunks.map((chunks) => ({ schedule: OVERLAPPED, chunks })),
    ...options.fbChunks.map((chunks) => ({ schedule: FB_OVERLAP, chunks })),
  ];
  const skewedRuns = options.redundantExperts > 0 ? 2 : 0;
  const warmupRunSteps = options.warmupSteps > 0 ? WARMUP_RUN_STEPS : 0;
  // A warm-up run of each schedule, then before each row, a host probe of its schedule (bench-host.ts).
  const total = (warmupRunSteps > 0 ? schedules.length : 0) + 2 + options.ratios.length * 2 * schedules.length + skewedRuns;
  const headline = headlineRatio(options.ratios);
  let sweepLoad: BenchLoad['sweep'] | undefined;
  let done = 0;
  const progress = (label: string) => options.onProgress?.(++done, total, label);

  const cluster = options.cluster ?? (await LocalCluster.start({ workers: options.workers, backend: 'sim', abort: options.signal, log }));
  try {
    const run = (steps: number, backendOptions: Record<string, unknown>, schedule: { schedule: string; chunks: number }) =>
      runTraining({
        model,
        train: { ...train, steps },
        workers: options.workers,
        cluster,
        backend: 'sim',
        backendOptions,
        step: { ...schedule, microBatches: options.microBatches, dispatchCodec: options.dispatchCodec, combineCodec: options.combineCodec, recordTimeline: true },
        signal: options.signal,
        onStep: options.onStep && ((metrics, info) => options.onStep!(metrics, info)),
      });
    const commAndCompute = (result: TrainingResult) => {
      const figures = result.steps.slice(1).map((s) => stepMetrics(toStepSample(s).timelines, s.stepMs));
      return { comm: median(figures.map((f) => f.commMs)), compute: median(figures.map((f) => f.computeMs)) };
    };

    // The prediction's settings: the sim workers' own (same model, links, tokens, micro-batches).
    const stepSettings = (dilation: number): BenchStepSettings => ({
      model,
      workers: options.workers,
      nodeSize: options.nodeSize,
      profile: options.profile,
      dilation,
      accumulationSteps,
      latencyScale,
      modeled: simOptions(dilation, 1).model,
      tokensPerRank: options.tokensPerRank,
      microBatches: options.microBatches,
      dispatchCodec: options.dispatchCodec,
      combineCodec: options.combineCodec,
    });
    const measuredOf = (result: TrainingResult) => result.steps.slice(1).map((s) => toStepSample(s));

    const modeledSlope = predictBenchRow(stepSettings(1), schedules[0]!, 1).commMs;
    // Every schedule once, unmeasured, at the dilation the model says gives commTargetMs: a worker's
    // first steps of a schedule run slow while its code paths are compiled (measured: overlapped C4's
    // first run after two naive ones, median step 741 ms, its next four 600, 549, 547, 515), and
    // the first ratio's probes and rows would each be some schedule's first run.
    const warmupDilation = Math.max(1, Math.round(options.commTargetMs / modeledSlope));
    if (warmupRunSteps > 0) {
      for (const schedule of schedules) {
        await run(warmupRunSteps, simOptions(warmupDilation, 1), schedule);
        progress(`warm-up: ${stepSettingsLabel(schedule)}`);
      }
    }

    // Calibration (bench-calibration.ts): two naive probes at two dilations set the dilation.
    const calibration = await calibrateDilation({
      targetMs: options.commTargetMs,
      modeledSlope,
      probe: async (d, attempt) => {
        const probe = await run(3, simOptions(d, 1), schedules[0]!);
        const measure = { ...commAndCompute(probe), steps: measuredOf(probe) };
        if (attempt === 0) progress(`calibration at dilation ${d}: comm ${measure.comm.toFixed(1)} ms`);
        else log(`calibration again (try ${attempt + 1}) at dilation ${d}: comm ${measure.comm.toFixed(1)} ms`);
        return measure;
      },
    });
    const { dilation, hostCommMs } = calibration;
    const [, high] = calibration.probes;
    // Compute scales with the dilation exactly (timers), so the natural ratio follows from a probe.
    const computeAt = (d: number) => (high!.measure.compute * d) / high!.dilation;
    const base = { comm: hostCommMs + calibration.slope * dilation, compute: computeAt(dilation) };
    const naturalRatio = base.compute / base.comm;
    log(
      `calibrated: dilation ${dilation.toFixed(0)} gives ${(calibration.slope * dilation).toFixed(1)} ms of modeled link time a naive step ` +
        `(+ ${hostCommMs.toFixed(1)} ms host transport); compute ${base.compute.toFixed(1)} ms at scale 1 (natural ratio ${naturalRatio.toFixed(2)})`,
    );

    const runs: RunSamples[] = [];
    const links = new Map<string, ReturnType<typeof linkRecord>>();
    const dataPlanes: string[] = [];
    const computeScaleOf = (ratio: number) => (ratio * base.comm) / base.compute;
    // What the host adds at the rows' dilation: a probe of the row's schedule (bench-host.ts), never a row, run just before
    // each row, so a schedule's probes spread over the sweep as its rows do.
    const hostProbes = new Map<number, HostProbe[]>();
    const cpu = new BenchCpu(cluster instanceof LocalCluster ? cluster.processes.flatMap((p) => p.child.pid ?? []) : []);
    for (const ratio of options.ratios) {
      const computeScale = computeScaleOf(ratio);
      const probes: HostProbe[] = [];
      hostProbes.set(ratio, probes);
      for (const schedule of schedules) {
        // At least 3 measured steps: each host term is a median over them (bench-host.ts).
        const probe = await cpu.probe(schedule, () => run(1 + Math.max(3, options.measuredSteps), simOptions(dilation, 1), schedule));
        probes.push({ schedule, steps: measuredOf(probe) });
        progress(`ratio ${ratio}: host probe ${stepSettingsLabel(schedule)} (compute scale 1)`);
        const result = await cpu.row(schedule, ratio, () => run(options.warmupSteps + options.measuredSteps, simOptions(dilation, computeScale), schedule));
        dataPlanes.push(...result.steps.flatMap((s) => s.dataPlanes));
        runs.push({
          schedule: schedule.schedule,
          chunks: schedule.chunks,
          ratio,
          warmupSteps: options.warmupSteps,
          steps: result.steps.map((s) => toStepSample(s)),
          workerIds: result.workers.map((w) => w.workerId),
        });
        links.set(`${schedule.schedule}/${schedule.chunks}/${ratio}`, linkRecord(result.steps.slice(options.warmupSteps)));
        if (ratio === headline && schedule.schedule === NAIVE) sweepLoad = { run: `naive at ratio ${ratio}`, load: measuredLoad(result, model, options.warmupSteps) };
        progress(`ratio ${ratio}: ${stepSettingsLabel({ ...schedule, microBatches: options.microBatches })}`);
      }
    }

    let skewed: BenchLoad['skewed'];
    const skewedModel = parseModelConfig({ ...model, topK: options.skewedTopK });
    const skewedScale = (headline * base.comm) / base.compute;
    if (options.redundantExperts > 0) {
      skewed = await skewedComparison({
        cluster,
        workers: options.workers,
        model: skewedModel,
        train,
        backendOptions: simOptions(dilation, skewedScale),
        step: { ...schedules[0]!, microBatches: options.microBatches, dispatchCodec: options.dispatchCodec, combineCodec: options.combineCodec, nodeSize: options.nodeSize },
        ratio: headline,
        warmupSteps: options.warmupSteps,
        measuredSteps: options.measuredSteps,
        redundantExperts: options.redundantExperts,
        signal: options.signal,
        onStep: options.onStep,
        onRun: progress,
      });
    }

    let measuredTransport: Awaited<ReturnType<typeof measureBenchTransport>> | null = null;
    let transportError: string | null = null;
    if (options.transportSeconds > 0) {
      log(`measuring the all-to-all of ${options.workers} processes on raw TCP and on every data plane`);
      // The rows are the bench's figures: a transport line that fails (a rank that stops answering) is
      // reported, and the prediction charges the data plane to the probes' all-to-all work, as with --transport-seconds 0.
      measuredTransport = await measureBenchTransport({
        workers: options.workers,
        globalTokens: train.batchSequences * train.seqLen,
        topK: model.topK,
        hiddenSize: options.hiddenSize,
        dispatchCodec: options.dispatchCodec,
        transportSeconds: options.transportSeconds,
        // 5 runs a plane (a median of 3 moved by a tenth between consecutive benches on a shared host)
        repeats: options.transportSeconds >= 1 ? 5 : 1,
      }).catch((error: Error) => {
        if (options.signal?.aborted) throw error;
        transportError = error.message;
        log('the transport line failed; the rows stand without it', { level: 'error', err: error });
        return null;
      });
    }
    const transport = measuredTransport && { ...measuredTransport, used: planesUsed(dataPlanes) };
    // The simulator's prediction of every row (bench-prediction.ts), on the host the probes measured (bench-host.ts).
    const usedPlane = measuredTransport?.planes.find((p) => p.plane === planesUsed(dataPlanes));
    const host = benchHostModel(
      stepSettings(dilation),
      calibration.probes.map((p) => ({ dilation: p.dilation, steps: p.measure.steps })),
      hostProbes,
      usedPlane ? { plane: usedPlane.plane, mbps: usedPlane.mbps, world: measuredTransport!.world } : null,
    );

    const report = buildReport({
      config: {
        command: options.command,
        workers: options.workers,
        profile: options.profile,
        dispatch_codec: options.dispatchCodec,
        combine_codec: options.combineCodec,
        ratios: options.ratios,
        chunks: options.chunks,
        fb_overlap_chunks: options.fbChunks,
        schedules: schedules.map((s) => stepSettingsLabel(s)),
        // Every run: the same global batch in the same micro-batches, one optimizer update a step.
        micro_batches: options.microBatches,
        tokens_per_rank: options.tokensPerRank,
        warmup_steps: options.warmupSteps,
        // Before the calibration: one unmeasured run of every schedule, at the dilation the model says gives comm_target_ms.
        warmup_runs: warmupRunSteps > 0 ? { steps: warmupRunSteps, dilation: warmupDilation, compute_scale: 1 } : null,
        measured_steps: options.measuredSteps,
        dilation,
        natural_ratio: naturalRatio,
        comm_target_ms: options.commTargetMs,
        host_comm_ms: hostCommMs,
        modeled: simOptions(dilation, 1).model,
        node_size: options.nodeSize,
        accumulation_steps: accumulationSteps,
        latency_scale: latencyScale,
        compute_scales: Object.fromEntries(options.ratios.map((ratio) => [ratio, computeScaleOf(ratio)])),
        model,
        train: { batchSequences: train.batchSequences, seqLen: train.seqLen },
        transport: measuredTransport?.config ?? null,
        transport_error: transportError,
        data_plane: planesUsed(dataPlanes),
        calibration: {
          probe_dilations: calibration.probes.map((p) => p.dilation),
          tries: calibration.tries,
          slope_ms_per_dilation: calibration.slope,
          modeled_slope_ms_per_dilation: calibration.modeledSlope,
        },
        prediction: host.record,
        // The skewed-routing comparison (report.load.skewed): its model's top-k, the copies its second run adds, and its compute scale.
        skewed: options.redundantExperts > 0 ? { routing: 'skewed', top_k: options.skewedTopK, redundant_experts: options.redundantExperts, schedule: NAIVE, ratio: headline, compute_scale: skewedScale } : null,
      },
      runs,
      transport,
      environment: collectEnvironment(),
    });
    // each row says what bound its all-to-alls; the transport line says what it measured
    for (const row of report.results) {
      row.link = links.get(`${row.schedule}/${row.chunks}/${row.ratio}`) ?? null;
      row.host_cpu = cpu.of(row);
    }
    if (report.transport && measuredTransport) report.transport.what = transportMeasured(measuredTransport.config);
    if (sweepLoad) report.load = { sweep: sweepLoad, ...(skewed ? { skewed } : {}) };
    for (const row of report.results) {
      const p = predictBenchRow(stepSettings(dilation), row, computeScaleOf(row.ratio), host.of(row));
      Object.assign(row, {
        predicted_step_ms: p.stepMs,
        predicted_compute_ms: p.computeMs,
        predicted_comm_ms: p.commMs,
        predicted_exposed_comm_ms: p.exposedCommMs,
        alignment: alignment(p.stepMs, row.step_ms.median),
      });
    }
    const files = await writeReport(options.out, report, ...representativeSteps(report, runs));
    return { report, files, dilation, naturalRatio };
  } finally {
    if (!options.cluster) await cluster.stop();
  }
}
