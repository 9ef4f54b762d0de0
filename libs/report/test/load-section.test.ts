/** The bench's expert-load section: report.md's tables, the terminal line, load-heatmap.svg, and report.json's check. */
import { describe, expect, it } from 'vitest';
import { expertLoadReport, loadLines, loadSection, renderBenchLoadSvg, validateReport, type BenchLoad } from '../src/index';

const range = (median: number) => ({ min: median - 1, median, max: median + 1 });
const skewedLoad = expertLoadReport([[8, 8, 0, 0]], 1, [0, 0, 1, 1], 2);
const spread = expertLoadReport([[8, 8, 0, 0]], 1, [0, 0, 1, 1], 2, { physicalToLogical: [0, 1, 2, 3, 0, 1], physicalOwner: [0, 0, 0, 1, 1, 1], stepCounts: [[4, 4, 0, 0, 4, 4]] });
const load: BenchLoad = {
  sweep: { run: 'naive at ratio 1', load: expertLoadReport([[3, 1, 2, 2]], 1, [0, 0, 1, 1], 2) },
  skewed: {
    schedule: 'naive',
    ratio: 1,
    top_k: 2,
    rows: [
      { redundant_experts: 0, policy: 'none', placement: 'r0: e0 e1; r1: e2 e3', step_ms: range(500), compute_ms: range(300), imbalance: skewedLoad.overallImbalance, tokens_per_gpu: [16, 0], load: skewedLoad },
      { redundant_experts: 2, policy: 'global', placement: "r0: e0 e1 e2; r1: e3 e0' e1'", step_ms: range(320), compute_ms: range(160), imbalance: spread.overallImbalance, tokens_per_gpu: [8, 8], load: spread },
    ],
  },
};

describe('the bench\'s expert load', () => {
  it('report.md: the sweep\'s tokens per expert and per GPU, and a row per skewed run', () => {
    const md = loadSection(load).join('\n');
    expect(md).toContain('| 0 | 3 1 2 2 | 4 4 |');
    expect(md).toContain('imbalance (max / mean tokens per GPU) 1.000 overall');
    expect(md).toContain('| 0 | none | 2.000 | 16 0 | 500 (499-501) | 300 (299-301) | r0: e0 e1; r1: e2 e3 |');
    expect(md).toContain("| 2 | global | 1.000 | 8 8 | 320 (319-321) | 160 (159-161) | r0: e0 e1 e2; r1: e3 e0' e1' |");
    expect(loadSection(undefined)).toEqual([]);
  });

  it('the terminal line quotes imbalance and step time without and with redundant experts', () => {
    expect(loadLines(load)).toEqual([
      'skewed routing (top-2, naive, ratio 1): imbalance 2.00 -> 1.00 and step 500 -> 320 ms (compute of the slowest worker 300 -> 160 ms) with 2 redundant experts (EPLB global)',
    ]);
  });

  it('load-heatmap.svg stacks the sweep and each skewed run', () => {
    const svg = renderBenchLoadSvg(load);
    expect(svg.match(/<svg /g)).toHaveLength(4);
    expect(svg).toContain('Skewed routing, 2 redundant experts (EPLB global)');
    expect(svg).toContain('<title>layer 0, gpu 1: 8 tokens</title>');
  });

  it('report.json\'s check reads the load when there is one', () => {
    const bad = { ...load, skewed: { ...load.skewed!, rows: [{ ...load.skewed!.rows[0]!, imbalance: 0.5 }] } };
    const problems = validateReport({ schema: 'moe-bench/1', load: bad }).filter((p) => p.startsWith('load'));
    expect(problems).toEqual(['load.skewed.rows[0].imbalance: 0.5 is below 1']);
  });
});
