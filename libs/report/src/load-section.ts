/**
 * The bench's expert load (report.json `load`): tokens per expert and per GPU over the measured
 * steps of the sweep's headline naive run, and, under skewed routing, the same step without and
 * with redundant experts (EPLB planned from the first run's measured loads): the imbalance
 * (max / mean tokens per GPU, from the tokens each copy took) and the step time of each.
 */
import type { ExpertLoadReport } from './expert-load';
import type { Range } from './types';

/** One skewed run: its placement's redundant experts and what the step measured. */
export interface SkewedLoadRow {
  /** Physical copies beyond the experts (0: one copy each, the contiguous placement). */
  redundant_experts: number;
  /** EPLB's policy for the copies ("none" without redundant experts). */
  policy: string;
  /** Each rank's experts, a prime marking a second copy ("r0: e0 e1; r1: ..."). */
  placement: string;
  step_ms: Range;
  /** Compute-stream busy time of the slowest worker (the hot rank's expert work shows here). */
  compute_ms: Range;
  /** max / mean tokens per GPU over the measured steps. */
  imbalance: number;
  /** [W] tokens each GPU's experts took, summed over layers and measured steps. */
  tokens_per_gpu: number[];
  load: ExpertLoadReport;
}

export interface BenchLoad {
  /** The sweep's routing (uniform), over the measured steps of the headline naive run ("naive at ratio 1"). */
  sweep: { run: string; load: ExpertLoadReport };
  /** Skewed routing (sim `routing: "skewed"`): the same run without, then with redundant experts. */
  skewed?: {
    schedule: string;
    ratio: number;
    /** The model's top-k in these runs (the skew puts every token's k slots on rank 0's experts). */
    top_k: number;
    rows: SkewedLoadRow[];
  };
}

const ms = (r: Range) => `${r.median.toFixed(0)} (${r.min.toFixed(0)}-${r.max.toFixed(0)})`;

/** report.md's "Expert load" section; empty without a load. */
export function loadSection(load: BenchLoad | undefined): string[] {
  if (!load) return [];
  const sweep = load.sweep.load;
  const lines = [
    '## Expert load',
    '',
    `Tokens routed to each expert over the ${sweep.steps} measured step(s) of ${load.sweep.run} (uniform routing), and the tokens each GPU's experts took: ` +
      `imbalance (max / mean tokens per GPU) ${sweep.overallImbalance.toFixed(3)} overall, per layer ${sweep.imbalance.map((x) => x.toFixed(3)).join(', ')}.`,
    '',
    '| layer | tokens per expert | tokens per GPU |',
    '|---:|:---|:---|',
    ...sweep.expertLoads.map((row, l) => `| ${l} | ${row.join(' ')} | ${sweep.tokensPerGpu[l]!.join(' ')} |`),
    '',
  ];
  const skewed = load.skewed;
  if (skewed) {
    lines.push(
      `Under skewed routing (every token's top-${skewed.top_k} on the experts rank 0 holds under the contiguous placement), ${skewed.schedule} at ratio ${skewed.ratio}, ` +
        'without and with redundant experts (EPLB planned from the first run\'s measured loads; a token takes the copy on its own node when there is one, ' +
        'then the copies in turn). Imbalance from the tokens each copy took; times in ms, median (min-max) over the measured steps.',
      '',
      '| redundant experts | policy | imbalance | tokens per GPU | step_ms | compute_ms (slowest worker) | placement |',
      '|---:|:---|---:|:---|---:|---:|:---|',
      ...skewed.rows.map((r) => `| ${r.redundant_experts} | ${r.policy} | ${r.imbalance.toFixed(3)} | ${r.tokens_per_gpu.join(' ')} | ${ms(r.step_ms)} | ${ms(r.compute_ms)} | ${r.placement} |`),
      '',
    );
  }
  lines.push('![Tokens per expert and per GPU, layer by layer](load-heatmap.svg)', '');
  return lines;
}

/** Lines for the terminal under the table; empty without a skewed comparison. */
export function loadLines(load: BenchLoad | undefined): string[] {
  const skewed = load?.skewed;
  if (!skewed) return [];
  const [base, ...others] = skewed.rows;
  return others.map(
    (r) =>
      `skewed routing (top-${skewed.top_k}, ${skewed.schedule}, ratio ${skewed.ratio}): imbalance ${base!.imbalance.toFixed(2)} -> ${r.imbalance.toFixed(2)} and step ${base!.step_ms.median.toFixed(0)} -> ${r.step_ms.median.toFixed(0)} ms ` +
      `(compute of the slowest worker ${base!.compute_ms.median.toFixed(0)} -> ${r.compute_ms.median.toFixed(0)} ms) with ${r.redundant_experts} redundant experts (EPLB ${r.policy})`,
  );
}
