/**
 * The `moe` command line as a user runs it: `node bin/moe.mjs ...` from the repository root.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/paths';

const dir = mkdtempSync(join(tmpdir(), 'moe-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `moe args...`; `onStdout` may signal the process while it runs. */
function moe(args: string[], onStdout?: (text: string, child: ReturnType<typeof spawn>) => void, timeoutMs = 120_000): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/moe.mjs', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`moe ${args.join(' ')} did not finish in ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      onStdout?.(stdout, child);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('moe', () => {
  it('--help lists train, cluster and worker', async () => {
    const { code, stdout } = await moe(['--help']);
    expect(code).toBe(0);
    for (const command of ['train', 'cluster', 'worker']) expect(stdout).toContain(command);
  });

  it('an unknown command or flag value is a usage error (exit 2)', async () => {
    expect((await moe(['frobnicate'])).code).toBe(2);
    const bad = await moe(['train', '--schedule', 'fastest']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("argument 'fastest' is invalid");
    expect(bad.stderr).toContain('Allowed choices are naive, overlapped');
    const chunkedNaive = await moe(['train', '--schedule', 'naive', '--chunks', '3']);
    expect(chunkedNaive.code).toBe(2);
    expect(chunkedNaive.stderr).toContain('chunks=3: schedule naive does not chunk');
    // Every count has a bound: a typo is a usage error, not 100 000 processes.
    const tooMany = await moe(['cluster', '--workers', '100000']);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain('--workers must be at most 64, got "100000"');
  });

  it('a config that cannot work names the field and the rule, and exits 2 before starting anything', async () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ model: { routedExperts: 8, topK: 9 } }));
    const { code, stderr } = await moe(['train', '--config', path]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/ConfigError: .*topK/);
  });

  it('an impossible placement exits 2', async () => {
    const { code, stderr } = await moe(['train', '--workers', '2', '--placement', '0,0,0,0,0,0,0,5']);
    expect(code).toBe(2);
    expect(stderr).toContain('placement[7]=5 is not a rank of this run (0..1)');
  });

  it('worker delegates to the worker program with the same flags', async () => {
    const { code, stdout } = await moe(['worker', '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: moe worker');
    expect(stdout).toContain('--scheduler');
  });

  it('cluster starts N workers, prints their addresses, and stops them all on SIGTERM', async () => {
    let signalled = false;
    const outcome = await moe(['cluster', '--workers', '2'], (text, child) => {
      if (!signalled && text.includes('workers up')) {
        signalled = true;
        child.kill('SIGTERM');
      }
    });
    expect(outcome.stdout).toMatch(/^scheduler listening on 127\.0\.0\.1:\d+$/m);
    const pids = [...outcome.stdout.matchAll(/^rank \d: w-\d at 127\.0\.0\.1:\d+ \(cpu, pid (\d+)\)$/gm)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(2);
    expect(outcome.code).toBe(143);
    expect(pids.filter(alive)).toEqual([]);
  });

  it('train runs a local cluster, prints every step beside the entropy, and passes the parity check', async () => {
    const { code, stdout, stderr } = await moe(['train', '--workers', '2', '--steps', '3', '--check-reference']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^data entropy \d+\.\d+ nats\/token/m);
    expect(stdout.match(/^step \d \[\d\/3\] {2}loss \d+\.\d+ {2}entropy \d+\.\d+ .* m?s$/gm), stdout).toHaveLength(3);
    expect(stdout).toMatch(/^step 0 \[1\/3\] /m); // the index, as errors name it, and the count done
    expect(stdout).toContain('parity check passed');
  });

  it('numbers steps the same way in progress lines and errors: the failing step is the one after the last printed', { timeout: 150_000 }, async () => {
    let killed = 0;
    const { code, stdout, stderr } = await moe(['train', '--workers', '2', '--steps', '500'], (text) => {
      const pid = /^rank 1: \S+ at \S+ \(\w+, pid (\d+)\)/m.exec(text)?.[1];
      if (!killed && pid && /^step +3 \[ *4\/500\]/m.test(text)) {
        killed = Number(pid);
        process.kill(killed, 'SIGKILL');
      }
    });
    expect(killed, stdout).toBeGreaterThan(0);
    expect(code).toBe(1);
    const printed = [...stdout.matchAll(/^step +(\d+) \[ *(\d+)\/500\]/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(printed.every(([index, done]) => done === index! + 1)).toBe(true);
    const failed = Number(/in step (\d+), rank 1 was lost/.exec(stderr)?.[1]);
    expect(failed, `${stdout}\n${stderr}`).toBe(printed.at(-1)![0]! + 1);
  });

  it('--steps 0 trains nothing and says so (no "median step NaN")', async () => {
    const { code, stdout, stderr } = await moe(['train', '--workers', '2', '--steps', '0']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^trained no steps \(0 asked\); final loss - vs entropy \d+\.\d+$/m);
    expect(stdout).not.toMatch(/NaN/);
  });
});
