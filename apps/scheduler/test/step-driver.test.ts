import { fileURLToPath } from 'node:url';
import type { RunStepResponseOut } from '@moe/comm';
import { denseParams, initParams, MarkovChain, parseModelConfig, TINY_MODEL, TINY_TRAIN, type TrainConfig } from '@moe/model';
import { afterEach, describe, expect, it } from 'vitest';
import { splitSequences } from '@moe/placement';
import { LocalCluster } from '../src/control/local-cluster';
import { ChecksumMismatchError, WorkerLostError, WorkerProcessExitError, WorkerRpcError } from '../src/errors';
import { planExperts } from '@moe/placement';
import { allRanks, assertSameChecksum, gatherStep, loadShardRequests, runStepRequests } from '../src/run/step-driver';
import { stepOptionsToWire } from '@moe/schedule';
import { runTraining } from '../src/run/train-run';

const FAKE_WORKER = fileURLToPath(new URL('./fixtures/fake-worker.ts', import.meta.url));
const model = parseModelConfig({ ...TINY_MODEL, routedExperts: 8, topK: 2, layers: 3 });
const train: TrainConfig = { ...TINY_TRAIN, batchSequences: 8, seqLen: 4, steps: 3 };

describe('LoadShard requests', () => {
  const owner = planExperts(8, 3, 'contiguous');
  const params = initParams(model);
  const requests = loadShardRequests(
    { runId: 'r1', model, optimizer: train.optimizer, seqLen: 4, owner, peers: ['a:1', 'b:2', 'c:3'] },
    params,
  );

  it('give every rank all the dense parameters, under their denseParams() names', () => {
    const names = denseParams(params).map((p) => p.name);
    for (const r of requests) expect(r.denseParams!.map((p) => p.name)).toEqual(names);
  });

  it('give each rank exactly the experts it owns, for every layer', () => {
    expect(requests.map((r) => r.experts!.length)).toEqual([3 * 3, 3 * 3, 2 * 3]);
    for (const [rank, r] of requests.entries()) {
      for (const shard of r.experts!) {
        expect(owner[shard.expert!]).toBe(rank);
        expect(shard.params!.map((p) => p.name)).toEqual(['w1', 'w3', 'w2']);
      }
    }
  });

  it('carry the run, the rank, the peers by rank, the owners and the sequence length', () => {
    expect(requests.map((r) => [r.rank, r.worldSize])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    for (const r of requests) {
      expect(r).toMatchObject({ runId: 'r1', peerAddresses: ['a:1', 'b:2', 'c:3'], expertOwner: owner, seqLen: 4 });
      expect(r.model).toMatchObject({ routedExperts: 8, topK: 2, layers: 3, scoreFunction: 'SOFTMAX' });
      expect(r.optimizer).toMatchObject({ learningRate: train.optimizer.learningRate });
    }
  });
});

describe('RunStep requests', () => {
  it("hand each rank its contiguous block of whole sequences, with the global batch's divisors", () => {
    const batch = new MarkovChain(model.vocabSize, 3).batch(0, 5, 4);
    const ranges = splitSequences(5, 2);
    const requests = runStepRequests('r1', 0, batch, ranges, stepOptionsToWire({ schedule: 'naive', chunks: 4, microBatches: 1, dispatchCodec: 'bf16', combineCodec: 'f32', recordTimeline: false, allToAll: 'flat', nodeSize: 0 }));
    const ints = (b: Buffer | Uint8Array | string | undefined) => [...new Int32Array(new Uint8Array(b as Uint8Array).buffer)];
    expect(ints(requests[0]!.inputs!.data as Buffer)).toEqual([...batch.inputs.slice(0, 12)]);
    expect(ints(requests[1]!.targets!.data as Buffer)).toEqual([...batch.targets.slice(12, 20)]);
    expect(requests[1]!.inputs!.shape).toEqual([8]);
    for (const r of requests) expect(r).toMatchObject({ globalTokens: 20, globalSequences: 5 });
    expect(requests[0]!.options).toEqual({ schedule: 'NAIVE', scheduleName: 'naive', chunks: 1, microBatches: 1, dispatchCodec: 'BF16', combineCodec: 'F32', recordTimeline: false, allToAll: 'flat', nodeSize: 0 });
  });
});

describe('gathering a step', () => {
  const reply = (over: Partial<RunStepResponseOut>): RunStepResponseOut => ({
    step: 4,
    lossSum: 0.5,
    auxLoss: 0.01,
    expertCounts: new Array(model.layers * model.routedExperts).fill(1),
    paramChecksum: 'abc',
    timeline: [],
    link: null,
    intraNodeBytes: 0,
    interNodeBytes: 0,
    physicalCounts: [],
    replicaChecksums: [],
    bytesSent: 10,
    stepMs: 2,
    peakRssBytes: 1 << 20,
    dataPlane: 'socket',
    ...over,
  });

  it('sums losses and counts over ranks', () => {
    const m = gatherStep(4, [reply({ lossSum: 1.25 }), reply({ lossSum: 0.5, bytesSent: 20 })], model, 7);
    expect(m).toMatchObject({ step: 4, loss: 1.75, auxLoss: 0.02, stepMs: 7, checksum: 'abc', bytesSent: [10, 20], workerStepMs: [2, 2], peakRssBytes: [1 << 20, 1 << 20] });
    expect(m.expertCounts).toEqual(new Array(24).fill(2));
  });

  it('stops on diverged replicas, naming the ranks that disagree', () => {
    const replies = [reply({}), reply({}), reply({ paramChecksum: 'xyz' }), reply({ paramChecksum: 'xyz' })];
    const error = (() => {
      try {
        gatherStep(4, replies, model, 1);
      } catch (e) {
        return e;
      }
    })() as ChecksumMismatchError;
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect(error.ranks).toEqual([2, 3]);
    expect(error.message).toBe(
      'step 4: the replicated dense parameters diverged (param_checksum differs: ranks 0, 1 have abc; ranks 2, 3 have xyz); ranks 2, 3 disagree with rank 0, stopping the run',
    );
  });

  it('refuses a reply for another step or with the wrong number of counts', () => {
    expect(() => gatherStep(4, [reply({ step: 3 })], model, 1)).toThrow('RunStep on rank 0 answered for step 3 where step 4 was asked');
    expect(() => gatherStep(4, [reply({}), reply({ expertCounts: [1, 2] })], model, 1)).toThrow(
      'RunStep on rank 1, step 4: expert_counts has 2 entries, expected layers*experts = 3*8 = 24',
    );
    expect(() => gatherStep(4, [reply({ step: 3 })], model, 1)).toThrow(WorkerRpcError);
  });

  it('accepts agreeing checksums', () => {
    expect(assertSameChecksum(['a', 'a', 'a'], 0, 'x')).toBe('a');
  });
});

describe('allRanks waits for a call on every rank', () => {
  const fail = (rank: number) => Promise.reject(new WorkerRpcError(`RunStep of step 2 on rank ${rank} failed: UNAVAILABLE: gone`, rank, 'RunStep', 14));

  it('resolves with every reply in rank order', async () => {
    expect(await allRanks('x', [Promise.resolve('a'), new Promise((r) => setTimeout(() => r('b'), 20)), Promise.resolve('c')])).toEqual(['a', 'b', 'c']);
  });

  it('passes a single failure on as it is', async () => {
    const error = await allRanks('RunStep of step 2', [Promise.resolve(1), fail(1)]).catch((e: unknown) => e);
    expect((error as Error).message).toBe('RunStep of step 2 on rank 1 failed: UNAVAILABLE: gone');
  });

  it('names every rank that failed and every rank that has not replied', async () => {
    const never = new Promise<number>(() => {});
    const error = (await allRanks('RunStep of step 2', [Promise.resolve(1), fail(1), never, fail(3)]).catch((e: unknown) => e)) as WorkerRpcError;
    expect(error).toBeInstanceOf(WorkerRpcError);
    expect(error.rank).toBe(1);
    expect(error.message).toBe(
      'RunStep of step 2 failed on ranks 1, 3 of 4 (no reply yet from rank 2): RunStep of step 2 on rank 1 failed: UNAVAILABLE: gone; RunStep of step 2 on rank 3 failed: UNAVAILABLE: gone',
    );
  });
});

describe('the step driver against misbehaving worker processes', () => {
  const clusters: LocalCluster[] = [];
  afterEach(async () => {
    await Promise.all(clusters.splice(0).map((c) => c.stop()));
  });
  async function fakeCluster(workers: number, fail: string, heartbeat = { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 10_000 }) {
    const cluster = await LocalCluster.start({ workers, workerEntry: FAKE_WORKER, workerArgs: ['--fail', fail], ...heartbeat });
    clusters.push(cluster);
    return cluster;
  }

  it('drives every step on every rank and sums the losses in rank order', async () => {
    const cluster = await fakeCluster(3, '-1:none:-1');
    const losses: number[] = [];
    const result = await runTraining({ model, train, workers: 3, cluster, onStep: (m) => losses.push(m.loss) });
    expect(losses).toEqual([1, 1, 1]); // each fake rank answers tokens / global tokens
    expect(result.losses).toEqual(losses);
    expect(result.steps.map((s) => s.checksum)).toEqual(['after-0', 'after-1', 'after-2']);
    expect(result.steps[0]!.stepMs).toBeGreaterThan(0);
    // FetchParams of the fake returns what LoadShard sent: the assembled model is the initial one.
    const init = initParams(model);
    expect(result.params.experts[2]![7]!.w2.data).toEqual(init.experts[2]![7]!.w2.data);
    expect(result.params.head.data).toEqual(init.head.data);
  });

  it('stops the run when a rank reports a different parameter checksum', async () => {
    const cluster = await fakeCluster(3, '2:checksum:1');
    const error = await runTraining({ model, train, workers: 3, cluster }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect((error as ChecksumMismatchError).step).toBe(1);
    expect((error as Error).message).toMatch(/^step 1: .*rank 2 has diverged.*ranks 2 disagree with rank 0/);
  });

  it('a worker process exiting mid-run fails the run with its rank, exit code and stderr', async () => {
    const cluster = await fakeCluster(3, '1:exit:1');
    const error = await runTraining({ model, train, workers: 3, cluster }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerProcessExitError);
    expect((error as Error).message).toMatch(/exited with code 7 while it held rank 1; its last output:/);
    expect((error as Error).message).toContain('simulated crash');
  });

  it('a worker gone silent is lost, and the run fails naming its rank instead of waiting for the step deadline', async () => {
    const cluster = await fakeCluster(2, '1:silent:0', { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 3_000 });
    const started = Date.now();
    const error = await runTraining({ model, train, workers: 2, cluster, stepTimeoutMs: 60_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerLostError);
    expect((error as WorkerLostError).rank).toBe(1);
    expect((error as Error).message).toMatch(/^rank 1 \(worker w-\d at 127\.0\.0\.1:\d+\) is lost: no heartbeat for \d+ ms/);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('a step that misses its deadline fails with the rank and the deadline', async () => {
    const cluster = await fakeCluster(2, '0:silent:0', { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 60_000 });
    const error = await runTraining({ model, train, workers: 2, cluster, stepTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerRpcError);
    expect((error as Error).message).toMatch(/^RunStep of step 0 on rank 0 \(worker w-\d at 127\.0\.0\.1:\d+\) failed: DEADLINE_EXCEEDED: no reply within 500 ms$/);
  });
});
