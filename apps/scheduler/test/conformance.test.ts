/**
 * The conformance kit against the built-in worker, with each built-in backend and with the
 * example backend module: every check passes.
 */
import { describe, expect, it } from 'vitest';
import { runConformance, type ConformanceReport } from '../src/conformance';
import { REPO_ROOT, WORKER_MAIN } from '../src/paths';

const TIMEOUT = 60_000;
const builtin = (flags: string) => `node --import tsx ${WORKER_MAIN} --peer-timeout 2000 ${flags}`;

function expectAllPass(report: ConformanceReport): void {
  const failed = report.checks.filter((c) => c.status !== 'pass').map((c) => `${c.id}: ${c.status}: ${c.reason}`);
  expect(failed, failed.join('\n')).toEqual([]);
  expect(report.checks.map((c) => c.id)).toEqual([
    'register',
    'heartbeat',
    'health',
    'load-shard-invalid',
    'load-shard',
    'run-step',
    'fetch-params',
    'codecs',
    'malformed-frame',
    'zero-token-frames',
    'deadline',
    'after-failure',
  ]);
  expect(report.ok).toBe(true);
}

describe('conformance kit: the built-in worker passes', () => {
  it(
    'with the cpu backend, every check passes and the numbers match the reference',
    async () => {
      const report = await runConformance({ command: builtin('--backend cpu'), cwd: REPO_ROOT, peerBackend: 'cpu' });
      expectAllPass(report);
      expect(report.backend).toBe('cpu');
      expect(report.modeled).toBe(false);
      expect(report.checks.find((c) => c.id === 'deadline')!.reason).toMatch(/ABORTED after \d+ ms: .*from rank 1/);
      // it advertises fb-overlap, so its second step ran as fb-overlap in 2 micro-batches, to the reference's loss
      expect(report.checks.find((c) => c.id === 'run-step')!.reason).toMatch(/fb-overlap, 2 micro-batches: \d/);
    },
    TIMEOUT,
  );

  it(
    'with the sim backend (a modeled device: the protocol is checked, not the numbers)',
    async () => {
      const report = await runConformance({
        command: builtin('--backend sim'),
        cwd: REPO_ROOT,
        peerBackend: 'sim',
        backendOptions: { profile: 'H100', dilation: 1, model: { hiddenSize: 64 } },
      });
      expectAllPass(report);
      expect(report.backend).toBe('sim');
      expect(report.modeled).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'with the example backend module (cpu plus a delay per expert)',
    async () => {
      const report = await runConformance({
        command: builtin('--backend ./examples/delayed-cpu-backend/delayed-cpu-backend.ts'),
        cwd: REPO_ROOT,
        peerBackend: 'cpu',
        backendOptions: { delayMsPerExpert: 1 },
      });
      expectAllPass(report);
      expect(report.backend).toBe('delayed-cpu');
    },
    TIMEOUT,
  );
});
