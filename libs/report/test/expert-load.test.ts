/** The expert-load section of a report and its heatmap. */
import { describe, expect, it } from 'vitest';
import { expertLoadReport, renderLoadHeatmapSvg } from '../src/index';

describe('expertLoadReport', () => {
  // 2 layers, 4 experts on 2 ranks (experts 0,1 on rank 0), two steps.
  const steps = [
    [5, 3, 1, 1, 2, 2, 2, 2],
    [5, 1, 1, 1, 2, 2, 2, 2],
  ];
  const load = expertLoadReport(steps, 2, [0, 0, 1, 1], 2);

  it('sums counts per (layer, expert) over the steps and per rank under the placement', () => {
    expect(load.expertLoads).toEqual([[10, 4, 2, 2], [4, 4, 4, 4]]);
    expect(load.tokensPerGpu).toEqual([[14, 4], [8, 8]]);
  });

  it('imbalance = max / mean tokens per GPU, per layer and overall', () => {
    expect(load.imbalance).toEqual([14 / 9, 1]);
    expect(load.overallImbalance).toBeCloseTo(22 / 17, 12);
  });

  it('refuses counts of the wrong length', () => {
    expect(() => expertLoadReport([[1, 2, 3]], 2, [0, 0, 1, 1], 2)).toThrow('expert counts of a step have 3 entries, expected layers*experts = 2*4');
  });

  it('the heatmap has a cell per (layer, expert) and per (layer, GPU), the hottest darkest', () => {
    const svg = renderLoadHeatmapSvg(load);
    expect(svg.match(/<rect [^>]*><title>layer \d, e\d: /g)).toHaveLength(8);
    expect(svg.match(/<rect [^>]*><title>layer \d, gpu \d: /g)).toHaveLength(4);
    expect(svg).toContain('<title>layer 0, e0: 10 tokens</title>');
    expect(svg).toMatch(/fill="#c0392b"><title>layer 0, e0: 10 tokens/);
    expect(svg).toContain('imbalance 1.556');
  });
});

describe('expertLoadReport with redundant experts', () => {
  // 1 layer, 2 experts on 2 ranks; expert 0 has a copy on each rank (physical 0 on rank 0, 2 on rank 1).
  const physical = { physicalToLogical: [0, 1, 0], physicalOwner: [0, 1, 1], stepCounts: [[6, 2, 4], [4, 2, 6]] };
  const load = expertLoadReport([[10, 2], [10, 2]], 1, [0, 1], 2, physical);

  it('counts tokens per GPU where each copy took them, not at the expert\'s first copy', () => {
    expect(load.expertLoads).toEqual([[20, 4]]);
    expect(load.physical!.loads).toEqual([[10, 4, 10]]);
    expect(load.tokensPerGpu).toEqual([[10, 14]]);
    expect(load.overallImbalance).toBeCloseTo(14 / 12, 12);
  });

  it('the heatmap lists every GPU\'s copies', () => {
    expect(renderLoadHeatmapSvg(load)).toContain('0: e0  1: e1,e0');
  });

  it('refuses physical counts of the wrong length', () => {
    expect(() => expertLoadReport([[1, 1]], 1, [0, 1], 2, { ...physical, stepCounts: [[1, 2]] })).toThrow('physical expert counts of a step have 2 entries, expected layers*physical experts = 1*3');
  });
});
