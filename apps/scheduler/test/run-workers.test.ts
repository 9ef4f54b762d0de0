/**
 * A run's workers are the run's (issue #18, points 1 and 5), with real `moe cluster` and
 * `moe worker` processes over real gRPC on 127.0.0.1: a stranger cannot stop a cluster, a spare
 * worker of a pool comes and goes without touching the run, a stopping worker says goodbye, a
 * refused worker stops at the first refusal with the reason, and the Scheduler service answers
 * INVALID_ARGUMENT to requests it cannot decode.
 */
import * as grpc from '@grpc/grpc-js';
import { loadMoeProto } from '@moe/comm';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ExternalCluster } from '../src/control/external-cluster';
import { SchedulerService } from '../src/control/rendezvous';
import { WorkerLostError } from '../src/errors';
import { startMoe, stopAll, type Proc } from './support/redis-service';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const services: SchedulerService[] = [];

function worker(scheduler: string, id: string, extra: string[] = [], env: NodeJS.ProcessEnv = process.env): Proc {
  return startMoe(id, ['worker', '--scheduler', scheduler, '--backend', 'sim', '--worker-id', id, ...extra], env);
}

async function service(options: ConstructorParameters<typeof SchedulerService>[0]): Promise<SchedulerService> {
  const s = new SchedulerService({ ...options, token: options?.token ?? '' });
  services.push(s);
  await s.start();
  return s;
}

async function until(what: string, test: () => boolean, timeoutMs = 30_000): Promise<void> {
  const give = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > give) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

afterEach(async () => {
  await stopAll();
  await Promise.all(services.splice(0).map((s) => s.close()));
});
afterAll(stopAll);

describe("a run's workers are the run's", () => {
  it('moe cluster refuses a stranger, saying why; the stranger stops and the cluster runs on', { timeout: 90_000 }, async () => {
    const env = { ...process.env, MOE_CLUSTER_TOKEN: '' };
    const cluster = startMoe('moe cluster', ['cluster', '--workers', '2', '--backend', 'sim', '--heartbeat-interval', '200', '--heartbeat-timeout', '1000'], env);
    const address = (await cluster.waitFor(/scheduler listening on (\S+)/, 60_000))[1]!;
    await cluster.waitFor(/2 workers up/, 60_000);

    const stranger = worker(address, 'extra', [], env);
    const exit = await stranger.exited;
    expect(exit.code).toBe(1);
    expect(stranger.output).toMatch(/worker extra: scheduler \S+ did not accept it: this scheduler serves one run, with workers w-0, w-1; worker extra is not one of them/);
    // The reproduction: the stranger gone (here: refused, then exited). Wait out several
    // heartbeat timeouts: the cluster is untouched.
    await sleep(3_000);
    expect(cluster.running, cluster.output).toBe(true);
    expect(cluster.output).not.toMatch(/WorkerLostError|is lost/);
    expect(await cluster.stop('SIGINT', 10_000)).toMatchObject({ signal: null });
  });

  it("a pool's spare worker, killed, leaves the roster without touching the run; a run's worker stopped with SIGTERM deregisters and fails the run at once", { timeout: 90_000 }, async () => {
    // Heartbeats so slow that a loss seen within the test can only come from Deregister ...
    const slow = await service({ heartbeatIntervalMs: 500, heartbeatTimeoutMs: 60_000 });
    const procs = ['p-0', 'p-1', 'p-2'].map((id) => worker(slow.address, id));
    await until('three workers registered', () => slow.liveWorkers().length === 3, 60_000);
    const cluster = await ExternalCluster.attach(slow, { workers: 2 });
    const failures: Error[] = [];
    cluster.onFailure((e) => failures.push(e));
    const spare = procs.find((p) => p.name === slow.liveWorkers().find((w) => slow.rankOf(w.workerId) < 0)!.workerId)!;
    const member = procs.find((p) => p.name === cluster.workers[1]!.workerId)!;

    // ... except for the spare, which SIGKILL silences: declared lost by hand here, as the watchdog would after its timeout.
    spare.child.kill('SIGKILL');
    await spare.exited;
    slow.markLost(spare.name, 'no heartbeat (test)');
    expect(slow.allWorkers().map((w) => w.workerId)).not.toContain(spare.name);
    expect(failures).toEqual([]);

    member.child.kill('SIGTERM');
    await until('the run hears of it', () => failures.length > 0);
    expect(failures[0]).toBeInstanceOf(WorkerLostError);
    expect(failures[0]!.message).toMatch(new RegExp(`rank 1 \\(worker ${member.name} at \\S+\\) is lost: it deregistered \\(SIGTERM\\)`));
    expect(slow.liveWorkers().map((w) => w.workerId)).toEqual([cluster.workers[0]!.workerId]);
  });

  it('a worker refused with UNAUTHENTICATED stops at the first refusal, with the reason', { timeout: 60_000 }, async () => {
    const guarded = await service({ token: 'right-token' });
    // A register timeout longer than this test: only stopping at the first refusal passes.
    const refused = worker(guarded.address, 'wrong-token', ['--register-timeout', '120000'], { ...process.env, MOE_CLUSTER_TOKEN: 'wrong' });
    const exit = await refused.exited;
    expect(exit.code).toBe(1);
    expect(refused.output).toMatch(/worker wrong-token: scheduler \S+ refused to register it: 16 UNAUTHENTICATED: Scheduler.Register: wrong x-moe-token/);
    expect(guarded.allWorkers()).toEqual([]);
  });
});

describe('the Scheduler service refuses what it cannot decode', () => {
  const raw = (address: string, method: string, payload: Buffer) => {
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    return new Promise<{ code: number; details: string }>((resolve) =>
      client.makeUnaryRequest(`/moe.v1.Scheduler/${method}`, (b: Buffer) => b, (b: Buffer) => b, payload, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e) => {
        client.close();
        resolve(e ? { code: e.code, details: e.details } : { code: grpc.status.OK, details: '' });
      }),
    );
  };

  it('garbage to Register, Heartbeat and Deregister gets INVALID_ARGUMENT naming the method; none of 25 random payloads is answered OK', async () => {
    const s = await service({});
    loadMoeProto();
    // Not protobuf at all: a field tag with wire type 7 (invalid).
    const garbage = Buffer.from([0x0f, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for (const method of ['Register', 'Heartbeat', 'Deregister']) {
      const answer = await raw(s.address, method, garbage);
      expect(answer.code, `${method}: ${answer.details}`).toBe(grpc.status.INVALID_ARGUMENT);
      expect(answer.details).toMatch(new RegExp(`^${method}: `));
    }
    // Random bytes: protobuf decodes many of them (unknown fields are skipped), so the fields are checked too.
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const codes: number[] = [];
    for (let i = 0; i < 25; i++) {
      const payload = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
      for (const method of ['Register', 'Heartbeat']) codes.push((await raw(s.address, method, payload)).code);
    }
    // Nothing it serves is large: a 2 MiB request is refused, not read.
    expect((await raw(s.address, 'Register', Buffer.alloc(2 * 1024 * 1024))).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(codes.filter((c) => c === grpc.status.OK)).toEqual([]);
    expect(new Set(codes)).toEqual(new Set([grpc.status.INVALID_ARGUMENT]));
    expect(s.allWorkers()).toEqual([]);
  });
});
