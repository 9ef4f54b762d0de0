/**
 * The conformance kit against workers that are not ours: the plain-JS example worker passes
 * every check; a deliberately broken variant of it fails, and the failing check names why.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKS, conformanceCommand, runConformance } from '../src/conformance';
import { REPO_ROOT } from '../src/paths';

const TIMEOUT = 60_000;
const PLAIN = join(REPO_ROOT, 'examples/plain-js-worker/worker.mjs');
const BROKEN = join(REPO_ROOT, 'examples/plain-js-worker/broken-worker.mjs');

describe('conformance kit: custom workers', () => {
  it(
    'the plain-JS worker passes every check',
    async () => {
      const report = await runConformance({ command: `node ${PLAIN} --peer-timeout 2000`, peerBackend: 'cpu' });
      const failed = report.checks.filter((c) => c.status !== 'pass').map((c) => `${c.id}: ${c.status}: ${c.reason}`);
      expect(failed, failed.join('\n')).toEqual([]);
      expect(report.checks).toHaveLength(CHECKS.length);
      expect(report.backend).toBe('plain-js');
      expect(report.ok).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'a variant that drops empty frames fails zero-token-frames, naming the frame its peer waited for',
    async () => {
      const report = await runConformance({ command: `node ${BROKEN} --peer-timeout 2000`, peerBackend: 'cpu' });
      expect(report.ok).toBe(false);
      const failed = report.checks.filter((c) => c.status === 'fail');
      expect(failed.map((c) => c.id)).toEqual(['zero-token-frames']);
      const reason = failed[0]!.reason;
      expect(reason).toMatch(/reference peer \(rank 0\).*timed out after \d+ ms waiting for step 0 layer 0 chunk 0 COMBINE from rank 1/);
      expect(reason).toContain('an empty one when it has no rows');
      // everything that does not need an empty frame still passes
      expect(report.checks.find((c) => c.id === 'malformed-frame')!.status).toBe('pass');
    },
    TIMEOUT,
  );

  it(
    'a worker address where nothing answers: register and health fail with their reasons, the rest is skipped',
    async () => {
      const report = await runConformance({ worker: '127.0.0.1:1', registerTimeoutMs: 300, peerBackend: 'cpu' });
      expect(report.ok).toBe(false);
      const [register, heartbeat, health, ...rest] = report.checks;
      expect(register).toMatchObject({ id: 'register', status: 'fail' });
      expect(register!.reason).toMatch(/no Register within 300 ms from a worker at 127\.0\.0\.1:1; .*--scheduler/);
      expect(heartbeat).toMatchObject({ id: 'heartbeat', status: 'skip' });
      expect(health).toMatchObject({ id: 'health', status: 'fail' });
      expect(health!.reason).toContain('UNAVAILABLE');
      expect(rest).toHaveLength(CHECKS.length - 3);
      expect(rest.every((c) => c.status === 'skip')).toBe(true);
    },
    TIMEOUT,
  );

  it('the command line refuses neither or both of --worker and --command (exit code 2)', async () => {
    const base = {
      host: '127.0.0.1',
      schedulerPort: 0,
      modeled: 'auto' as const,
      peerTimeout: 3000,
      deadline: 5000,
      rpcTimeout: 20000,
      registerTimeout: 1000,
      skipRegister: false,
      verbose: false,
    };
    expect(await conformanceCommand(base)).toBe(2);
    expect(await conformanceCommand({ ...base, worker: '127.0.0.1:1', command: 'true' })).toBe(2);
  });
});
