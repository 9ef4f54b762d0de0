import { parseModelConfig, TINY_MODEL, TINY_TRAIN, trainReference } from '@moe/model';
import { describe, expect, it } from 'vitest';
import { trainInProcess } from './support/in-process-cluster';

// The stated tolerance of lossy wire codecs (README, apps/scheduler/src/parity.ts): per-step
// loss within 5e-2 relative of the f32 reference; measured worst 2.7e-2 (bf16), 3.0e-2 (fp8).
const LOSSY_TOLERANCE = 5e-2;
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 3 });
const train = { ...TINY_TRAIN, steps: 20 };
const reference = trainReference(model, train);
const owner = [0, 0, 1, 1, 2, 2, 3, 3];
const worstRelative = (losses: number[]) => Math.max(...losses.map((l, i) => Math.abs(l - reference.losses[i]!) / reference.losses[i]!));

describe('lossy wire codecs keep training on course and put fewer bytes on the wire', () => {
  it('bf16 and fp8 dispatch, bf16 combine: loss within the stated tolerance; bytes drop', async () => {
    const f32 = await trainInProcess({ model, train, world: 4, owner, schedule: 'naive' });
    const bf16 = await trainInProcess({ model, train, world: 4, owner, schedule: 'naive', dispatchCodec: 'bf16' });
    const fp8 = await trainInProcess({ model, train, world: 4, owner, schedule: 'overlapped', chunks: 2, dispatchCodec: 'fp8' });
    const both = await trainInProcess({ model, train, world: 4, owner, schedule: 'naive', dispatchCodec: 'bf16', combineCodec: 'bf16' });
    for (const run of [bf16, fp8, both]) {
      expect(worstRelative(run.losses)).toBeLessThan(LOSSY_TOLERANCE);
      // the replicas still agree with each other exactly
      for (const sums of run.checksums) expect(new Set(sums).size).toBe(1);
    }
    const total = (run: { bytesSent: number[] }) => run.bytesSent.reduce((a, b) => a + b, 0);
    // Dispatch is one of four all-to-alls: bf16 halves it, fp8 quarters it (plus scales);
    // both bf16 halves all four. Routing differs a little between runs, hence the margins.
    expect(total(bf16) / total(f32)).toBeLessThan(0.95);
    expect(total(fp8) / total(f32)).toBeLessThan(total(bf16) / total(f32));
    expect(total(both) / total(f32)).toBeLessThan(0.72);
  });
});
