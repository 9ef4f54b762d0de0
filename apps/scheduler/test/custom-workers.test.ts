/**
 * Custom workers take part in training and keep parity with the single-process reference:
 * - a cluster of built-in workers running the example backend module (cpu + a delay per expert);
 * - a mixed cluster: the plain-JS example worker (which imports nothing from this repository)
 *   as rank 0 beside two built-in cpu workers, under both schedules.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { decodeRows, encodeRows, GRPC_OPTIONS, GrpcTransport, PeerMailbox, type CodecName } from '@moe/comm';
import { parseModelConfig, TINY_MODEL, TINY_TRAIN, type TrainConfig } from '@moe/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '../src/control/local-cluster';
import { REPO_ROOT } from '../src/paths';
import { SchedulerService, type RegisteredWorker } from '../src/control/rendezvous';
import { runTraining, type TrainingResult } from '../src/run/train-run';
import { WorkerProcess } from '../src/control/worker-process';

const TIMEOUT = 60_000;
const train: TrainConfig = { ...TINY_TRAIN, steps: 10 };
const model = parseModelConfig({ ...TINY_MODEL, layers: 2 });

function expectParity(result: TrainingResult): void {
  const parity = result.parity!;
  expect(parity.loss.maxRelative, `worst loss at step ${parity.loss.step}`).toBeLessThanOrEqual(1e-5);
  expect(parity.params.maxAbsolute, `worst parameter ${parity.params.name}[${parity.params.index}]`).toBeLessThanOrEqual(1e-4);
  expect(parity.ok).toBe(true);
  expect(result.losses[train.steps - 1]!).toBeLessThan(result.losses[0]!);
}

describe('a backend module in a cluster', () => {
  it(
    'three workers on the example backend (cpu + a delay per expert) train with parity to the reference',
    async () => {
      const result = await runTraining({
        model,
        train,
        workers: 3,
        backend: './examples/delayed-cpu-backend/delayed-cpu-backend.ts',
        backendOptions: { delayMsPerExpert: 1 },
        step: { schedule: 'overlapped', chunks: 2 },
        checkReference: true,
      });
      expect(result.workers.map((w) => w.backend)).toEqual(['delayed-cpu', 'delayed-cpu', 'delayed-cpu']);
      expectParity(result);
    },
    TIMEOUT,
  );

  it(
    'a backend module that forwards sumsReplicaGradients runs redundant experts',
    async () => {
      const result = await runTraining({
        model,
        train: { ...train, steps: 4 },
        workers: 3,
        backend: './examples/delayed-cpu-backend/delayed-cpu-backend.ts',
        backendOptions: { delayMsPerExpert: 0 },
        redundantExperts: 1,
        expertLoads: [[9, 1, 1, 1, 1, 1, 1, 1]],
        checkReference: true,
      });
      expect(result.placement.physicalToLogical.filter((e) => e === 0)).toHaveLength(2);
      expect(result.parity!.params.maxAbsolute).toBe(0);
    },
    TIMEOUT,
  );
});

describe('the plain-JS worker is written against the contract alone', () => {
  it('imports only node built-ins, @grpc/grpc-js, @grpc/proto-loader and its own files', () => {
    const dir = join(REPO_ROOT, 'examples/plain-js-worker');
    const specifiers = readdirSync(dir)
      .filter((f) => f.endsWith('.mjs'))
      .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!));
    expect(specifiers.length).toBeGreaterThan(5);
    const foreign = specifiers.filter((s) => !/^(node:|\.\/[\w-]+\.mjs$|@grpc\/grpc-js$|@grpc\/proto-loader$)/.test(s));
    expect(foreign).toEqual([]);
  });

  /** The example's modules, untyped (plain JavaScript). */
  const example = async (file: string): Promise<any> => import(pathToFileURL(join(REPO_ROOT, 'examples/plain-js-worker', file)).href);

  it('its codecs encode F32, BF16 and FP8_E4M3 bit for bit like the built-in ones', async () => {
    const wire = await example('wire.mjs');
    const values = Float32Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? 0 : Math.sin(i) * 10 ** ((i % 9) - 4)));
    for (const [codec, dtype] of [['f32', 'F32'], ['bf16', 'BF16'], ['fp8', 'FP8_E4M3']] as const) {
      const ours = encodeRows(values, 3, 100, codec);
      const theirs = wire.encodeRows(values, 3, 100, dtype);
      expect(Buffer.from(theirs.data).equals(Buffer.from(ours.data)), codec).toBe(true);
      expect(Buffer.from(theirs.scales ?? []).equals(Buffer.from(ours.scales ?? [])), codec).toBe(true);
      expect(wire.decodeRows(theirs)).toEqual(decodeRows(ours));
    }
  });

  it('its Peer service takes frames the built-in transport splits into parts over two connections, and refuses a duplicate', async () => {
    const [peer, worker, wire] = await Promise.all([example('peer.mjs'), example('worker.mjs'), example('wire.mjs')]);
    const mailbox = new peer.Mailbox();
    mailbox.open('run-parts', 0, 2);
    const server = new grpc.Server(GRPC_OPTIONS);
    server.addService(worker.loadProto().Peer.service, peer.peerService(mailbox));
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const sender = new GrpcTransport({ runId: 'run-parts', rank: 1, peers: [`127.0.0.1:${port}`, ''], mailbox: new PeerMailbox(), maxFrameBytes: 64, connectionsPerPeer: 2 });
    try {
      const values = Float32Array.from({ length: 150 }, (_, i) => Math.cos(i) * 3);
      const codecs: CodecName[] = ['f32', 'bf16', 'fp8'];
      for (const [chunk, codec] of codecs.entries()) {
        const key = { step: 0, layer: 0, chunk, phase: 'DISPATCH' as const };
        const payload = encodeRows(values, 3, 50, codec);
        await sender.send(0, key, { payload, expertIds: Int32Array.from([5, 6, 7]) });
        const got = await mailbox.take(1, key, 5_000);
        expect([got.payload.rows, got.payload.cols, [...got.expertIds]]).toEqual([3, 50, [5, 6, 7]]);
        expect(wire.decodeRows(got.payload)).toEqual(decodeRows(payload));
      }
      const again = sender.send(0, { step: 0, layer: 0, chunk: 0, phase: 'DISPATCH' }, { payload: encodeRows(values, 3, 50, 'f32'), expertIds: Int32Array.from([5, 6, 7]) });
      await expect(again).rejects.toThrow(/refused step 0 layer 0 chunk 0 DISPATCH: duplicate/);
    } finally {
      await sender.close();
      server.forceShutdown();
      mailbox.close('test over');
    }
  });
});

describe('a mixed cluster: the plain-JS worker beside two built-in workers', () => {
  let scheduler: SchedulerService;
  const processes: WorkerProcess[] = [];
  let cluster: Cluster;

  beforeAll(async () => {
    scheduler = new SchedulerService({});
    const address = await scheduler.start();
    // the plain-JS worker first, so it registers first and takes rank 0 (whose dense params the parity check reads)
    processes.push(new WorkerProcess({ workerId: 'plain-js', scheduler: address, entry: join(REPO_ROOT, 'examples/plain-js-worker/worker.mjs') }));
    await scheduler.waitForWorkers(1, 30_000);
    for (const i of [1, 2]) processes.push(new WorkerProcess({ workerId: `builtin-${i}`, scheduler: address, backend: 'cpu' }));
    const workers: RegisteredWorker[] = await scheduler.waitForWorkers(3, 30_000);
    cluster = {
      scheduler,
      workers,
      // a worker process that dies fails the run at once (not at a step deadline)
      onFailure: (listener) => {
        const offs = processes.map((p) => p.onExit(() => !p.stopping && listener(p.exitError('during the test'))));
        return () => offs.forEach((off) => off());
      },
      stop: async () => {},
    };
  }, TIMEOUT);

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop(3_000)));
    await scheduler?.close();
  }, TIMEOUT);

  it('the plain-JS worker registers and takes rank 0', () => {
    const [first, ...others] = cluster.workers.map((w) => `${w.workerId}/${w.backend}`);
    expect(first).toBe('plain-js/plain-js');
    expect(others.sort()).toEqual(['builtin-1/cpu', 'builtin-2/cpu']);
  });

  it(
    'naive schedule: training matches the reference trainer',
    async () => {
      const result = await runTraining({ model, train, workers: 3, cluster, checkReference: true, step: { schedule: 'naive' }, stepTimeoutMs: 20_000 });
      expect(result.owner).toEqual([0, 0, 0, 1, 1, 1, 2, 2]);
      expectParity(result);
    },
    TIMEOUT,
  );

  it(
    'overlapped schedule (2 chunks), round-robin experts: training matches the reference trainer',
    async () => {
      const result = await runTraining({
        model,
        train,
        workers: 3,
        cluster,
        placement: 'round-robin',
        checkReference: true,
        step: { schedule: 'overlapped', chunks: 2 },
        stepTimeoutMs: 20_000,
      });
      expectParity(result);
    },
    TIMEOUT,
  );

  it(
    'a placement with redundant experts is refused by the plain-JS worker, by name',
    async () => {
      const run = runTraining({ model, train, workers: 3, cluster, redundantExperts: 1, stepTimeoutMs: 20_000 });
      await expect(run).rejects.toThrow(/redundant experts \(replicated placements\) are not implemented by this worker/);
    },
    TIMEOUT,
  );
});
