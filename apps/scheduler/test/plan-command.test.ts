/** `moe plan` as a user runs it: EPLB's published example from a loads file, as JSON and as a table; bad input exits 2. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/paths';

const dir = mkdtempSync(join(tmpdir(), 'moe-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const moe = (args: string[]) => spawnSync(process.execPath, ['bin/moe.mjs', ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });

const loads = join(dir, 'loads.json');
writeFileSync(
  loads,
  JSON.stringify([
    [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
    [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
  ]),
);
const EPLB_ARGS = [loads, '--replicas', '16', '--groups', '4', '--nodes', '2', '--gpus', '8'];

describe('moe plan', () => {
  it("prints EPLB's plan for its published example as JSON, and writes it with --out", () => {
    const out = join(dir, 'plan.json');
    const r = moe(['plan', ...EPLB_ARGS, '--json', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.physicalToLogical).toEqual([
      [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
      [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ]);
    expect(plan.policy).toBe('hierarchical');
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(plan);
  });

  it('prints a readable table by default', () => {
    const r = moe(['plan', ...EPLB_ARGS]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('policy hierarchical: 16 replicas on 8 GPUs in 2 node(s), 2 per GPU');
    expect(r.stdout).toMatch(/gpu  0 \(node 0\): e5 82\.5, e6 39/);
  });

  it('refuses a plan that cannot work, with the numbers, exit 2', () => {
    const r = moe(['plan', loads, '--replicas', '12', '--gpus', '8']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('replicas=12 is not a multiple of gpus=8');
  });
});
