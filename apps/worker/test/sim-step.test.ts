/**
 * Whole sim steps on 4 in-process ranks: SimBackends driven by the StepExecutor over in-memory
 * transports wrapped in ShapedTransports (the modeled H800 links), as a worker process would.
 */
import { ShapedTransport, createInMemoryTransports, type Transport } from '@moe/comm';
import { TINY_MODEL, TINY_TRAIN, initParams, parseModelConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import type { Shard, StepBatch } from '../src/backend';
import { SimBackend } from '../src/backends/sim/index';
import type { ModeledModelInput } from '@moe/sim';
import { buildSchedule } from '@moe/schedule';
import { StepExecutor, type StepOutcome, type ExecuteSettings } from '../src/schedule/executor';
import type { Op } from '@moe/schedule';
import { shardOf as shardFor } from './support/shard';
import { commUnderCompute } from './support/overlap';

const WORLD = 4;
const NODE_SIZE = 2; // two modeled nodes of two GPUs: each rank has one NVLink peer and two IB peers
const OWNER = [0, 0, 1, 1, 2, 2, 3, 3];
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 2 });
const SETTINGS: ExecuteSettings = { dispatchCodec: 'f32', combineCodec: 'f32', timeoutMs: 30_000 };

/**
 * A MoE-heavy modeled layer, small enough for loopback: rows are 512 f32 values (2 KB), 8 routed
 * experts like the real model (2 a rank, so a chunk's grouped GEMM stays compute-bound), a tiny
 * attention and vocabulary.
 */
const MODELED: ModeledModelInput = {
  hiddenSize: 512,
  expertFfnSize: 1024,
  routedExperts: 8,
  attention: { heads: 1, qLoraRank: 0, kvLoraRank: 16, qkNopeHeadDim: 16, qkRopeHeadDim: 0, vHeadDim: 16 },
  seqLen: 64,
  vocabSize: 1024,
};

function shardOf(rank: number, backendOptions: Record<string, unknown>): Shard {
  return shardFor({ init: initParams(model), model, optimizer: TINY_TRAIN.optimizer, owner: OWNER, rank, world: WORLD, seqLen: 16, runId: 'sim-step', backendOptions });
}

const batchOf = (step: number, tokens: number): StepBatch => ({
  step,
  inputs: Int32Array.from({ length: tokens }, (_, i) => (i * 7 + step) % model.vocabSize),
  targets: Int32Array.from({ length: tokens }, (_, i) => (i * 7 + step + 1) % model.vocabSize),
  globalTokens: tokens * WORLD,
  globalSequences: (tokens * WORLD) / 16,
});

/** 4 sim ranks over shaped in-memory transports: what a worker does after LoadShard. */
async function simCluster(backendOptions: Record<string, unknown>) {
  const backends = Array.from({ length: WORLD }, () => new SimBackend());
  await Promise.all(backends.map((b, rank) => b.load(shardOf(rank, backendOptions))));
  const transports: Transport[] = createInMemoryTransports(WORLD).map((t, rank) => {
    const link = backends[rank]!.linkModel?.();
    return link ? new ShapedTransport(t, link) : t;
  });
  const executors = backends.map((b, rank) => new StepExecutor(b, transports[rank]!, OWNER));
  let nextStep = 0; // frames are keyed by step: every step of a run needs a new number
  return {
    backends,
    transports: transports as ShapedTransport[],
    /** One step on every rank; `wallMs` from the first start to the last finish. */
    async step(ops: readonly Op[], tokens: number): Promise<{ wallMs: number; outcomes: StepOutcome[] }> {
      const step = nextStep++;
      const t0 = performance.now();
      const outcomes = await Promise.all(executors.map((e) => e.run(ops, batchOf(step, tokens), SETTINGS)));
      return { wallMs: performance.now() - t0, outcomes };
    },
    close: () => Promise.all([...backends.map((b) => b.close()), ...transports.map((t) => t.close())]),
  };
}

describe('sim backend through the step executor, 4 in-memory ranks', () => {
  it('runs whole steps of both schedules: replicas agree, loss is ln(vocab), every slot routed', async () => {
    const cluster = await simCluster({ profile: 'H800', dilation: 20, model: MODELED, nodeSize: NODE_SIZE });
    for (const [kind, chunks] of [['naive', 1], ['overlapped', 4]] as const) {
      const ops = buildSchedule({ kind, layers: model.layers, chunks });
      const { outcomes } = await cluster.step(ops, 64);
      expect(new Set(outcomes.map((o) => o.checksum)).size).toBe(1);
      expect(outcomes.reduce((s, o) => s + o.lossSum, 0)).toBeCloseTo(Math.log(model.vocabSize), 6);
      for (const o of outcomes) {
        expect(o.counts.reduce((s, c) => s + c, 0)).toBe(64 * 2 * model.layers);
        expect(o.bytesSent).toBeGreaterThan(0);
        expect(o.timeline.filter((r) => r.name === 'experts')).toHaveLength(model.layers * chunks);
      }
      // Every compute op of the schedule was modeled once.
      const computeOps = ops.filter((op) => op.stream === 'compute').length;
      for (const b of cluster.backends) expect(b.stepRecords()).toHaveLength(computeOps);
    }
    expect(cluster.transports[0]!.hostBound().frames).toBeGreaterThan(0);
    // The sim hands out one array of pattern rows per row count, shared by every call (h and the
    // routed gradients): the executor and the all-to-alls only read it, so whole steps leave it as it was.
    const H = MODELED.hiddenSize!;
    const pattern = Float32Array.from({ length: H }, (_, i) => (((i * 37) % 101) - 50) / 100);
    for (const b of cluster.backends) {
      const shared = [...(Reflect.get(b, 'patternRows') as Map<number, Float32Array>).values()];
      expect(shared.length).toBeGreaterThan(0);
      for (const rows of shared) for (let r = 0; r < rows.length / H; r++) expect(rows.subarray(r * H, (r + 1) * H)).toEqual(pattern);
    }
    await cluster.close();
  });

  it('overlap is structural: the overlapped schedule runs comm under compute, naive and a one-stream chain never do', async () => {
    // Which ops were in flight together, from the recorded op intervals: no duration is asserted
    // (how much overlap buys is the bench's figure). The modeled times only make each op last.
    const cluster = await simCluster({ profile: 'H800', dilation: 20, model: MODELED, nodeSize: NODE_SIZE });
    const overlapped = buildSchedule({ kind: 'overlapped', layers: model.layers, chunks: 4 });
    const naive = buildSchedule({ kind: 'naive', layers: model.layers, chunks: 1 });
    // The planted bug: every op chained on one stream (what an executor ignoring streams would do).
    const chained = overlapped.map((op): Op => ({ ...op, stream: 'compute' }));
    const pairs = async (ops: readonly Op[]) => (await cluster.step(ops, 256)).outcomes.map((o) => commUnderCompute(o.timeline));
    const withOverlap = await pairs(overlapped);
    const withoutOverlap = { naive: await pairs(naive), chained: await pairs(chained) };
    await cluster.close();

    for (const [rank, found] of withOverlap.entries()) {
      // In every layer some all-to-all of the layer is in flight under the layer's compute (the shared
      // expert under a dispatch, or chunk i's experts under chunk i-1's combine: which one depends on
      // how fast a small frame arrives, so either counts).
      for (let layer = 0; layer < model.layers; layer++) {
        const underCompute = found.some((p) => / L(\d+)/.exec(p.compute)?.[1] === String(layer) && p.comm.includes(` L${layer}.`));
        expect(underCompute, `rank ${rank}, layer ${layer}: ${JSON.stringify(found)}`).toBe(true);
      }
    }
    for (const [name, ranks] of Object.entries(withoutOverlap)) {
      for (const [rank, found] of ranks.entries()) expect(found, `${name}, rank ${rank}`).toEqual([]);
    }
  });
});
