/**
 * Property: any model config either validates and trains (2 reference steps, finite losses), or
 * is refused with a ConfigError whose every problem names a `model.` field. Never a crash of
 * another kind, never a NaN. Sizes stay tiny so 300+ runs take seconds.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseModelConfig, TINY_TRAIN, trainReference, type TrainConfig } from '../src/index';

const train: TrainConfig = { ...TINY_TRAIN, batchSequences: 2, seqLen: 4, steps: 2 };

/** Values no numeric field accepts. */
const junk = fc.constantFrom<unknown>(-1, -0.5, NaN, Infinity, -Infinity, '4', null, true, [], {}, 1e400);
/** Mostly `good`, now and then (1 in 25) something no field of its kind accepts. */
const mostly = (good: fc.Arbitrary<unknown>, bad: fc.Arbitrary<unknown>) => fc.oneof({ weight: 24, arbitrary: good }, { weight: 1, arbitrary: bad });
const size = (min: number, max: number) => mostly(fc.integer({ min, max }), fc.oneof(fc.constantFrom<unknown>(0, 1.5), junk));
const real = (min: number, max: number) => mostly(fc.double({ min, max, noNaN: true }), junk);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 6 });

const modelInput = fc
  .record({
    vocabSize: maybe(size(1, 8)),
    hiddenSize: maybe(size(1, 6)),
    expertFfnSize: maybe(size(1, 6)),
    routedExperts: maybe(size(1, 5)),
    sharedExperts: maybe(mostly(fc.integer({ min: 0, max: 2 }), junk)),
    topK: maybe(size(1, 6)),
    layers: maybe(size(1, 2)),
    scoreFunction: maybe(mostly(fc.constantFrom('softmax', 'sigmoid'), fc.constantFrom<unknown>('relu', 3))),
    balancing: maybe(mostly(fc.constantFrom('none', 'aux', 'bias'), fc.constantFrom<unknown>('both', null))),
    auxLossAlpha: maybe(real(0, 1)),
    biasUpdateSpeed: maybe(real(0, 0.1)),
    seed: maybe(mostly(fc.integer({ min: 0, max: 1000 }), junk)),
    rmsEps: maybe(real(1e-8, 1e-2)),
    typo: mostly(fc.constant(undefined), fc.constant(1)),
  })
  // Left-out fields take TINY_MODEL's (32-wide) values; keep the run tiny where they would.
  .map((m) => {
    const input: Record<string, unknown> = { hiddenSize: 4, expertFfnSize: 4, routedExperts: 4, topK: 2 };
    for (const [key, value] of Object.entries(m)) if (value !== undefined) input[key] = value;
    return input;
  });

describe('model config property', () => {
  it('every config is either refused naming its fields, or trains 2 steps to finite losses', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(modelInput, (input) => {
        let model;
        try {
          model = parseModelConfig(input);
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          const e = error as ConfigError;
          expect(e.problems.length).toBeGreaterThan(0);
          for (const p of e.problems) {
            expect(p.field).toMatch(/^model\.\w+$/);
            expect(p.message).toContain(p.field.replace('model.', ''));
          }
          refused++;
          return;
        }
        const result = trainReference(model, train);
        expect(result.losses).toHaveLength(2);
        for (const loss of [...result.losses, ...result.auxLosses]) expect(Number.isFinite(loss)).toBe(true);
        accepted++;
      }),
      { numRuns: 400, seed: 20261129 },
    );
    // Both outcomes were exercised.
    expect(accepted).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(50);
  });
});
