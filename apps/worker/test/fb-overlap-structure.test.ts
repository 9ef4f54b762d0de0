/**
 * fb-overlap, checked from the ops' recorded intervals (no duration is asserted): on 4 sim ranks
 * over shaped in-memory links, while one micro-batch's all-to-all is in flight another
 * micro-batch's compute runs, and the expert weight gradients (experts_wgrad) run after their
 * chunk's input gradients were sent, while an all-to-all is in flight.
 */
import { ShapedTransport, createInMemoryTransports, type OpRecordData, type Transport } from '@moe/comm';
import { TINY_MODEL, TINY_TRAIN, initParams, parseModelConfig } from '@moe/model';
import { buildSchedule } from '@moe/schedule';
import { describe, expect, it } from 'vitest';
import { SimBackend } from '../src/backends/sim/index';
import { StepExecutor } from '../src/schedule/executor';
import { microBatchesOf } from '../src/schedule/micro-batches';
import { shardOf } from './support/shard';

const WORLD = 4;
const OWNER = [0, 0, 1, 1, 2, 2, 3, 3];
const SEQ_LEN = 16;
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2 });
const A2A = new Set(['dispatch', 'combine', 'combine_bwd', 'dispatch_bwd']);

/** One fb-overlap step (M micro-batches) on every rank; each rank's timeline. */
async function fbOverlapTimelines(microBatches: number, chunks: number, latencyScale = 1): Promise<OpRecordData[][]> {
  const backendOptions = {
    profile: 'H800',
    dilation: 20,
    latencyScale,
    nodeSize: 2,
    model: { hiddenSize: 256, expertFfnSize: 512, routedExperts: 8, attention: { heads: 1 }, seqLen: SEQ_LEN, vocabSize: 512 },
  };
  const backends = Array.from({ length: WORLD }, () => new SimBackend());
  await Promise.all(
    backends.map((b, rank) =>
      b.load(shardOf({ init: initParams(model), model, optimizer: TINY_TRAIN.optimizer, owner: OWNER, rank, world: WORLD, seqLen: SEQ_LEN, backendOptions })),
    ),
  );
  const transports: Transport[] = createInMemoryTransports(WORLD).map((t, rank) => new ShapedTransport(t, backends[rank]!.linkModel()!));
  const ops = buildSchedule({ kind: 'fb-overlap', layers: model.layers, chunks, microBatches });
  const tokens = SEQ_LEN * 2 * microBatches;
  const batch = (rank: number) => ({
    step: 0,
    inputs: Int32Array.from({ length: tokens }, (_, i) => (i * 7 + rank) % model.vocabSize),
    targets: Int32Array.from({ length: tokens }, (_, i) => (i * 7 + rank + 1) % model.vocabSize),
    globalTokens: tokens * WORLD,
    globalSequences: (tokens * WORLD) / SEQ_LEN,
  });
  try {
    const outcomes = await Promise.all(
      backends.map((b, rank) =>
        new StepExecutor(b, transports[rank]!, OWNER).run(ops, microBatchesOf(batch(rank), SEQ_LEN, microBatches), {
          dispatchCodec: 'f32',
          combineCodec: 'f32',
          timeoutMs: 30_000,
        }),
      ),
    );
    return outcomes.map((o) => o.timeline);
  } finally {
    await Promise.all([...backends.map((b) => b.close()), ...transports.map((t) => t.close())]);
  }
}

/** Pairs (all-to-all of micro-batch a, compute op of micro-batch b != a) whose intervals overlap. */
function crossMicroBatchOverlaps(timeline: readonly OpRecordData[]): { a2a: OpRecordData; compute: OpRecordData }[] {
  const a2as = timeline.filter((r) => A2A.has(r.name));
  const computes = timeline.filter((r) => r.stream === 'compute' && (r.microBatch ?? 0) >= 0);
  return a2as.flatMap((a2a) =>
    computes
      .filter((c) => c.microBatch !== a2a.microBatch && c.startMs < a2a.endMs && a2a.startMs < c.endMs)
      .map((compute) => ({ a2a, compute })),
  );
}

describe('fb-overlap on 4 sim ranks: recorded op intervals', () => {
  it.each([
    [2, 1],
    [4, 1],
    [3, 2],
  ])("M=%i, C=%i: in every pair, each micro-batch's all-to-alls travel under the other's compute", async (microBatches, chunks) => {
    // Links slow enough (~5 ms of modeled latency a frame) that an all-to-all is still in flight when the other micro-batch's compute reaches the device, even on a loaded machine.
    const timelines = await fbOverlapTimelines(microBatches, chunks, 50);
    for (const [rank, timeline] of timelines.entries()) {
      expect(new Set(timeline.map((r) => r.microBatch)), `rank ${rank}`).toEqual(new Set([-1, ...Array.from({ length: microBatches }, (_, m) => m)]));
      const overlaps = crossMicroBatchOverlaps(timeline);
      for (let i = 1; i < microBatches; i++) {
        // the backward of i-1 hidden under the forward of i, and the forward of i under the backward of i-1
        const bUnderF = overlaps.some((o) => o.a2a.microBatch === i - 1 && o.a2a.direction === 'backward' && o.compute.microBatch === i && o.compute.direction === 'forward');
        const fUnderB = overlaps.some((o) => o.a2a.microBatch === i && o.a2a.direction === 'forward' && o.compute.microBatch === i - 1 && o.compute.direction === 'backward');
        expect(bUnderF, `rank ${rank}: micro-batch ${i - 1}'s backward all-to-alls overlap micro-batch ${i}'s forward compute`).toBe(true);
        expect(fUnderB, `rank ${rank}: micro-batch ${i}'s forward all-to-alls overlap micro-batch ${i - 1}'s backward compute`).toBe(true);
      }
    }
  });

  it.each([
    [2, 1],
    [3, 2],
  ])("M=%i, C=%i: each chunk's expert weight gradients run after its input gradients left, starting while an all-to-all is in flight", async (microBatches, chunks) => {
    // Links slow enough (every frame ~50 ms of modeled latency) that an all-to-all outlasts the hand-over of the next op to the device, even on a loaded machine.
    const timelines = await fbOverlapTimelines(microBatches, chunks, 500);
    for (const [rank, timeline] of timelines.entries()) {
      const wgrads = timeline.filter((r) => r.name === 'experts_wgrad');
      expect(wgrads, `rank ${rank}`).toHaveLength(timeline.filter((r) => r.name === 'experts_dgrad').length);
      expect(wgrads.length).toBe(2 * chunks * microBatches);
      const a2as = timeline.filter((r) => A2A.has(r.name));
      for (const w of wgrads) {
        const where = `rank ${rank}: experts_wgrad L${w.layer} C${w.chunk} M${w.microBatch}`;
        const sent = a2as.find((r) => r.name === 'dispatch_bwd' && r.microBatch === w.microBatch && r.layer === w.layer && r.chunk === w.chunk)!;
        // deferred: the chunk's input gradients were on their way before its weight gradients began
        expect(sent.startMs, where).toBeLessThanOrEqual(w.startMs);
      }
      // a layer's weight gradients start right after its input gradients went out: an all-to-all is in flight then
      for (const first of wgrads.filter((w) => w.chunk === 0)) {
        const where = `rank ${rank}: experts_wgrad L${first.layer} C0 M${first.microBatch}`;
        expect(a2as.some((r) => r.startMs <= first.startMs && first.startMs < r.endMs), where).toBe(true);
      }
    }
  });
});

