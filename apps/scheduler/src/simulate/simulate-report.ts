/**
 * The report folder of `moe simulate`: report.json (schema moe-simulate/1: every input with its
 * source, every figure), report.md, pipeline.svg (the step across pipeline ranks) and trace.json
 * (Chrome trace of chosen pipeline ranks, one GPU each, compute and comm tracks).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTrace, renderPipelineSvg, type OpRecordData, type PipelineBox } from '@moe/report';
import type { ClusterSimResult, TrainingCost } from '@moe/sim';

export interface SimulationReport {
  schema: 'moe-simulate/1';
  command: string;
  preset: string;
  config: ClusterSimResult['config'];
  /** Input -> where its value comes from (preset sources, with flags that overrode them). */
  sources: Record<string, string>;
  layout: ClusterSimResult['layout'] & { dpAttention: number; dpExperts: number; stages: number; layersPerStage: number[] };
  results: {
    step_ms: number;
    /** Per pipeline rank: compute busy, exposed communication, pipeline bubble (they add up to the step). */
    ranks: { rank: number; compute_ms: number; comm_ms: number; exposed_comm_ms: number; bubble_ms: number }[];
    bubble_ms: { min: number; max: number; mean: number };
    exposed_comm_ms: { min: number; max: number; mean: number };
    mfu_bf16_peak: number;
    mfu_gemm_peak: number;
    tokens_per_step: number;
    tokens_per_second_per_gpu: number;
    model_flops_per_step: number;
    memory: { parameter_stages: number[]; activation_micro_batches: number[]; params_per_gpu: number[] };
    cost: TrainingCost;
  };
  simulator: { tasks: number; events: number; wall_ms: number; peak_rss_mib: number };
}

const stats = (v: number[]) => ({ min: Math.min(...v), max: Math.max(...v), mean: v.reduce((a, b) => a + b, 0) / v.length });

export function buildSimulationReport(input: {
  command: string;
  preset: string;
  sources: Record<string, string>;
  result: ClusterSimResult;
  cost: TrainingCost;
  peakRssMib: number;
}): SimulationReport {
  const r = input.result;
  // Ranks holding a copy of stage 0 (DualPipe: 2): its parameters' ZeRO-1 group spans them all.
  const holders = r.plan.units.filter((units) => units.some((u) => (u.kind === 'F' ? u.chunk : u.kind === 'FB' ? u.forward : undefined)?.stage === 0)).length;
  return {
    schema: 'moe-simulate/1',
    command: input.command,
    preset: input.preset,
    config: r.config,
    sources: input.sources,
    layout: {
      ...r.layout,
      dpAttention: r.layout.gpusPerStage * holders,
      dpExperts: r.layout.epGroupsPerStage * holders,
      stages: r.plan.stages,
      layersPerStage: r.stageLayers.map((l) => l.length),
    },
    results: {
      step_ms: r.stepMs,
      ranks: r.ranks.map((f, rank) => ({ rank, compute_ms: f.computeMs, comm_ms: f.commMs, exposed_comm_ms: f.exposedCommMs, bubble_ms: f.bubbleMs })),
      bubble_ms: stats(r.ranks.map((f) => f.bubbleMs)),
      exposed_comm_ms: stats(r.ranks.map((f) => f.exposedCommMs)),
      mfu_bf16_peak: r.mfu,
      mfu_gemm_peak: r.mfuGemmPeak,
      tokens_per_step: r.tokensPerStep,
      tokens_per_second_per_gpu: r.tokensPerSecondPerGpu,
      model_flops_per_step: r.modelFlopsPerStep,
      memory: { parameter_stages: r.memory.parameterStages, activation_micro_batches: r.memory.activationMicroBatches, params_per_gpu: r.memory.paramsPerGpu },
      cost: input.cost,
    },
    simulator: { tasks: r.simulator.tasks, events: r.simulator.events, wall_ms: r.simulator.wallMs, peak_rss_mib: input.peakRssMib },
  };
}

const fmt = (v: number, digits = 1) => v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const big = (v: number) => (v >= 1e12 ? `${fmt(v / 1e12)}T` : v >= 1e9 ? `${fmt(v / 1e9)}B` : v >= 1e6 ? `${fmt(v / 1e6, 2)}M` : fmt(v, 0));

const hours = (h: number) => (h >= 1e5 ? `${fmt(h / 1e6, 3)}M` : fmt(h, 1));
const dollars = (d: number) => (d >= 1e5 ? `$${fmt(d / 1e6, 2)}M` : `$${fmt(d, 2)}`);

/** The lines `moe simulate` prints (and report.md repeats). */
export function summaryLines(report: SimulationReport): string[] {
  const c = report.config;
  const l = report.layout;
  const res = report.results;
  const profile = typeof c.profile === 'string' ? c.profile : c.profile.name;
  return [
    `${report.preset}: ${l.gpus} x ${profile} (nodes of ${l.nodeSize}), PP${l.pipelineRanks} ${c.schedule} (${l.stages} stages) x EP${l.expertParallel} x ZeRO-1 DP (${l.dpAttention} attention, ${l.dpExperts} experts); ${c.microBatches} micro-batches of ${c.tokensPerMicroBatch} tokens a GPU`,
    `step time            ${fmt(res.step_ms)} ms`,
    `pipeline bubble      ${fmt(res.bubble_ms.mean)} ms a rank on average (${fmt(res.bubble_ms.min)} - ${fmt(res.bubble_ms.max)}), ${fmt((100 * res.bubble_ms.mean) / res.step_ms)}% of the step`,
    `exposed comm         ${fmt(res.exposed_comm_ms.mean)} ms a rank on average (${fmt(res.exposed_comm_ms.min)} - ${fmt(res.exposed_comm_ms.max)}), ${fmt((100 * res.exposed_comm_ms.mean) / res.step_ms)}% of the step`,
    `MFU                  ${fmt(100 * res.mfu_bf16_peak)}% of dense BF16 peak (${fmt(100 * res.mfu_gemm_peak)}% of the ${c.model.gemmDtype.toUpperCase()} peak)`,
    `tokens/s/GPU         ${fmt(res.tokens_per_second_per_gpu, 0)} (${big(res.tokens_per_step)} tokens a step)`,
    `${`${big(res.cost.tokens)} tokens`.padEnd(21)}${hours(res.cost.gpuHours)} GPU-hours, ${fmt(res.cost.days)} days on ${res.cost.gpus} GPUs, ${dollars(res.cost.dollars)} at $${res.cost.pricePerGpuHour}/GPU-hour`,
    `simulated in ${fmt(report.simulator.wall_ms / 1e3, 2)} s (${report.simulator.tasks} ops, ${report.simulator.events} events, peak RSS ${fmt(report.simulator.peak_rss_mib, 0)} MiB)`,
  ];
}

export function renderSimulationMarkdown(report: SimulationReport): string {
  const lines = [`# moe simulate: ${report.preset}`, '', '```', ...summaryLines(report), '```', '', `Command: \`${report.command}\``, ''];
  lines.push('| rank | compute ms | comm ms | exposed comm ms | bubble ms |', '|---:|---:|---:|---:|---:|');
  for (const r of report.results.ranks) lines.push(`| ${r.rank} | ${fmt(r.compute_ms)} | ${fmt(r.comm_ms)} | ${fmt(r.exposed_comm_ms)} | ${fmt(r.bubble_ms)} |`);
  lines.push('', '## Inputs and their sources', '', '| input | source |', '|---|---|');
  for (const [k, v] of Object.entries(report.sources)) lines.push(`| ${k} | ${v.replace(/\|/g, '\\|')} |`);
  lines.push('', '![pipeline](pipeline.svg)', '');
  return lines.join('\n');
}

/** Chunk units of every rank as boxes (span of their compute ops), plus the ZeRO-1 tail. */
export function pipelineBoxes(r: ClusterSimResult): PipelineBox[][] {
  const boxes: PipelineBox[][] = r.plan.units.map(() => []);
  const spans = new Map<string, { start: number; end: number }>();
  const tailStart = r.plan.units.map(() => Infinity);
  const tailEnd = r.plan.units.map(() => 0);
  for (const t of r.tasks) {
    if ('tail' in t.origin) {
      tailStart[t.origin.rank] = Math.min(tailStart[t.origin.rank]!, t.start);
      tailEnd[t.origin.rank] = Math.max(tailEnd[t.origin.rank]!, t.end);
      continue;
    }
    if (t.stream !== 'compute') continue;
    const k = `${t.origin.rank}/${t.origin.op.unit}`;
    const s = spans.get(k);
    if (s) {
      s.start = Math.min(s.start, t.start);
      s.end = Math.max(s.end, t.end);
    } else spans.set(k, { start: t.start, end: t.end });
  }
  r.plan.units.forEach((units, rank) => {
    units.forEach((u, i) => {
      const s = spans.get(`${rank}/${i}`);
      if (!s) return;
      const chunk = u.kind === 'FB' ? u.forward : u.chunk;
      boxes[rank]!.push({ kind: u.kind, startMs: s.start, endMs: s.end, microBatch: chunk.microBatch, route: r.plan.routeOf[chunk.microBatch]! });
    });
    if (tailStart[rank]! < Infinity) boxes[rank]!.push({ kind: 'sync', startMs: tailStart[rank]!, endMs: tailEnd[rank]!, microBatch: -1, route: 0 });
  });
  return boxes;
}

/** The ops of `ranks` (pipeline ranks) as timelines the report's Chrome trace takes. */
export function rankTimelines(r: ClusterSimResult, ranks: number[]): OpRecordData[][] {
  const out: OpRecordData[][] = ranks.map(() => []);
  for (const t of r.tasks) {
    const at = ranks.indexOf(t.origin.rank);
    if (at < 0) continue;
    const name = 'tail' in t.origin ? t.origin.tail : `${t.origin.op.kind} m${t.origin.op.microBatch}`;
    const layer = 'tail' in t.origin ? -1 : t.origin.op.layer;
    const direction = 'tail' in t.origin ? 'update' : t.origin.op.direction;
    out[at]!.push({ name, stream: t.stream, layer, chunk: -1, startMs: t.start, endMs: t.end, bytesSent: 0, direction });
  }
  return out;
}

export async function writeSimulationReport(out: string, report: SimulationReport, result: ClusterSimResult, traceRanks: number[]): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const files = { json: join(out, 'report.json'), md: join(out, 'report.md'), svg: join(out, 'pipeline.svg'), trace: join(out, 'trace.json') };
  const res = report.results;
  const svg = renderPipelineSvg({
    title: `${report.preset}: one training step, ${report.config.schedule}, ${report.layout.pipelineRanks} pipeline ranks x ${report.config.microBatches} micro-batches`,
    subtitle: `step ${fmt(res.step_ms)} ms; bubble ${fmt(res.bubble_ms.mean)} ms and exposed communication ${fmt(res.exposed_comm_ms.mean)} ms a rank on average (simulated)`,
    stepMs: res.step_ms,
    ranks: pipelineBoxes(result),
  });
  const trace = buildTrace([
    {
      schedule: report.config.schedule,
      chunks: 1,
      ratio: 1,
      step: 0,
      stepMs: res.step_ms,
      timelines: rankTimelines(result, traceRanks),
      workerIds: traceRanks.map((r) => `pipeline rank ${r}`),
    },
  ]);
  await writeFile(files.json, JSON.stringify(report, (_k, v) => (v === Infinity ? 'Infinity' : v), 2) + '\n');
  await writeFile(files.md, renderSimulationMarkdown(report));
  await writeFile(files.svg, svg);
  await writeFile(files.trace, JSON.stringify(trace));
  return Object.values(files);
}
