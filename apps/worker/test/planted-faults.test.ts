/**
 * Every planted fault fails the parity check, in f32 and with each lossy codec mode; with no
 * fault the same check passes. The reference mirrors the run's codecs and summation order, so
 * the check runs at the f32 tolerances in every mode (loss 1e-5 relative, params 1e-4 absolute).
 */
import type { CodecName } from '@moe/comm';
import { namedParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference, type TrainConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { faultFromEnv, SINGLE_COPY_FAULT_NAMES, UnknownFaultError, type FaultName } from '../src/schedule/faults';
import { maxAbsDiff, mirrorOf, trainInProcess } from './support/in-process-cluster';

const LOSS_TOLERANCE = 1e-5;
const PARAM_TOLERANCE = 1e-4;
const model = parseModelConfig({ ...TINY_MODEL, layers: 2 });
const train: TrainConfig = { ...TINY_TRAIN, steps: 4 };
const world = 4;
const owner = [0, 0, 1, 1, 2, 2, 3, 3];
const chunks = 2; // overlapped with 2 chunks: the stale-chunk fault has a chunk to go stale
const MODES: [CodecName, CodecName][] = [
  ['f32', 'f32'],
  ['bf16', 'f32'],
  ['fp8', 'f32'],
  ['fp8', 'bf16'],
];

async function parityOf(dispatchCodec: CodecName, combineCodec: CodecName, fault?: FaultName) {
  const codecs = { dispatchCodec, combineCodec };
  const reference = trainReference(model, train, { mirror: mirrorOf({ train, world, chunks, ...codecs }) });
  const run = await trainInProcess({ model, train, world, owner, schedule: 'overlapped', chunks, ...codecs, ...(fault ? { fault } : {}) });
  const loss = Math.max(...run.losses.map((l, i) => Math.abs(l - reference.losses[i]!) / Math.abs(reference.losses[i]!)));
  const params = maxAbsDiff(run.params, namedParams(reference.params)).max;
  return { loss, params, ok: loss <= LOSS_TOLERANCE && params <= PARAM_TOLERANCE };
}

describe.each(MODES)('parity check, dispatch %s, combine %s', (dispatchCodec, combineCodec) => {
  it('passes with no fault', async () => {
    const parity = await parityOf(dispatchCodec, combineCodec);
    expect(parity.ok, JSON.stringify(parity)).toBe(true);
  });

  // The redundant-expert faults are planted on a replicated placement in replica-parity.test.ts.
  it.each(SINGLE_COPY_FAULT_NAMES)('fails with the planted fault %s', async (fault) => {
    const parity = await parityOf(dispatchCodec, combineCodec, fault);
    expect(parity.ok, `${fault}: ${JSON.stringify(parity)}`).toBe(false);
  });
});

describe('the fault switch', () => {
  it('is off unless MOE_FAULT names a fault, and refuses unknown names', () => {
    expect(faultFromEnv({})).toBeUndefined();
    expect(faultFromEnv({ MOE_FAULT: '' })).toBeUndefined();
    expect(faultFromEnv({ MOE_FAULT: 'wrong-expert' })?.name).toBe('wrong-expert');
    expect(() => faultFromEnv({ MOE_FAULT: 'drop-everything' })).toThrow(UnknownFaultError);
    expect(() => faultFromEnv({ MOE_FAULT: 'drop-everything' })).toThrow(/not a planted fault; known: drop-peer-rows/);
  });
});
