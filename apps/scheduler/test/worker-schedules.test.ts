/**
 * Workers say at Register which schedules they run and how many micro-batches they keep apart;
 * a run asking for more is refused before any shard is loaded, naming the worker and the schedule.
 */
import * as grpc from '@grpc/grpc-js';
import { GRPC_OPTIONS, loadMoeProto, type SchedulerClient } from '@moe/comm';
import { parseModelConfig, parseTrainConfig, TINY_MODEL, TINY_TRAIN } from '@moe/model';
import { UnsupportedByWorkerError } from '@moe/schedule';
import { afterEach, describe, expect, it } from 'vitest';
import { SchedulerService } from '../src/control/rendezvous';
import { runTraining } from '../src/run/train-run';

const services: SchedulerService[] = [];
const clients: SchedulerClient[] = [];
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await Promise.all(services.splice(0).map((s) => s.close()));
});

/** A scheduler service and `register`: one Register over real gRPC with the given fields. */
async function service() {
  const scheduler = new SchedulerService();
  services.push(scheduler);
  const address = await scheduler.start();
  const register = (request: { workerId: string; schedules?: string[]; maxMicroBatches?: number }) => {
    const client = new (loadMoeProto().moe.v1.Scheduler)(address, grpc.credentials.createInsecure(), GRPC_OPTIONS);
    clients.push(client);
    return new Promise<void>((resolve, reject) =>
      client.Register({ address: `127.0.0.1:${1000 + clients.length}`, backend: 'cpu', pid: 1, ...request }, { deadline: Date.now() + 5_000 }, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
  };
  return { scheduler, register };
}

const model = parseModelConfig(TINY_MODEL);
const train = parseTrainConfig({ ...TINY_TRAIN, steps: 1 });

describe('workers advertise their schedules', () => {
  it('keeps what each worker said; a worker that predates the fields runs naive and overlapped, one micro-batch', async () => {
    const { scheduler, register } = await service();
    await register({ workerId: 'new', schedules: ['naive', 'overlapped', 'fb-overlap'], maxMicroBatches: 64 });
    await register({ workerId: 'old' });
    const [fresh, old] = await scheduler.waitForWorkers(2, 5_000);
    expect(fresh).toMatchObject({ workerId: 'new', schedules: ['naive', 'overlapped', 'fb-overlap'], maxMicroBatches: 64 });
    expect(old).toMatchObject({ workerId: 'old', schedules: ['naive', 'overlapped'], maxMicroBatches: 1 });
  });

  it('refuses a run whose schedule a worker lacks, or more micro-batches than it keeps, naming the worker', async () => {
    const { scheduler, register } = await service();
    await register({ workerId: 'w-full', schedules: ['naive', 'overlapped', 'fb-overlap'], maxMicroBatches: 64 });
    await register({ workerId: 'w-plain', schedules: ['naive', 'overlapped'], maxMicroBatches: 1 });
    const workers = await scheduler.waitForWorkers(2, 5_000);
    const cluster = { scheduler, workers, onFailure: () => () => {}, stop: async () => {} };
    const run = (step: { schedule: string; microBatches: number }) => runTraining({ model, train, workers: 2, cluster, step });
    await expect(run({ schedule: 'fb-overlap', microBatches: 2 })).rejects.toThrow(UnsupportedByWorkerError);
    await expect(run({ schedule: 'fb-overlap', microBatches: 2 })).rejects.toThrow(
      /worker w-plain does not run schedule fb-overlap \(it runs naive, overlapped\)/,
    );
    await expect(run({ schedule: 'naive', microBatches: 2 })).rejects.toThrow(/worker w-plain keeps at most 1 micro-batch apart; the run asks for 2/);
  });
});
