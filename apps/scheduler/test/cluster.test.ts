import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/control/local-cluster';
import { RendezvousTimeoutError, WorkerProcessExitError } from '../src/errors';
import { REPO_ROOT } from '../src/paths';

const FAKE_WORKER = fileURLToPath(new URL('./fixtures/fake-worker.ts', import.meta.url));
const CLUSTER_PARENT = fileURLToPath(new URL('./fixtures/cluster-parent.ts', import.meta.url));

const alive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return condition();
}

const clusters: LocalCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.stop()));
});

async function start(options: Partial<Parameters<typeof LocalCluster.start>[0]> = {}) {
  const cluster = await LocalCluster.start({ workers: 3, workerEntry: FAKE_WORKER, rendezvousTimeoutMs: 30_000, ...options });
  clusters.push(cluster);
  return cluster;
}

describe('a local cluster of worker processes', () => {
  it('starts the scheduler and N workers, ranks them, and stops them all', async () => {
    const cluster = await start();
    expect(cluster.workers).toHaveLength(3);
    expect(new Set(cluster.workers.map((w) => w.workerId))).toEqual(new Set(['w-0', 'w-1', 'w-2']));
    for (const p of cluster.processes) {
      expect(cluster.workers.find((w) => w.workerId === p.workerId)?.address).toBe(p.address);
      expect(alive(p.pid)).toBe(true);
    }
    expect(cluster.describe()[0]).toMatch(/^rank 0: w-\d at 127\.0\.0\.1:\d+ \(fake, pid \d+\)$/);
    await cluster.stop();
    for (const p of cluster.processes) expect(alive(p.pid)).toBe(false);
  });

  it('a worker process that exits before registering fails the start with its id, exit code and stderr', async () => {
    const error = await LocalCluster.start({
      workers: 3,
      workerEntry: FAKE_WORKER,
      workerArgs: ['--exit-early', 'w-1:3'],
      rendezvousTimeoutMs: 30_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerProcessExitError);
    const exit = error as WorkerProcessExitError;
    expect(exit.workerId).toBe('w-1');
    expect(exit.exitCode).toBe(3);
    expect(exit.message).toMatch(/^worker process w-1 \(pid \d+\) exited with code 3 before it registered; its last output:/);
    expect(exit.message).toContain('fake worker w-1: cannot start, giving up (code 3)');
    expect(exit.stderrTail).toEqual(['fake worker w-1: starting', 'fake worker w-1: cannot start, giving up (code 3)']);
  });

  it('a rendezvous timeout names the processes that never registered and stops the rest', { timeout: 60_000 }, async () => {
    const error = await LocalCluster.start({
      workers: 2,
      workerEntry: FAKE_WORKER,
      workerArgs: ['--no-register', 'w-1'],
      rendezvousTimeoutMs: 10_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RendezvousTimeoutError);
    expect((error as Error).message).toMatch(
      /^waited 10000 ms for 2 workers, 1 registered \(w-0 at 127\.0\.0\.1:\d+\); start more workers or raise --rendezvous-timeout\. Started here but never registered: w-1 \(pid \d+\)/,
    );
  });

  it('a worker process dying while the cluster is up is reported with its rank', async () => {
    const cluster = await start({ workers: 2 });
    const failure = new Promise<Error>((resolve) => cluster.onFailure(resolve));
    const victim = cluster.processes[0]!;
    const rank = cluster.workers.findIndex((w) => w.workerId === victim.workerId);
    process.kill(victim.pid!, 'SIGKILL');
    const error = await failure;
    expect(error).toBeInstanceOf(WorkerProcessExitError);
    expect(error.message).toMatch(new RegExp(`^worker process ${victim.workerId} \\(pid \\d+\\) was killed by SIGKILL while it held rank ${rank}`));
  });

  it('leaves no orphans when the scheduler process itself is killed', async () => {
    const parent = spawn(process.execPath, ['--import', 'tsx', CLUSTER_PARENT, FAKE_WORKER], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const pids = await new Promise<number[]>((resolve, reject) => {
        let out = '';
        parent.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const line = /pids ([\d ]+)\n/.exec(out);
          if (line) resolve(line[1]!.trim().split(' ').map(Number));
        });
        parent.once('exit', (code) => reject(new Error(`parent exited with ${code} before starting its cluster`)));
      });
      expect(pids).toHaveLength(2);
      expect(pids.every(alive)).toBe(true);
      parent.kill('SIGKILL');
      expect(await waitUntil(() => !pids.some(alive), 10_000)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
