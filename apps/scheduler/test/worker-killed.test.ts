/**
 * Failure detection: a worker process SIGKILLed in the middle of a step makes the run fail well
 * within the step deadline, with an error that names the lost rank and the op the surviving
 * ranks were waiting on. Never a hang.
 */
import { parseModelConfig, TINY_MODEL, TINY_TRAIN, type TrainConfig } from '@moe/model';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/control/local-cluster';
import { WorkerProcessExitError } from '../src/errors';
import { runTraining } from '../src/run/train-run';

// Big enough that a step takes a few hundred ms, so the kill lands inside it.
const model = parseModelConfig({ ...TINY_MODEL, hiddenSize: 32, expertFfnSize: 64, routedExperts: 6, layers: 4 });
const train: TrainConfig = { ...TINY_TRAIN, batchSequences: 12, seqLen: 32, steps: 6 };
const STEP_DEADLINE_MS = 30_000;

const clusters: LocalCluster[] = [];
afterAll(async () => {
  await Promise.all(clusters.map((c) => c.stop()));
});

describe('a worker killed mid-step', () => {
  it('fails the run quickly, naming the lost rank and the op the others waited on', async () => {
    const cluster = await LocalCluster.start({ workers: 3, rendezvousTimeoutMs: 30_000, heartbeatTimeoutMs: 10_000 });
    clusters.push(cluster);
    const victim = cluster.processes.find((p) => p.workerId === cluster.workers[1]!.workerId)!;
    let killedAt = 0;
    const outcome = runTraining({
      model,
      train,
      workers: 3,
      cluster,
      stepTimeoutMs: STEP_DEADLINE_MS,
      onStep: (m) => {
        if (m.step !== 0) return;
        // Step 1 starts right after this callback; kill rank 1 early in it.
        setTimeout(() => {
          killedAt = performance.now();
          process.kill(victim.pid!, 'SIGKILL');
        }, 10);
      },
    }).then(
      () => undefined,
      (error: Error) => error,
    );
    const error = await outcome;
    const failedAfterMs = performance.now() - killedAt;
    expect(error).toBeInstanceOf(WorkerProcessExitError);
    const lost = error as WorkerProcessExitError & { step: number };
    expect(lost.signal).toBe('SIGKILL');
    expect(lost.step).toBeGreaterThanOrEqual(1);
    expect(lost.message).toMatch(/^worker process w-\d \(pid \d+\) was killed by SIGKILL while it held rank 1/);
    expect(lost.message).toMatch(new RegExp(`\\nin step ${lost.step}, rank 1 was lost; the other ranks: `));
    // Each surviving rank says where it was: the op it was in when rank 1 went away (its sends to
    // rank 1 fail, and so do its receives from it once rank 1's stream broke), or that it had
    // finished (rank 1 had sent it everything); at least one names the op.
    const inOp = (rank: number) => new RegExp(`rank ${rank} [^;]*failed: ABORTED: rank ${rank}, step ${lost.step}, op \\w+`).test(lost.message);
    for (const rank of [0, 2]) {
      const told = inOp(rank) || lost.message.includes(`rank ${rank}: finished the step`);
      expect(told, lost.message).toBe(true);
    }
    expect(inOp(0) || inOp(2), lost.message).toBe(true);
    expect(failedAfterMs).toBeLessThan(STEP_DEADLINE_MS / 3);
  }, 45_000);
});
