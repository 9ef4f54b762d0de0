/**
 * One training step of a whole cluster on the virtual clock: the pipeline schedule's plan,
 * expanded into op lists with the expert all-to-alls inside every chunk, run on one GPU per
 * pipeline rank, then ZeRO-1's gradient reduce-scatter, parameter all-gather and AdamW.
 *
 * Symmetry, exact under uniform routing in expectation: every GPU of a stage runs the same op
 * list on the same data sizes, and its all-to-alls go to GPUs doing the same, so one GPU stands for
 * all gpus/pp of its stage (its all-to-all ends when its own ports have moved its bytes, which is
 * when every peer's have). The work is then pipeline ranks x micro-batches x layers, whatever the
 * number of GPUs; the layout enters through the bytes on each port and the ZeRO-1 group sizes.
 */
import { expandPlan, pipelineSchedule, planMemory, splitLayers, type PipelineOp, type PipelinePlan } from '@moe/schedule';
import { peakFlops } from '../devices';
import { profileOf, resolveLayout, type ClusterSimConfig, type ResolvedLayout } from './config';
import { runEngine, type SimTask } from './engine';
import { total, uncovered, union, type Span } from './intervals';
import { OpCosts } from './op-costs';

/** What one task of the simulated step was: a schedule op, or the step's ZeRO-1 tail. */
export type TaskOrigin = { rank: number; op: PipelineOp } | { rank: number; tail: 'zero1_sync' | 'update' };

export interface RankFigures {
  /** ms the compute stream ran. */
  computeMs: number;
  /** ms at least one transfer of this GPU was in flight. */
  commMs: number;
  /** ms the compute stream sat idle while a transfer of this GPU was in flight. */
  exposedCommMs: number;
  /** ms idle with nothing of its own in flight: waiting on other stages (the pipeline bubble). */
  bubbleMs: number;
}

export interface ClusterSimResult {
  config: ClusterSimConfig;
  layout: ResolvedLayout;
  plan: PipelinePlan;
  /** Model layers of each stage. */
  stageLayers: number[][];
  stepMs: number;
  ranks: RankFigures[];
  /** Tokens a step trains on: gpus/pp x micro-batches x tokens per micro-batch. */
  tokensPerStep: number;
  tokensPerSecondPerGpu: number;
  /** FLOPs of the step's model math on all GPUs (forward and backward, no recomputation). */
  modelFlopsPerStep: number;
  /** Model FLOPs / (step time x GPUs x dense bf16 peak). */
  mfu: number;
  /** The same against the dense peak of the GEMM dtype (fp8 for DeepSeek-V3). */
  mfuGemmPeak: number;
  memory: { parameterStages: number[]; activationMicroBatches: number[]; paramsPerGpu: number[] };
  /** Engine tasks with their origins and times (for traces and pictures). */
  tasks: { origin: TaskOrigin; start: number; end: number; stream: 'compute' | 'comm' }[];
  simulator: { tasks: number; events: number; wallMs: number };
}

/** Simulates one step of `config`; throws ClusterConfigError / PipelineScheduleError naming a bad input. */
export function simulateCluster(config: ClusterSimConfig): ClusterSimResult {
  const began = performance.now();
  const m = config.model;
  const layout = resolveLayout(config.layout, m.routedExperts);
  const schedule = pipelineSchedule(config.schedule, 'schedule');
  const plan = schedule.build(layout.pipelineRanks, config.microBatches);
  const stages = splitLayers(m.layers, plan.stages, m.denseLayers);
  const lists = expandPlan(plan, stages);
  const costs = new OpCosts(config, layout);
  const share = config.commSmShare;

  // Global task ids: each rank's ops in order, then its ZeRO-1 tail.
  const offsets: number[] = [];
  let count = 0;
  for (const ops of lists) {
    offsets.push(count);
    count += ops.length + 2;
  }
  const tasks: SimTask[] = [];
  const origins: TaskOrigin[] = [];
  let modelFlopsPerGpuStep = 0;
  const memory = planMemory(plan);
  const params = costs.params();
  const holders = new Map<number, number>();
  plan.units.forEach((units) => {
    const held = new Set(units.flatMap((u) => (u.kind === 'F' ? [u.chunk.stage] : u.kind === 'FB' ? [u.forward.stage] : [])));
    for (const s of held) holders.set(s, (holders.get(s) ?? 0) + 1);
  });
  const paramsPerGpu: number[] = [];

  lists.forEach((ops, rank) => {
    const base = offsets[rank]!;
    for (const op of ops) {
      const dense = op.layer >= 0 && stages.dense.has(op.layer);
      const t = costs.time(op, dense);
      modelFlopsPerGpuStep += t.flops;
      const deps = op.deps.map((d) => base + d);
      for (const f of op.from ?? []) deps.push(offsets[f.rank]! + f.op);
      tasks.push({ device: rank, stream: op.stream, ms: t.ms, wire: t.wire, deps });
      origins.push({ rank, op });
    }
    // ZeRO-1 over the GPUs holding the same parameters: every GPU of the stage (dense parts) or
    // every EP group's GPU with the same experts, times the ranks holding the stage (DualPipe: 2).
    let denseParams = 0;
    let expertParams = 0;
    let denseGroup = Infinity;
    let expertGroup = Infinity;
    const heldStages = new Set(ops.filter((o) => o.direction === 'forward').map((o) => o.stage));
    for (const s of heldStages) {
      const copies = holders.get(s) ?? 1;
      denseGroup = Math.min(denseGroup, layout.gpusPerStage * copies);
      expertGroup = Math.min(expertGroup, layout.epGroupsPerStage * copies);
      for (const layer of stages.layers[s]!) {
        if (stages.dense.has(layer)) denseParams += params.denseOnlyLayer;
        else {
          denseParams += params.denseLayer;
          expertParams += params.localExperts;
        }
      }
      if (s === 0 || s === plan.stages - 1) denseParams += params.vocabulary;
    }
    paramsPerGpu.push(denseParams + expertParams);
    const ring = (n: number) => (n > 1 ? (n - 1) / n : 0);
    const w = config.wire;
    const syncBytes = (w.gradient + w.parameter) * (ring(denseGroup) * denseParams + ring(expertGroup) * expertParams);
    const sync = costs.transfer(syncBytes, layout.gpusPerStage > layout.nodeSize || denseGroup > layout.nodeSize);
    const lastOfRank = ops.length > 0 ? [base + ops.length - 1] : [];
    // The tail waits for every op of the rank: its last compute op and any transfer still in flight.
    const tailDeps = ops.filter((o, i) => o.stream === 'comm' || i === ops.length - 1).map((o) => base + o.id);
    const syncId = tasks.push({ device: rank, stream: 'comm', ms: sync.ms, wire: sync.wire, deps: tailDeps.length ? tailDeps : lastOfRank }) - 1;
    origins.push({ rank, tail: 'zero1_sync' });
    const shard = denseParams / denseGroup + expertParams / expertGroup;
    tasks.push({ device: rank, stream: 'compute', ms: costs.update(shard).ms, deps: [syncId] });
    origins.push({ rank, tail: 'update' });
  });

  const result = runEngine(tasks, { devices: plan.ranks, commComputeShare: share });
  const stepMs = result.makespanMs;
  const ranks: RankFigures[] = plan.units.map((_, rank) => {
    const computeSpans: Span[] = [];
    const commSpans: Span[] = [];
    for (let i = offsets[rank]!; i < (offsets[rank + 1] ?? tasks.length); i++) {
      (tasks[i]!.stream === 'compute' ? computeSpans : commSpans).push([result.start[i]!, result.end[i]!]);
    }
    const busy = union(computeSpans);
    const comm = union(commSpans);
    const computeMs = total(busy);
    const exposedCommMs = uncovered(comm, busy);
    return { computeMs, commMs: total(comm), exposedCommMs, bubbleMs: Math.max(0, stepMs - computeMs - exposedCommMs) };
  });

  const profile = profileOf(config.profile);
  const tokensPerStep = layout.gpusPerStage * config.microBatches * config.tokensPerMicroBatch;
  // FLOPs summed over the representative GPUs, times the GPUs each stands for.
  const modelFlopsPerStep = modelFlopsPerGpuStep * layout.gpusPerStage;
  const stepS = stepMs / 1e3;
  return {
    config,
    layout,
    plan,
    stageLayers: stages.layers,
    stepMs,
    ranks,
    tokensPerStep,
    tokensPerSecondPerGpu: tokensPerStep / stepS / layout.gpus,
    modelFlopsPerStep,
    mfu: modelFlopsPerStep / (stepS * layout.gpus * peakFlops(profile, 'bf16')),
    mfuGemmPeak: modelFlopsPerStep / (stepS * layout.gpus * peakFlops(profile, m.gemmDtype)),
    memory: { parameterStages: memory.parameters, activationMicroBatches: memory.activations, paramsPerGpu },
    tasks: origins.map((origin, i) => ({ origin, start: result.start[i]!, end: result.end[i]!, stream: tasks[i]!.stream })),
    simulator: { tasks: tasks.length, events: result.events, wallMs: performance.now() - began },
  };
}

