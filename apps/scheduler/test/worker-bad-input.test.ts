/**
 * Bad input to a real worker process: malformed or inconsistent requests to every Worker RPC are
 * refused with INVALID_ARGUMENT or FAILED_PRECONDITION and a message that says what is wrong,
 * and the worker keeps serving (Health answers, and a good step still runs).
 */
import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, i32TensorMsg, type LoadShardRequest } from '@moe/comm';
import { initParams, MarkovChain, parseModelConfig, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitSequences } from '@moe/placement';
import { LocalCluster } from '../src/control/local-cluster';
import { WorkerRpcError } from '../src/errors';
import { DEFAULT_STEP_SETTINGS, stepOptionsToWire } from '@moe/schedule';
import { loadShardRequests, runStepRequests } from '../src/run/step-driver';
import { WorkerHandle } from '../src/control/worker-client';

const model = parseModelConfig({ ...TINY_MODEL, hiddenSize: 8, expertFfnSize: 8, routedExperts: 4, layers: 1 });
const train = { ...TINY_TRAIN, batchSequences: 2, seqLen: 8 };
const MS = 10_000;

let cluster: LocalCluster;
let worker: WorkerHandle;
let raw: grpc.Client;
beforeAll(async () => {
  cluster = await LocalCluster.start({ workers: 1, rendezvousTimeoutMs: 30_000 });
  const w = cluster.workers[0]!;
  worker = new WorkerHandle(0, w.workerId, w.address);
  raw = new grpc.Client(w.address, grpc.credentials.createInsecure(), GRPC_OPTIONS);
});
afterAll(async () => {
  worker?.close();
  raw?.close();
  await cluster?.stop();
});

const goodShard = (runId = 'run-good'): LoadShardRequest =>
  loadShardRequests(
    { runId, model, optimizer: train.optimizer, seqLen: train.seqLen, owner: [0, 0, 0, 0], peers: [cluster.workers[0]!.address] },
    initParams(model),
  )[0]!;

const goodStep = (runId = 'run-good', step = 0) =>
  runStepRequests(runId, step, new MarkovChain(model.vocabSize, train.dataSeed).batch(step, 2, 8), splitSequences(2, 1), stepOptionsToWire(DEFAULT_STEP_SETTINGS))[0]!;

/** The call's failure: its gRPC status name and message. */
async function refusal(call: Promise<unknown>): Promise<{ status: string; message: string }> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the call should have been refused').toBeInstanceOf(WorkerRpcError);
  const e = error as WorkerRpcError;
  return { status: grpc.status[e.code] ?? String(e.code), message: e.message };
}

/** Sends `bytes` as the request of `method`, undecoded; resolves with the status. */
function rawCall(method: string, bytes: Buffer): Promise<grpc.StatusObject | grpc.ServiceError> {
  return new Promise((resolve) =>
    raw.makeUnaryRequest(
      `/moe.v1.Worker/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      { deadline: new Date(Date.now() + MS) },
      (error) => resolve(error ?? { code: grpc.status.OK, details: '', metadata: new grpc.Metadata() }),
    ),
  );
}

describe('a worker refuses bad requests and keeps serving', () => {
  it('refuses malformed and inconsistent LoadShard, RunStep and FetchParams requests, naming the problem', async () => {
    // Before any shard: RunStep and FetchParams are out of order.
    expect(await refusal(worker.runStep(goodStep(), MS))).toMatchObject({ status: 'FAILED_PRECONDITION', message: expect.stringMatching(/no shard loaded/) });
    expect(await refusal(worker.fetchParams('run-x', MS))).toMatchObject({ status: 'FAILED_PRECONDITION', message: expect.stringMatching(/no shard loaded/) });

    const cases: [string, (r: LoadShardRequest) => void, RegExp][] = [
      ['bytes that do not match the shape', (r) => (r.denseParams![0]!.tensor!.data = Buffer.alloc(10)), /embedding: shape \[16, 8\] needs 512 bytes of F32 but 10 arrived/],
      ['a wrong dtype', (r) => (r.denseParams![1]!.tensor!.dtype = 'I32'), /dtype I32 where F32 was expected/],
      ['a wrong shape', (r) => (r.denseParams![2] = { name: 'layers.0.router', tensor: { shape: [8, 3], dtype: 'F32', data: Buffer.alloc(96) } }), /layers\.0\.router has shape \[8, 3\], the model needs \[8, 4\]/],
      ['a missing parameter', (r) => r.denseParams!.splice(0, 1), /embedding is missing/],
      ['an expert of the wrong shape', (r) => (r.experts![0]!.params![0] = { name: 'w1', tensor: { shape: [8, 2], dtype: 'F32', data: Buffer.alloc(64) } }), /expert 0 of layer 0: w1 has shape \[8, 2\], the model needs \[8, 8\]/],
      ['a rank outside the world', (r) => (r.rank = 3), /rank 3 is outside world_size 1/],
      ['top_k above the experts', (r) => (r.model!.topK = 9), /top_k=9 exceeds routed experts=4/],
      ['optimizer state of a parameter it does not have', (r) => (r.optimizerState = { step: 1, m: [{ name: 'nope', tensor: { shape: [1], dtype: 'F32', data: Buffer.alloc(4) } }], v: [] }), /nope is not a trained parameter/],
      ['no run id', (r) => (r.runId = ''), /run_id is empty/],
    ];
    for (const [what, spoil, message] of cases) {
      const request = goodShard();
      spoil(request);
      const got = await refusal(worker.loadShard(request, MS));
      expect(got.status, what).toBe('INVALID_ARGUMENT');
      expect(got.message, what).toMatch(message);
    }

    // Garbage bytes where a message should be, on every RPC that takes one.
    for (const method of ['LoadShard', 'RunStep', 'FetchParams', 'Shutdown']) {
      const status = await rawCall(method, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34]));
      expect(status.code, `${method}: ${status.details}`).toBe(grpc.status.INVALID_ARGUMENT);
    }

    // A good shard, then bad steps against it.
    await worker.loadShard(goodShard(), MS);
    const floats = goodStep();
    floats.inputs = { ...floats.inputs, dtype: 'F32' };
    expect(await refusal(worker.runStep(floats, MS))).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(/inputs: dtype F32 where I32 was expected/) });
    const outside = goodStep();
    outside.targets = i32TensorMsg(new Int32Array(16).fill(99));
    expect(await refusal(worker.runStep(outside, MS))).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(/targets\[0\]=99 is outside the vocabulary 0\.\.15/) });
    const ragged = goodStep();
    ragged.inputs = i32TensorMsg(new Int32Array(5));
    expect(await refusal(worker.runStep(ragged, MS))).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(/5 inputs but 16 targets/) });
    const unknownName = goodStep();
    unknownName.options = { ...unknownName.options, scheduleName: 'zigzag' };
    expect(await refusal(worker.runStep(unknownName, MS))).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(/unknown schedule "zigzag" \(RunStep\.options\.schedule_name\)/) });
    const unknownEnum = goodStep();
    unknownEnum.options = { ...unknownEnum.options, scheduleName: '', schedule: 7 as never };
    expect(await refusal(worker.runStep(unknownEnum, MS))).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(/unknown schedule "7" \(RunStep\.options\.schedule\)/) });
    const chunkedNaive = goodStep();
    chunkedNaive.options = { ...chunkedNaive.options, chunks: 3 };
    expect(await refusal(worker.runStep(chunkedNaive, MS))).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(/chunks=3: schedule naive does not chunk/) });
    expect(await refusal(worker.runStep(goodStep('run-other'), MS))).toMatchObject({ status: 'FAILED_PRECONDITION', message: expect.stringMatching(/run run-other is not the loaded run run-good/) });
    expect(await refusal(worker.fetchParams('run-other', MS))).toMatchObject({ status: 'FAILED_PRECONDITION', message: expect.stringMatching(/run-other is not the loaded run/) });

    // Still serving: Health answers and a good step runs.
    const health = await worker.health(MS);
    expect(health).toMatchObject({ state: 'loaded', runId: 'run-good' });
    const reply = await worker.runStep(goodStep(), MS);
    expect(Number.isFinite(reply.lossSum)).toBe(true);
  }, 40_000);
});
