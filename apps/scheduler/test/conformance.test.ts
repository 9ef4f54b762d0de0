/**
 * The conformance kit against the built-in worker, with each built-in backend and with the
 * example backend module: every check passes.
 */
import { describe, expect, it } from 'vitest';
import { CHECK_TABLE, CHECKS, runConformance, type ConformanceReport } from '../src/conformance';
import { REPO_ROOT, WORKER_MAIN } from '../src/paths';

const TIMEOUT = 60_000;
const builtin = (flags: string) => `node --import tsx ${WORKER_MAIN} --peer-timeout 2000 ${flags}`;

function expectAllPass(report: ConformanceReport): void {
  // a modeled device (sim) does not learn: the checks that compare numbers are skipped, nothing else
  const numerical = new Set(CHECK_TABLE.filter((c) => c.needs?.includes('numbers')).map((c) => c.id));
  const failed = report.checks.filter((c) => c.status !== 'pass' && !(report.modeled && c.status === 'skip' && numerical.has(c.id)));
  expect(failed.map((c) => `${c.id}: ${c.status}: ${c.reason}`).join('\n')).toBe('');
  expect(report.checks.map((c) => c.id)).toEqual(CHECKS.map(([id]) => id));
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

  it(
    'a numerically wrong worker (planted fault wrong-expert) fails only the numerical checks, and the loss failure says where',
    async () => {
      const report = await runConformance({ command: `MOE_FAULT=wrong-expert ${builtin('--backend cpu')}`, cwd: REPO_ROOT, peerBackend: 'cpu' });
      const failed = report.checks.filter((c) => c.status === 'fail').map((c) => c.id);
      expect(failed).toEqual(['loss', 'fetch-params', 'codec-numbers', 'optimizer-state']);
      expect(report.checks.filter((c) => c.status === 'skip')).toEqual([]);
      const loss = report.checks.find((c) => c.id === 'loss')!.reason;
      expect(loss).toMatch(/rank 0's loss_sum .* vs the reference's share for its tokens/);
      expect(loss).toMatch(/the routing first differs at layer 1/);
    },
    TIMEOUT,
  );
});
