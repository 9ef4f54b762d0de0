import type { FlightOpOut, FlightRecordResponseOut } from '@moe/comm';
import { describe, expect, it } from 'vitest';
import { formatFlightRecords, opLabel } from '../src/run/flight-recorder';

let clock = 1_000;
const op = (step: number, kind: string, layer: number, chunk: number, state = 'done', stream = 'comm', runId = 'run-a'): FlightOpOut => ({
  runId,
  step,
  kind,
  layer,
  chunk,
  stream,
  state,
  startMs: (clock += 1),
  endMs: state === 'running' ? 0 : clock + 1,
  error: state === 'failed' ? 'timed out' : '',
});
const record = (rank: number, ops: FlightOpOut[]): FlightRecordResponseOut => ({
  workerId: `w-${rank}`,
  rank,
  step: ops.at(-1)?.step ?? 0,
  ops,
});

describe('formatFlightRecords', () => {
  it('names the ranks that entered a collective and those that did not, with their last op', () => {
    const healthy = (rank: number) =>
      record(rank, [
        op(2, 'combine', 1, 0),
        op(3, 'begin', -1, -1, 'done', 'compute'),
        op(3, 'route', 0, -1, 'done', 'compute'),
        op(3, 'dispatch', 0, 0),
        op(3, 'experts', 0, 0, 'done', 'compute'),
        op(3, 'dispatch', 1, 0, 'running'),
      ]);
    const slow = record(2, [
      op(3, 'begin', -1, -1, 'done', 'compute'),
      op(3, 'route', 0, -1, 'done', 'compute'),
      op(3, 'dispatch', 0, 0),
      op(3, 'experts', 0, 1, 'running', 'compute'),
    ]);
    const summary = formatFlightRecords([healthy(0), healthy(1), slow, healthy(3)]);
    expect(summary).toBe(
      'flight recorder, step 3: dispatch L1 C0 entered by ranks 0, 1, 3 (waiting), not entered by rank 2 (last op: experts L0 C1 running)',
    );
  });

  it('says which ranks did not answer, and groups entered ranks by state', () => {
    const summary = formatFlightRecords([
      record(0, [op(5, 'allreduce', -1, -1, 'failed')]),
      record(1, [op(5, 'allreduce', -1, -1, 'running')]),
      undefined,
    ]);
    expect(summary).toBe(
      'flight recorder, step 5 (rank 2 did not answer FlightRecord: stopped, hung or gone): ' +
        'allreduce entered by rank 0 (failed), rank 1 (waiting), no record from rank 2',
    );
  });

  it('names a rank still in an earlier step, and is empty when nobody answered', () => {
    const summary = formatFlightRecords([record(0, [op(4, 'combine', 0, 0, 'running')]), record(1, [op(3, 'update', -1, -1, 'done', 'compute')])]);
    expect(summary).toBe('flight recorder, step 4: combine L0 C0 entered by rank 0 (waiting), not entered by rank 1 (last op: step 3 update done)');
    expect(formatFlightRecords([undefined, undefined])).toBe('');
    expect(formatFlightRecords([record(0, []), record(1, [])])).toBe('');
    expect(opLabel({ kind: 'combine_bwd', layer: 2, chunk: 1 })).toBe('combine_bwd L2 C1');
  });
});

describe('formatFlightRecords names the failing run, not another', () => {
  it("leaves out another run's ops on the same workers, however high their step", () => {
    // A bench sub-run reached step 2 with every op done; the next sub-run failed in step 0.
    const previous = (rank: number) => [op(2, 'dispatch', 0, 0, 'done', 'comm', 'run-old'), op(2, 'combine', 0, 0, 'done', 'comm', 'run-old')];
    const records = [
      record(0, [...previous(0), op(0, 'dispatch', 0, 0, 'running', 'comm', 'run-new')]),
      record(1, [...previous(1), op(0, 'route', 0, -1, 'running', 'compute', 'run-new')]),
    ];
    expect(formatFlightRecords(records, 'run-new')).toBe(
      'flight recorder, step 0: dispatch L0 C0 entered by rank 0 (waiting), not entered by rank 1 (last op: route L0 running)',
    );
    // Unfiltered (the old behaviour), the summary was the other run's step 2, every op done.
    expect(formatFlightRecords(records)).toMatch(/^flight recorder, step 2: /);
    expect(formatFlightRecords(records, 'run-none')).toBe('');
  });
});

describe('flight recorder across real worker processes', () => {
  it('names the SIGSTOPped rank in the run error when the others time out', async () => {
    // Imported here so the pure tests above need no cluster.
    const { parseModelConfig, TINY_MODEL, TINY_TRAIN } = await import('@moe/model');
    const { LocalCluster } = await import('../src/control/local-cluster');
    const { runTraining } = await import('../src/run/train-run');
    const model = parseModelConfig({ ...TINY_MODEL, hiddenSize: 32, expertFfnSize: 64, routedExperts: 6, layers: 2 });
    const cluster = await LocalCluster.start({
      workers: 3,
      rendezvousTimeoutMs: 30_000,
      // Longer than the test: the stopped worker is found by the step's timeouts, not by heartbeats.
      heartbeatTimeoutMs: 30_000,
      workerArgs: ['--peer-timeout', '1500'],
      stopGraceMs: 1_000,
    });
    const victim = cluster.processes.find((p) => p.workerId === cluster.workers[1]!.workerId)!;
    let stopped = false;
    try {
      const started = performance.now();
      const error = await runTraining({
        model,
        train: { ...TINY_TRAIN, batchSequences: 6, seqLen: 16, steps: 6 },
        workers: 3,
        cluster,
        stepTimeoutMs: 4_000,
        onStep: (m) => {
          if (m.step !== 0 || stopped) return;
          stopped = true;
          process.kill(victim.pid!, 'SIGSTOP');
        },
      }).then(
        () => undefined,
        (e: Error) => e,
      );
      const failedAfterMs = performance.now() - started;
      expect(error, 'the run should fail').toBeInstanceOf(Error);
      const message = error!.message;
      console.log(`run failed after ${Math.round(failedAfterMs)} ms:\n${message}`);
      expect(message).toMatch(/\nflight recorder, step 1 \(rank 1 did not answer FlightRecord: stopped, hung or gone\): /);
      // The surviving ranks entered a collective op and failed (peer timeout) or still wait in it.
      expect(message).toMatch(/(dispatch|combine|allreduce)[^;]* entered by ranks? 0(, 2)? \((failed|waiting)\)/);
      expect(message).toMatch(/no record from rank 1/);
      expect(failedAfterMs).toBeLessThan(15_000);
    } finally {
      if (stopped) process.kill(victim.pid!, 'SIGCONT');
      await cluster.stop();
    }
  }, 90_000);
});
