/** `moe plan`'s input and output: the loads file forms, the JSON summary, the readable table. */
import { describe, expect, it } from 'vitest';
import { formatPlan, parseLoads, planSummary, rebalanceExperts, PlacementError } from '../src/index';

describe('parseLoads', () => {
  it('reads [layers][experts], one layer, and the expertLoads / loads of an object', () => {
    expect(parseLoads('[[1,2],[3,4]]', 'f')).toEqual([[1, 2], [3, 4]]);
    expect(parseLoads('[5, 6, 7]', 'f')).toEqual([[5, 6, 7]]);
    expect(parseLoads('{"expertLoads": [[1, 0]]}', 'f')).toEqual([[1, 0]]);
    expect(parseLoads('{"loads": [2, 3]}', 'f')).toEqual([[2, 3]]);
  });

  it.each([
    ['{', 'loads.json is not valid JSON'],
    ['{"x": 1}', 'loads.json: an object needs an "expertLoads" or "loads" field'],
    ['[]', 'loads.json: expected a non-empty array'],
    ['[[1, -1]]', 'loads.json: layer 0 must be a non-empty array of finite loads >= 0'],
    ['[[1], "a"]', 'loads.json: layer 1 must be'],
  ])('refuses %s, naming the file', (text, message) => {
    expect(() => parseLoads(text, 'loads.json')).toThrow(PlacementError);
    expect(() => parseLoads(text, 'loads.json')).toThrow(message);
  });
});

describe('the plan as JSON and as a table', () => {
  const weight = [[100, 1, 1, 1]];
  const options = { replicas: 8, groups: 1, nodes: 1, gpus: 4 };
  const summary = planSummary(weight, options, rebalanceExperts(weight, options));

  it('the summary carries the maps, the GPU loads and the imbalance before and after', () => {
    // Five replicas of 20 and three of 1, heaviest first into the lightest GPU with room.
    expect(summary.physicalToLogical).toEqual([[0, 0, 0, 1, 0, 2, 0, 3]]);
    expect(summary.logicalCount).toEqual([[5, 1, 1, 1]]);
    expect(summary.gpuLoads).toEqual([[40, 21, 21, 21]]);
    expect(summary.imbalanceBefore[0]).toBeCloseTo(100 / 25.75, 9);
    expect(summary.imbalanceAfter[0]).toBeCloseTo(40 / 25.75, 9);
  });

  it('the table lists every GPU with its replicas, their share of the load, and the GPU total', () => {
    const text = formatPlan(weight, summary);
    expect(text).toContain('policy hierarchical: 8 replicas on 4 GPUs in 1 node(s), 2 per GPU');
    expect(text).toContain('layer 0: imbalance (max/mean tokens per GPU) 3.883 without replicas -> 1.553 with this plan');
    expect(text).toMatch(/gpu  0 \(node 0\): e0 20, e0 20 +\| 40/);
    expect(text).toContain('replicated: e0 x5');
  });
});
