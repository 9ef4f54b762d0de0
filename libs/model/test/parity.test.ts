/** The parity check's comparisons: losses step by step, parameters element by element, by name. */
import { describe, expect, it } from 'vitest';
import { checkParity, cloneParams, compareLosses, compareParams, denseParams, formatParity, initParams, namedParams, parseModelConfig, TINY_MODEL, type Tensor } from '../src/index';

const tensor = (values: number[], shape = [values.length]): Tensor => ({ shape, data: Float32Array.from(values) });

describe('compareLosses', () => {
  it('reports the largest relative difference and its step', () => {
    const c = compareLosses([2, 4.0004, 1], [2, 4, 1.0001]);
    expect(c.step).toBe(1);
    expect(c.maxRelative).toBeCloseTo(1e-4, 10);
    expect(c).toMatchObject({ actual: 4.0004, expected: 4 });
  });

  it('is zero for identical losses', () => {
    expect(compareLosses([1, 2], [1, 2]).maxRelative).toBe(0);
  });

  it('treats a NaN or infinite loss as an infinite difference', () => {
    expect(compareLosses([1, NaN], [1, 2])).toMatchObject({ maxRelative: Infinity, step: 1 });
    expect(compareLosses([Infinity], [Infinity]).maxRelative).toBe(Infinity);
  });

  it('refuses runs of different lengths', () => {
    expect(() => compareLosses([1, 2], [1])).toThrow('the run has 2 step losses but the reference has 1');
  });
});

describe('compareParams', () => {
  it('reports the largest absolute difference, its parameter and its element', () => {
    const a = new Map([
      ['x', tensor([1, 2, 3])],
      ['y', tensor([0, 0.5], [1, 2])],
    ]);
    const b = new Map([
      ['x', tensor([1, 2.001, 3])],
      ['y', tensor([0, 0.49], [1, 2])],
    ]);
    const c = compareParams(a, b);
    expect(c).toMatchObject({ name: 'y', index: 1, count: 2 });
    expect(c.maxAbsolute).toBeCloseTo(0.01, 6);
  });

  it('counts a NaN as an infinite difference', () => {
    expect(compareParams(new Map([['x', tensor([NaN])]]), new Map([['x', tensor([1])]])).maxAbsolute).toBe(Infinity);
  });

  it('refuses different parameter sets or shapes, naming them', () => {
    expect(() => compareParams(new Map([['x', tensor([1])]]), new Map([['z', tensor([1])]]))).toThrow(
      'parameter sets differ: missing from the run: z; not in the reference: x;',
    );
    expect(() => compareParams(new Map([['x', tensor([1, 2], [2, 1])]]), new Map([['x', tensor([1, 2], [1, 2])]]))).toThrow(
      'x: shape [2, 1] in the run, [1, 2] in the reference',
    );
  });
});

describe('checkParity of a run against the reference', () => {
  const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 4, layers: 2 });
  const reference = { losses: [3, 2.5, 2], params: initParams(model) };

  it('passes when losses and parameters agree within tolerance', () => {
    const run = { losses: [3, 2.5 * (1 + 5e-6), 2], params: cloneParams(reference.params) };
    run.params.head.data[0]! += 5e-5;
    const report = checkParity(run, reference);
    expect(report.ok).toBe(true);
    expect(report.params.name).toBe('head');
    expect(report.loss.step).toBe(1);
  });

  it('fails when one expert weight drifts beyond 1e-4, and says which', () => {
    const run = { losses: [...reference.losses], params: cloneParams(reference.params) };
    run.params.experts[1]![3]!.w2.data[17]! += 5e-4;
    const report = checkParity(run, reference);
    expect(report.ok).toBe(false);
    expect(report.params).toMatchObject({ name: 'layers.1.experts.3.w2', index: 17 });
    expect(formatParity(report)).toMatch(/^loss: max relative difference 0\.00e\+0 at step 0 .* ok\nparams: max absolute difference 5\.\d+e-4 in layers\.1\.experts\.3\.w2\[17\] .* EXCEEDS TOLERANCE$/);
  });

  it('fails when a loss differs by more than the relative tolerance', () => {
    const report = checkParity({ losses: [3, 2.5, 2.001], params: reference.params }, reference, { loss: 1e-5 });
    expect(report.ok).toBe(false);
    expect(report.loss.step).toBe(2);
  });

  it('honours other tolerances', () => {
    const report = checkParity({ losses: [3, 2.5, 2.001], params: reference.params }, reference, { loss: 1e-3 });
    expect(report.ok).toBe(true);
    expect(report.lossTolerance).toBe(1e-3);
  });

  it('names every parameter: dense ones as denseParams() does, experts as layers.l.experts.e.w', () => {
    const names = [...namedParams(reference.params).keys()];
    expect(names).toEqual(expect.arrayContaining(['embedding', 'layers.0.router', 'layers.1.experts.3.w1', 'head']));
    expect(names).toHaveLength(denseParams(reference.params).length + 2 * 4 * 3);
  });
});
