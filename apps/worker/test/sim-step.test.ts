/**
 * Whole sim steps on 4 in-process ranks: SimBackends driven by the StepExecutor over in-memory
 * transports wrapped in ShapedTransports (the modeled H800 links), as a worker process would.
 */
import { ShapedTransport, createInMemoryTransports, type HostBoundReport, type Transport } from '@moe/comm';
import { TINY_MODEL, TINY_TRAIN, initParams, parseModelConfig } from '@moe/model';
import { describe, expect, it } from 'vitest';
import type { Shard, StepBatch } from '../src/backend';
import { SimBackend } from '../src/backends/sim/index';
import { CostModel, computeScaleForRatio, estimateStep, resolveModeledModel, type ModeledModelInput } from '@moe/sim';
import { buildSchedule } from '@moe/schedule';
import { StepExecutor, type StepOutcome, type ExecuteSettings } from '../src/schedule/executor';
import type { Op } from '@moe/schedule';
import { shardOf as shardFor } from './support/shard';

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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

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
    await cluster.close();
  });

  it('at compute-to-communication ratio 1, the overlapped schedule (4 chunks) beats naive', async () => {
    const tokens = 1024;
    // Dilation sets the modeled all-to-alls to about 400 ms a step; computeScale makes the experts'
    // compute (shared + routed, forward + backward) equal to them: ratio 1 where overlap can act.
    const at1 = (dilation: number, computeScale = 1, chunks = 1) =>
      estimateStep({
        costs: new CostModel(resolveModeledModel(MODELED), 'H800', { worldSize: WORLD, layers: model.layers, dilation, computeScale }),
        tokens,
        topK: model.topK,
        nodeSize: NODE_SIZE,
        chunks,
      });
    const dilation = 400 / at1(1).commMs;
    const computeScale = computeScaleForRatio(1, at1(dilation), 'moe');
    const estimate = at1(dilation, computeScale);
    const chunked = at1(dilation, computeScale, 4);
    const cluster = await simCluster({ profile: 'H800', dilation, computeScale, model: MODELED, nodeSize: NODE_SIZE });

    // Steps of the two schedules alternate, so a burst of load from elsewhere on this shared
    // machine hits both; each schedule's fastest step is the least disturbed one.
    const schedules = {
      naive: buildSchedule({ kind: 'naive', layers: model.layers, chunks: 1 }),
      overlapped: buildSchedule({ kind: 'overlapped', layers: model.layers, chunks: 4 }),
    };
    const walls = { naive: [] as number[], overlapped: [] as number[] };
    const computeMs = { naive: [] as string[], overlapped: [] as string[] };
    const links = { naive: [] as HostBoundReport[], overlapped: [] as HostBoundReport[] };
    for (let round = 0; round < 4; round++) {
      for (const kind of ['naive', 'overlapped'] as const) {
        cluster.transports.forEach((t) => t.resetLinkStats());
        const { wallMs } = await cluster.step(schedules[kind], tokens);
        if (round === 0) continue; // warm-up
        walls[kind].push(wallMs);
        const c = cluster.backends[0]!.stepSummary();
        computeMs[kind].push(`${c.modeledMs.toFixed(0)}/${c.measuredMs.toFixed(0)}`);
        links[kind].push(cluster.transports[0]!.hostBound());
      }
    }
    await cluster.close();

    const fmt = (x: number) => x.toFixed(1);
    const best = (kind: 'naive' | 'overlapped') => Math.min(...walls[kind]);
    const line = (kind: 'naive' | 'overlapped') => {
      const l = links[kind].at(-1)!;
      return (
        `${kind.padEnd(10)} step ms ${walls[kind].map(fmt).join(', ')} (min ${fmt(best(kind))}, median ${fmt(median(walls[kind]))}); ` +
        `rank 0 compute modeled/waited ms ${computeMs[kind].join(', ')}; last step's rank 0 link: ${l.frames} frames, ` +
        `host transport ${fmt(l.hostMs)} ms on ${fmt(l.modeledMs)} ms modeled, host-bound ${l.bound}`
      );
    };
    console.log(
      [
        `sim H800, 4 ranks (2 nodes x 2), ${tokens} tokens/rank, H=512, top-2, 2 layers, f32 wire;`,
        `dilation ${fmt(dilation)}, computeScale ${computeScale.toExponential(3)}`,
        `modeled per step, naive: compute ${fmt(estimate.computeMs)} ms (MoE part ${fmt(estimate.moeComputeMs)}), all-to-all ${fmt(estimate.commMs)} ms`,
        `modeled per step, 4 chunks: compute ${fmt(chunked.computeMs)} ms (MoE part ${fmt(chunked.moeComputeMs)}), all-to-all ${fmt(chunked.commMs)} ms`,
        line('naive'),
        line('overlapped'),
        `speedup naive/overlapped: ${(best('naive') / best('overlapped')).toFixed(2)}x (fastest steps), ` +
          `${(median(walls.naive) / median(walls.overlapped)).toFixed(2)}x (medians)`,
      ].join('\n'),
    );
    expect(best('overlapped')).toBeLessThan(best('naive'));
  });
});
