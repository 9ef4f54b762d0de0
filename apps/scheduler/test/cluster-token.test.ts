/**
 * The cluster token: with one set, every server of the cluster (scheduler, Worker, Peer) refuses
 * a caller without it with UNAUTHENTICATED and logs the caller's address; the workers a local
 * cluster starts get it, and a training run with it works end to end.
 */
import * as grpc from '@grpc/grpc-js';
import { clientOptions, GRPC_OPTIONS, loadMoeProto } from '@moe/comm';
import { parseModelConfig, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/control/local-cluster';
import { WorkerRpcError } from '../src/errors';
import { runTraining } from '../src/run/train-run';
import { WorkerHandle } from '../src/control/worker-client';

const TOKEN = 'test-token-4f1c';
const model = parseModelConfig({ ...TINY_MODEL, hiddenSize: 8, expertFfnSize: 8, routedExperts: 4, layers: 1 });
const train = { ...TINY_TRAIN, batchSequences: 4, seqLen: 8, steps: 2 };
const MS = 10_000;

describe('cluster token', () => {
  const lines: string[] = [];
  let cluster: LocalCluster;
  beforeAll(async () => {
    delete process.env.MOE_CLUSTER_TOKEN;
    cluster = await LocalCluster.start({ workers: 1, token: TOKEN, rendezvousTimeoutMs: 30_000, echoWorkerOutput: true, log: (l) => lines.push(l) });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const refused = async (call: Promise<unknown>) => {
    const error = await call.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerRpcError);
    expect((error as WorkerRpcError).code).toBe(grpc.status.UNAUTHENTICATED);
    return (error as WorkerRpcError).message;
  };

  it('the workers it started registered with the token; a Worker call without it, or with another, is refused and logged', async () => {
    const w = cluster.workers[0]!;
    const withToken = new WorkerHandle(0, w.workerId, w.address, TOKEN);
    const without = new WorkerHandle(0, w.workerId, w.address, '');
    const wrong = new WorkerHandle(0, w.workerId, w.address, 'not-the-token');
    try {
      expect((await withToken.health(MS)).workerId).toBe(w.workerId);
      expect(await refused(without.health(MS))).toMatch(/missing x-moe-token/);
      expect(await refused(wrong.fetchParams('r', MS))).toMatch(/wrong x-moe-token/);
      expect(await refused(without.shutdown('uninvited', MS))).toMatch(/UNAUTHENTICATED/);
      // Still up: the refused Shutdown did nothing.
      expect((await withToken.health(MS)).workerId).toBe(w.workerId);
      await expect.poll(() => lines.some((l) => /refused Health from [\d.:[\]a-f]+: missing x-moe-token/.test(l)), { timeout: 5_000 }).toBe(true);
    } finally {
      [withToken, without, wrong].forEach((h) => h.close());
    }
  });

  it('Register without the token is refused by the scheduler, and logged with the address', async () => {
    const proto = loadMoeProto();
    const client = new proto.moe.v1.Scheduler(cluster.scheduler.address, grpc.credentials.createInsecure(), GRPC_OPTIONS);
    const error = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.Register({ workerId: 'intruder', address: '127.0.0.1:1', backend: 'cpu' }, { deadline: new Date(Date.now() + MS) }, (e) => resolve(e)),
    );
    client.close();
    expect(error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(cluster.scheduler.allWorkers().map((x) => x.workerId)).not.toContain('intruder');
    expect(lines.some((l) => /scheduler: Scheduler: refused Register from [\d.:[\]a-f]+: missing x-moe-token/.test(l))).toBe(true);
  });

  it('a Peer stream without the token is refused before any frame', async () => {
    const proto = loadMoeProto();
    const status = async (token: string | undefined) => {
      const client = new proto.moe.v1.Peer(cluster.workers[0]!.address, grpc.credentials.createInsecure(), clientOptions(token));
      const call = client.Exchange();
      const code = await new Promise<number>((resolve) => {
        call.on('error', (e: grpc.ServiceError) => resolve(e.code));
        call.on('data', () => resolve(grpc.status.OK));
        call.write({ hello: { runId: 'r', source: 0, connection: 0 } });
        call.write({ frame: { step: 0, layer: 0, chunk: 0, phase: 'DISPATCH', source: 0 } });
      });
      call.cancel();
      client.close();
      return code;
    };
    expect(await status(undefined)).toBe(grpc.status.UNAUTHENTICATED);
    // With the token the stream is served: the frame is answered (with an ack refusing it: no such run).
    expect(await status(TOKEN)).toBe(grpc.status.OK);
  });

  it('a training run with the token works end to end (scheduler, workers and peers all use it)', async () => {
    const result = await runTraining({ model, train, workers: 2, scheduler: { token: TOKEN } });
    expect(result.losses).toHaveLength(2);
    result.losses.forEach((l) => expect(Number.isFinite(l)).toBe(true));
  }, 40_000);
});
