/** The data of a job on the `runs` queue: validated in full, refused with the field named. No Redis here. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BENCH_DEFAULTS, BENCH_QUICK } from '../src/run/run-bench';
import { benchJobData, formatRuns, InvalidRunError, trainJobData, validateRunJob, type RunRow } from '../src/queue/index';

function refusal(data: unknown): InvalidRunError {
  try {
    validateRunJob(data);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRunError);
    return error as InvalidRunError;
  }
  throw new Error(`accepted ${JSON.stringify(data)}`);
}

describe('validateRunJob', () => {
  it('fills a bench from the moe bench defaults, --quick preset first when asked, fields over both', () => {
    const run = validateRunJob({ kind: 'bench', quick: true, workers: 2, ratios: [1] });
    expect(run).toMatchObject({ kind: 'bench', workers: 2 });
    if (run.kind !== 'bench') throw new Error('not a bench');
    expect(run.bench).toEqual({ ...BENCH_DEFAULTS, ...BENCH_QUICK, workers: 2, ratios: [1] });
  });

  it('picks the skewed comparison\'s copies to fit the workers when the job names none; takes the job\'s, 0 included', () => {
    const copies = (data: object) => {
      const run = validateRunJob({ kind: 'bench', ...data });
      if (run.kind !== 'bench') throw new Error('not a bench');
      return run.bench.redundantExperts;
    };
    expect(copies({ workers: 4 })).toBe(4);
    expect(copies({ workers: 8, nodeSize: 4 })).toBe(8);
    expect(copies({ workers: 5, nodeSize: 5 })).toBe(7);
    expect(copies({ workers: 8, nodeSize: 4, redundantExperts: 0 })).toBe(0);
    expect(copies({ workers: 4, redundantExperts: 12 })).toBe(12);
    expect(benchJobData({ redundantExperts: 0 })).toMatchObject({ kind: 'bench', redundantExperts: 0 });
  });

  it('resolves a train config over the tiny defaults, with the schedule settings', () => {
    const run = validateRunJob({ kind: 'train', workers: 2, steps: 7, schedule: 'overlapped', config: { model: { routedExperts: 4, topK: 2 } } });
    if (run.kind !== 'train') throw new Error('not a train run');
    expect(run.train.steps).toBe(7);
    expect(run.model.routedExperts).toBe(4);
    expect(run.step).toMatchObject({ schedule: 'overlapped', chunks: 2 });
  });

  it('names the field and the value of what cannot work', () => {
    expect(refusal({ kind: 'bench', workers: 0 })).toMatchObject({ field: 'workers', message: expect.stringMatching(/^invalid run: workers: .*\(got 0\)/) });
    expect(refusal({ kind: 'bench', ratios: [1, -2] }).message).toMatch(/^invalid run: ratios\.1: .*\(got -2\)/);
    expect(refusal({ kind: 'bench', workers: 3, nodeSize: 2 }).field).toBe('nodeSize');
    // every rank holds as many physical experts: 8 + 3 over 4 workers cannot be placed (refused before the sweep, not after it)
    expect(refusal({ kind: 'bench', workers: 4, redundantExperts: 3 })).toMatchObject({ field: 'redundantExperts', message: expect.stringMatching(/^invalid run: redundantExperts: 8 experts \+ 3 redundant = 11 physical experts do not divide evenly over the 4 workers/) });
    expect(refusal({ kind: 'train', config: { model: { topK: 9 } } })).toMatchObject({ field: 'config.model.topK', message: expect.stringMatching(/top_k=9 exceeds routed experts=8/) });
    expect(refusal({ kind: 'train', config: { optimiser: {} } }).message).toMatch(/unknown top-level field "optimiser"/);
    expect(refusal({ kind: 'train', workers: 3, placement: [0, 1] }).field).toBe('placement');
    expect(refusal({ kind: 'train', workers: 9 }).message).toMatch(/^invalid run: workers: train\.batchSequences=8 is smaller than the 9 workers/);
    expect(refusal({ kind: 'train', chunks: 3 }).field).toBe('chunks');
    expect(refusal({ kind: 'train', steps: 5, extra: 1 }).message).toMatch(/Unrecognized key: "extra"/);
    expect(refusal({ kind: 'deploy' }).field).toBe('kind');
    expect(refusal('bench').message).toMatch(/^invalid run: job data: /);
  });
});

describe('moe submit job data', () => {
  it('bench: the config file holds bench fields, flags override them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-submit-'));
    try {
      const file = join(dir, 'bench.json');
      writeFileSync(file, JSON.stringify({ workers: 8, ratios: [0.5, 1], profile: 'H100' }));
      expect(benchJobData({ config: file, workers: 4, quick: true })).toEqual({ kind: 'bench', workers: 4, quick: true, ratios: [0.5, 1], profile: 'H100' });
      writeFileSync(file, '[1, 2]');
      expect(() => benchJobData({ config: file })).toThrow(/must hold a JSON object/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('train: the config file is { model, train } as moe train reads; a rank list placement becomes numbers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-submit-'));
    try {
      const file = join(dir, 'run.json');
      writeFileSync(file, JSON.stringify({ model: { routedExperts: 4 } }));
      expect(trainJobData({ config: file, workers: 2, steps: 3, placement: '0,1,1,0', checkReference: true })).toEqual({
        kind: 'train',
        config: { model: { routedExperts: 4 } },
        workers: 2,
        steps: 3,
        placement: [0, 1, 1, 0],
        checkReference: true,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('moe runs', () => {
  it('shows one row per run, newest first as given, with attempt, progress and outcome', () => {
    const now = 1_000_000;
    const row = (id: string, over: Partial<RunRow>): RunRow => ({
      id,
      runId: `run-20261201-0000${id.padStart(2, '0')}-00000000000${id}`,
      kind: 'train',
      state: 'completed',
      attemptsStarted: 1,
      attemptsMade: 1,
      attempts: 3,
      progress: { kind: 'train', phase: 'running', attempt: 1, unit: 'step', done: 4, total: 10 },
      submittedAt: now - 5_000,
      startedAt: now - 4_000,
      finishedAt: null,
      result: null,
      failedReason: null,
      cancelRequested: false,
      ...over,
    });
    const text = formatRuns(
      [
        row('3', { state: 'active', attemptsStarted: 2, failedReason: 'WorkerLostError: rank 1 is lost' }),
        row('2', { state: 'failed', finishedAt: now - 3_000, failedReason: 'invalid run: workers: Too small' }),
        row('1', { state: 'waiting', progress: null, startedAt: null, cancelRequested: true }),
      ],
      now,
    );
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^ID\s+RUN\s+KIND\s+STATE\s+ATTEMPT\s+PROGRESS\s+SUBMITTED\s+TOOK\s+OUTCOME$/);
    expect(lines[1]).toMatch(/^3\s+run-20261201-000003-000000000003\s+train\s+active\s+2\/3\s+4\/10 steps\s+5s ago\s+running\s+last attempt: WorkerLostError/);
    expect(lines[2]).toMatch(/^2\s+run-\S+\s+train\s+failed\s+1\/3\s+.*1\.00 s\s+invalid run: workers/);
    expect(lines[3]).toMatch(/^1\s+run-\S+\s+train\s+waiting\s+1\/3\s+-\s+5s ago\s+-\s+cancel requested$/);
    expect(formatRuns([])).toBe('no runs in the queue');
  });
});
