/**
 * The bench's expert load (report.json `load`): the tokens each expert and each GPU took over the
 * measured steps of the sweep's headline naive run; and the skewed-routing comparison: the same
 * step with every token's top-k on the experts rank 0 holds (sim `routing: "skewed"`), first on
 * the contiguous placement, then with EPLB's redundant experts planned from the loads that first
 * run measured, so the second run faces exactly the routing the first one measured.
 */
import type { ModelConfig, TrainConfig } from '@moe/model';
import { balancedPlacement, describePlacement, hasRedundantExperts } from '@moe/placement';
import { expertLoadReport, stepMetrics, summarize, toStepSample, type BenchLoad, type ExpertLoadReport, type SkewedLoadRow } from '@moe/report';
import type { Cluster } from '../control/local-cluster';
import { BENCH_ROUTED_EXPERTS } from './bench-model';
import type { StepMetrics } from './step-driver';
import { runTraining, type RunInfo, type TrainingResult } from './train-run';

/** The skewed comparison's copies unless asked otherwise (BENCH_DEFAULTS), when they fit the workers. */
export const DEFAULT_REDUNDANT_EXPERTS = 4;

/**
 * Why the skewed-routing comparison cannot place `redundantExperts` copies on `workers` (every
 * rank holds as many physical experts), or undefined when it can (or is skipped). Checked before
 * a run starts: the comparison runs last, after the whole sweep.
 */
export function redundantExpertsProblem(workers: number, redundantExperts: number): string | undefined {
  const experts = BENCH_ROUTED_EXPERTS;
  if (redundantExperts === 0 || (experts + redundantExperts) % workers === 0) return undefined;
  return `${experts} experts + ${redundantExperts} redundant = ${experts + redundantExperts} physical experts do not divide evenly over the ${workers} workers (every rank holds as many): use a count that makes ${experts} + n a multiple of ${workers}, or 0 to skip the comparison`;
}

/**
 * The skewed-routing comparison's copies when none were asked for: DEFAULT_REDUNDANT_EXPERTS, or
 * the next count above it that spreads evenly over `workers` (4 workers: 4; 8 workers: 8; 5 workers: 7).
 */
export function defaultRedundantExperts(workers: number): number {
  let n = DEFAULT_REDUNDANT_EXPERTS;
  while (redundantExpertsProblem(workers, n)) n++;
  return n;
}

/** The load of `result`'s steps after `warmup`, tokens per GPU from the copies' own counts when it ran redundant experts. */
export function measuredLoad(result: TrainingResult, model: ModelConfig, warmup: number): ExpertLoadReport {
  const steps = result.steps.slice(warmup);
  const placement = result.finalPlacement;
  return expertLoadReport(
    steps.map((s) => s.expertCounts),
    model.layers,
    result.finalOwner,
    result.workers.length,
    hasRedundantExperts(placement, model.routedExperts) ? { ...placement, stepCounts: steps.map((s) => s.physicalCounts ?? []) } : undefined,
  );
}

export interface SkewedComparisonOptions {
  cluster: Cluster;
  workers: number;
  /** The bench's model with the comparison's top-k. */
  model: ModelConfig;
  train: TrainConfig;
  /** The sim options of the headline ratio; `routing: "skewed"` is added. */
  backendOptions: Record<string, unknown>;
  step: { schedule: string; chunks: number; microBatches: number; dispatchCodec: 'f32' | 'bf16' | 'fp8'; combineCodec: 'f32' | 'bf16'; nodeSize: number };
  ratio: number;
  warmupSteps: number;
  measuredSteps: number;
  /** Physical copies beyond the experts in the second run. */
  redundantExperts: number;
  signal?: AbortSignal;
  onStep?: (metrics: StepMetrics, run: RunInfo) => void;
  /** Called after each of the two runs. */
  onRun?: (label: string) => void;
}

/** The two skewed runs, without and with redundant experts. */
export async function skewedComparison(o: SkewedComparisonOptions): Promise<NonNullable<BenchLoad['skewed']>> {
  const { model } = o;
  const run = (redundantExperts: number, expertLoads?: number[][]) =>
    runTraining({
      model,
      train: { ...o.train, steps: o.warmupSteps + o.measuredSteps },
      workers: o.workers,
      cluster: o.cluster,
      backend: 'sim',
      backendOptions: { ...o.backendOptions, routing: 'skewed' },
      step: { ...o.step, recordTimeline: true, allToAll: 'flat' },
      ...(redundantExperts > 0 ? { redundantExperts, expertLoads } : {}),
      signal: o.signal,
      onStep: o.onStep,
    });
  const row = (result: TrainingResult, redundant: number, policy: string): SkewedLoadRow => {
    const measured = result.steps.slice(o.warmupSteps);
    const load = measuredLoad(result, model, o.warmupSteps);
    return {
      redundant_experts: redundant,
      policy,
      placement: describePlacement(result.finalPlacement, o.workers),
      step_ms: summarize(measured.map((s) => s.stepMs)),
      compute_ms: summarize(measured.map((s) => stepMetrics(toStepSample(s).timelines, s.stepMs).computeMs)),
      imbalance: load.overallImbalance,
      tokens_per_gpu: load.tokensPerGpu.reduce((sum, row) => sum.map((v, r) => v + row[r]!), new Array<number>(o.workers).fill(0)),
      load,
    };
  };

  const plain = await run(0);
  o.onRun?.('skewed routing, no redundant experts');
  const base = row(plain, 0, 'none');
  const loads = base.load.expertLoads;
  const topology = { gpus: o.workers, nodeSize: o.step.nodeSize, groups: model.routerGroups };
  const { plan } = balancedPlacement(loads, topology, o.redundantExperts);
  const replicated = await run(o.redundantExperts, loads);
  o.onRun?.(`skewed routing, ${o.redundantExperts} redundant experts`);
  return { schedule: o.step.schedule, ratio: o.ratio, top_k: model.topK, rows: [base, row(replicated, o.redundantExperts, plan.policy)] };
}
