import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, loadMoeProto, type SchedulerClient } from '@moe/comm';
import { afterEach, describe, expect, it } from 'vitest';
import { RendezvousTimeoutError, WorkerLostError } from '../src/errors';
import { SchedulerService } from '../src/control/rendezvous';

/** A worker as the scheduler sees it: a client that registers and heartbeats over real gRPC. */
class FakeWorker {
  readonly client: SchedulerClient;
  constructor(
    schedulerAddress: string,
    readonly workerId: string,
    readonly address: string,
  ) {
    const proto = loadMoeProto();
    this.client = new proto.moe.v1.Scheduler(schedulerAddress, grpc.credentials.createInsecure(), GRPC_OPTIONS);
  }
  register(): Promise<{ accepted: boolean; heartbeatIntervalMs: number }> {
    return new Promise((resolve, reject) =>
      this.client.Register({ workerId: this.workerId, address: this.address, backend: 'cpu', pid: 1 }, { deadline: Date.now() + 5_000 }, (e, r) =>
        e || !r ? reject(e) : resolve(r),
      ),
    );
  }
  heartbeat(): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.client.Heartbeat({ workerId: this.workerId }, { deadline: Date.now() + 5_000 }, (e, r) => (e || !r ? reject(e) : resolve(r.known))),
    );
  }
}

const services: SchedulerService[] = [];
const clients: FakeWorker[] = [];
async function startService(options: ConstructorParameters<typeof SchedulerService>[0] = {}) {
  const service = new SchedulerService(options);
  services.push(service);
  const address = await service.start();
  const worker = (id: string, address_: string) => {
    const w = new FakeWorker(address, id, address_);
    clients.push(w);
    return w;
  };
  return { service, address, worker };
}

afterEach(async () => {
  clients.splice(0).forEach((c) => c.client.close());
  await Promise.all(services.splice(0).map((s) => s.close()));
});

describe('the scheduler service gathers workers', () => {
  it('binds 127.0.0.1 on an ephemeral port by default', async () => {
    const { address } = await startService();
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(address.endsWith(':0')).toBe(false);
  });

  it('answers Register with the heartbeat interval and ranks workers in registration order', async () => {
    const { service, worker } = await startService({ heartbeatIntervalMs: 250 });
    const waiting = service.waitForWorkers(2, 5_000);
    expect(await worker('w-b', '127.0.0.1:40001').register()).toMatchObject({ accepted: true, heartbeatIntervalMs: 250 });
    await worker('w-a', '127.0.0.1:40002').register();
    const workers = await waiting;
    expect(workers.map((w) => w.workerId)).toEqual(['w-b', 'w-a']);
    expect(workers.map((w) => w.address)).toEqual(['127.0.0.1:40001', '127.0.0.1:40002']);
    expect(service.rankOf('w-a')).toBe(1);
  });

  it('resolves at once when enough workers are already registered', async () => {
    const { service, worker } = await startService();
    await worker('w-1', '127.0.0.1:40001').register();
    expect((await service.waitForWorkers(1, 100)).map((w) => w.workerId)).toEqual(['w-1']);
  });

  it('a worker registering twice keeps its place', async () => {
    const { service, worker } = await startService();
    const a = worker('w-a', '127.0.0.1:40001');
    await a.register();
    await worker('w-b', '127.0.0.1:40002').register();
    await a.register();
    expect(service.liveWorkers().map((w) => w.workerId)).toEqual(['w-a', 'w-b']);
  });

  it('times out with an error naming how many came and who they are', async () => {
    const { service, worker } = await startService();
    await worker('w-1', '127.0.0.1:40211').register();
    await worker('w-2', '127.0.0.1:40212').register();
    const error = await service.waitForWorkers(3, 300).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RendezvousTimeoutError);
    expect((error as Error).message).toBe(
      'waited 300 ms for 3 workers, 2 registered (w-1 at 127.0.0.1:40211, w-2 at 127.0.0.1:40212); start more workers or raise --rendezvous-timeout',
    );
  });

  it('refuses a Register without a worker id or address', async () => {
    const { worker } = await startService();
    await expect(worker('', '127.0.0.1:1').register()).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });
});

describe('liveness', () => {
  it('a worker that stops heartbeating is lost, and the error names its rank', async () => {
    const { service, worker } = await startService({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300 });
    const a = worker('w-a', '127.0.0.1:40001');
    const b = worker('w-b', '127.0.0.1:40002');
    await a.register();
    await b.register();
    await service.waitForWorkers(2, 1_000);
    const beating = setInterval(() => void a.heartbeat().catch(() => {}), 50);
    try {
      const lost = await new Promise<WorkerLostError>((resolve) => service.onLost((_, e) => resolve(e)));
      expect(lost).toBeInstanceOf(WorkerLostError);
      expect(lost.rank).toBe(1);
      expect(lost.workerId).toBe('w-b');
      expect(lost.message).toMatch(/^rank 1 \(worker w-b at 127\.0\.0\.1:40002\) is lost: no heartbeat for \d+ ms \(timeout 300 ms\)$/);
      expect(service.liveWorkers().map((w) => w.workerId)).toEqual(['w-a']);
    } finally {
      clearInterval(beating);
    }
  });

  it('tells a lost worker it is unknown, so it registers again (at the end of the line)', async () => {
    const { service, worker } = await startService({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    const a = worker('w-a', '127.0.0.1:40001');
    await a.register();
    await new Promise((r) => service.onLost(r));
    expect(await a.heartbeat()).toBe(false);
    await a.register();
    expect(await a.heartbeat()).toBe(true);
    expect(service.liveWorkers()).toHaveLength(1);
  });

  it('does not blame workers for silence while the scheduler itself was blocked', async () => {
    const { service, worker } = await startService({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    const a = worker('w-a', '127.0.0.1:40001');
    await a.register();
    const lost: string[] = [];
    service.onLost((w) => lost.push(w.workerId));
    const beating = setInterval(() => void a.heartbeat().catch(() => {}), 50);
    try {
      const until = Date.now() + 600;
      while (Date.now() < until) {
        // the event loop is blocked: no heartbeat can be heard
      }
      await new Promise((r) => setTimeout(r, 150));
      expect(lost).toEqual([]);
    } finally {
      clearInterval(beating);
    }
  });
});
