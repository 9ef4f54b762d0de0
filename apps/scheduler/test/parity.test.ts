import { namedTensorMsg, type FetchParamsResponseOut } from '@moe/comm';
import { denseParams, expertParams, initParams, parseModelConfig, TINY_MODEL, type ModelParams, type Tensor } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { ParityError } from '../src/errors';
import { compareParams, namedParams } from '@moe/model';
import { assembleParams } from '../src/run/parity';
import { planExperts } from '@moe/placement';

const tensor = (values: number[], shape = [values.length]): Tensor => ({ shape, data: Float32Array.from(values) });

describe('assembleParams from FetchParams replies', () => {
  const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 5, layers: 2 });
  const owner = planExperts(5, 2, 'round-robin');
  const source = initParams({ ...model, seed: 99 });

  function replies(params: ModelParams, tweak?: (r: FetchParamsResponseOut[]) => void): FetchParamsResponseOut[] {
    const out: FetchParamsResponseOut[] = [0, 1].map(() => ({
      denseParams: denseParams(params).map((p) => namedTensorMsg(p.name, p.tensor)),
      experts: [],
    })) as unknown as FetchParamsResponseOut[];
    params.experts.forEach((layer, l) =>
      layer.forEach((e, id) => out[owner[id]!]!.experts.push({ layer: l, expert: id, params: expertParams(e).map((p) => namedTensorMsg(p.name, p.tensor)) } as never)),
    );
    tweak?.(out);
    return out;
  }

  it('takes dense parameters from rank 0 and each expert from its owner', () => {
    const assembled = assembleParams(model, replies(source), owner);
    expect(compareParams(namedParams(assembled), namedParams(source)).maxAbsolute).toBe(0);
  });

  it('refuses an expert returned by a rank that does not own it', () => {
    const bad = replies(source, (r) => r[0]!.experts.push(r[1]!.experts[0]!));
    expect(() => assembleParams(model, bad, owner)).toThrow(ParityError);
    expect(() => assembleParams(model, bad, owner)).toThrow(/expert 1 belongs to rank 1/);
  });

  it('refuses a missing expert, naming it and its owner', () => {
    const bad = replies(source, (r) => r[1]!.experts.pop());
    expect(() => assembleParams(model, bad, owner)).toThrow('expert 3 of layer 1 was not returned by its owner, rank 1');
  });

  it('refuses a dense parameter of the wrong shape', () => {
    const bad = replies(source, (r) => {
      r[0]!.denseParams[0] = namedTensorMsg('embedding', tensor([1, 2, 3])) as never;
    });
    expect(() => assembleParams(model, bad, owner)).toThrow(/FetchParams on rank 0: embedding has shape \[3\], expected \[\d+, \d+\]/);
  });
});
