/**
 * Authentication before resources (issue #18, point 2), on a real worker process over real gRPC:
 * calls without the cluster token are refused on their metadata, before their message is read,
 * so four concurrent 200 MiB unauthenticated RunStep calls leave the worker's peak resident
 * memory (VmHWM: the most it ever held, not a sample) far below what reading them would take.
 * With the token, every Worker method (FetchParams included) is served as before.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/control/local-cluster';
import { WorkerHandle } from '../src/control/worker-client';

const TOKEN = 'auth-before-read-7c2e';
const MIB = 1024 * 1024;
/** The figure: a worker under attack stays under this peak RSS. */
const LIMIT_BYTES = 300 * MIB;

/** Peak and current resident set of `pid`, bytes (Linux /proc). */
function memoryOf(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { peak: kib('VmHWM'), now: kib('VmRSS') };
}

/** CPU time `pid` used so far, ms (user + system, /proc/<pid>/stat). */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks, 100 per second on Linux
}

/** A raw unary call of `bytes` to `path` with no token: the status code it ends with. */
function rawCall(client: grpc.Client, path: string, payload: Buffer, metadata = new grpc.Metadata()): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      payload,
      metadata,
      { deadline: Date.now() + 60_000 },
      (error) => resolve(error ? { code: error.code, details: error.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

describe('authentication before resources', () => {
  let cluster: LocalCluster;
  const lines: string[] = [];
  beforeAll(async () => {
    delete process.env.MOE_CLUSTER_TOKEN;
    cluster = await LocalCluster.start({ workers: 1, token: TOKEN, rendezvousTimeoutMs: 60_000, echoWorkerOutput: true, log: (l) => lines.push(l) });
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('four concurrent 200 MiB calls without the token are refused unread: the worker stays under 300 MiB peak RSS', async () => {
    const pid = cluster.processes[0]!.pid!;
    const before = memoryOf(pid);
    const cpuBefore = cpuMsOf(pid);
    const payload = Buffer.alloc(200 * MIB, 7);
    // Four clients: four connections, as four strangers would open.
    const clients = Array.from({ length: 4 }, () => new grpc.Client(cluster.workers[0]!.address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 }));
    try {
      const started = Date.now();
      const outcomes = await Promise.all(clients.map((c) => rawCall(c, '/moe.v1.Worker/RunStep', payload)));
      const tookMs = Date.now() - started;
      const after = memoryOf(pid);
      // The benchmark figure, recorded in the test output.
      console.log(
        `4 x 200 MiB unauthenticated RunStep: worker peak RSS ${(before.peak / MIB).toFixed(0)} MiB before, ${(after.peak / MIB).toFixed(0)} MiB after ` +
          `(now ${(after.now / MIB).toFixed(0)} MiB); refused in ${tookMs} ms, costing the worker ${(cpuMsOf(pid) - cpuBefore).toFixed(0)} ms of CPU`,
      );
      expect(after.peak).toBeLessThan(LIMIT_BYTES);
      expect(after.peak - before.peak).toBeLessThan(50 * MIB);
      for (const o of outcomes) {
        expect(o.code).toBe(grpc.status.UNAUTHENTICATED);
        expect(o.details).toMatch(/Worker.RunStep: missing x-moe-token/);
      }
    } finally {
      clients.forEach((c) => c.close());
    }
    // The worker still serves its own cluster.
    const handle = new WorkerHandle(0, cluster.workers[0]!.workerId, cluster.workers[0]!.address, TOKEN);
    try {
      expect((await handle.health(10_000)).workerId).toBe(cluster.workers[0]!.workerId);
    } finally {
      handle.close();
    }
  });

  it('every Worker method needs the token, FetchParams included; with it, the request is read and judged', async () => {
    const client = new grpc.Client(cluster.workers[0]!.address, grpc.credentials.createInsecure());
    const token = new grpc.Metadata();
    token.set('x-moe-token', TOKEN);
    try {
      for (const method of ['LoadShard', 'RunStep', 'FetchParams', 'Health', 'FlightRecord', 'Shutdown']) {
        const refused = await rawCall(client, `/moe.v1.Worker/${method}`, Buffer.alloc(0));
        expect(refused.code, method).toBe(grpc.status.UNAUTHENTICATED);
      }
      // With the token, FetchParams is read: this worker holds no shard, and says so.
      const read = await rawCall(client, '/moe.v1.Worker/FetchParams', Buffer.alloc(0), token);
      expect(read.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(read.details).toMatch(/no shard loaded/);
    } finally {
      client.close();
    }
  });
});
