/** Parameter names and shapes are defined once: every reader of a name agrees with `initParams` and `denseParams`. */
import { describe, expect, it } from 'vitest';
import { denseFrom, denseParams, denseShapes, expertFrom, expertParamName, expertShapes, initParams, isRouterBias, namedParams, parseExpertParamName, parseModelConfig, routedExpertParams, TINY_MODEL } from '../src/index';

const model = parseModelConfig({ ...TINY_MODEL, layers: 2, sharedExperts: 1, routedExperts: 4, hiddenSize: 8, expertFfnSize: 12 });
const params = initParams(model);

describe('parameter names', () => {
  it('denseShapes gives every dense parameter with the shape initParams makes, in denseParams order', () => {
    const dense = denseParams(params);
    expect([...denseShapes(model)]).toEqual(dense.map((p) => [p.name, p.tensor.shape]));
  });

  it('denseFrom is the inverse of denseParams: the same tensors land in the same places', () => {
    const byName = new Map(denseParams(params).map((p) => [p.name, p.tensor]));
    const rebuilt = denseFrom(model, (name) => byName.get(name)!);
    expect(rebuilt.layers[1]!.router).toBe(params.layers[1]!.router);
    expect(rebuilt.layers[0]!.shared[0]!.w2).toBe(params.layers[0]!.shared[0]!.w2);
    expect(denseParams(rebuilt).map((p) => p.tensor)).toEqual(denseParams(params).map((p) => p.tensor));
  });

  it('expertFrom asks for w1, w3, w2 with their shapes', () => {
    const asked: [string, number[]][] = [];
    const e = expertFrom(model, (w, shape) => (asked.push([w, shape]), params.experts[0]![2]![w]));
    expect(asked).toEqual(Object.entries(expertShapes(model)));
    expect(e.w3).toBe(params.experts[0]![2]!.w3);
  });

  it('an expert name parses back to its layer, expert and weight; other names do not parse', () => {
    for (const p of routedExpertParams(params)) {
      const parsed = parseExpertParamName(p.name)!;
      expect(expertParamName(parsed.layer, parsed.expert, parsed.weight)).toBe(p.name);
    }
    expect(parseExpertParamName('layers.1.experts.3.w2')).toEqual({ layer: 1, expert: 3, weight: 'w2' });
    expect(parseExpertParamName('layers.0.shared.0.w1')).toBeUndefined();
    expect(parseExpertParamName('layers.0.experts.1.w4')).toBeUndefined();
  });

  it('namedParams holds every dense and routed parameter once; only router biases count as router biases', () => {
    const named = namedParams(params);
    expect(named.size).toBe(denseParams(params).length + model.layers * model.routedExperts * 3);
    expect([...named.keys()].filter(isRouterBias)).toEqual(['layers.0.router_bias', 'layers.1.router_bias']);
  });
});
