import type { CodecName } from '@moe/comm';
import { namedParams, parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { maxAbsDiff, mirrorOf, trainInProcess } from './support/in-process-cluster';

// With the reference mirroring the run's codec round trips and summation order, a lossy run is
// held to the f32 tolerances; how far it drifts from the f32 trajectory is measured by
// apps/scheduler/bench/codec-drift.bench.ts, not asserted.
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 3 });
const train = { ...TINY_TRAIN, steps: 6 };
const owner = [0, 0, 1, 1, 2, 2, 3, 3];
const world = 4;

async function runAndCompare(schedule: string, chunks: number, dispatchCodec: CodecName, combineCodec: CodecName) {
  const run = await trainInProcess({ model, train, world, owner, schedule, chunks, dispatchCodec, combineCodec });
  const reference = trainReference(model, train, { mirror: mirrorOf({ train, world, chunks, dispatchCodec, combineCodec }) });
  const loss = Math.max(...run.losses.map((l, i) => Math.abs(l - reference.losses[i]!) / reference.losses[i]!));
  return { run, loss, params: maxAbsDiff(run.params, namedParams(reference.params)) };
}

describe('lossy wire codecs match the reference that rounds where they round, and put fewer bytes on the wire', () => {
  it('bf16 and fp8 dispatch, bf16 combine, naive and overlapped: f32 tolerances; bytes drop', async () => {
    const f32 = await runAndCompare('naive', 1, 'f32', 'f32');
    const bf16 = await runAndCompare('naive', 1, 'bf16', 'f32');
    const fp8 = await runAndCompare('overlapped', 2, 'fp8', 'f32');
    const both = await runAndCompare('naive', 1, 'bf16', 'bf16');
    const mixed = await runAndCompare('overlapped', 3, 'fp8', 'bf16');
    for (const [name, r] of Object.entries({ f32, bf16, fp8, both, mixed })) {
      expect(r.loss, `${name}: loss`).toBeLessThanOrEqual(1e-5);
      expect(r.params.max, `${name}: worst parameter ${r.params.name}`).toBeLessThanOrEqual(1e-4);
      // the replicas still agree with each other exactly
      for (const sums of r.run.checksums) expect(new Set(sums).size).toBe(1);
    }
    const total = (r: { run: { bytesSent: number[] } }) => r.run.bytesSent.reduce((a, b) => a + b, 0);
    // Dispatch is one of four all-to-alls: bf16 halves it, fp8 quarters it (plus scales);
    // both bf16 halves all four. Routing differs a little between runs, hence the margins.
    expect(total(bf16) / total(f32)).toBeLessThan(0.95);
    expect(total(fp8) / total(f32)).toBeLessThan(total(bf16) / total(f32));
    expect(total(both) / total(f32)).toBeLessThan(0.72);
  }, 240_000); // five small trainings and their references on one core; no figure depends on it
});
