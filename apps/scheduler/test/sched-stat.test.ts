import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { watchCpu } from '../src/control/sched-stat';

const linux = (() => {
  try {
    return /^\d+ \d+ \d+/.test(readFileSync('/proc/self/schedstat', 'utf8'));
  } catch {
    return false;
  }
})();

describe('watchCpu: processes\' main threads on the cores (/proc/<pid>/schedstat)', () => {
  it.runIf(linux)('counts a busy main thread as running, and running plus waiting never exceeds the wall time', () => {
    const since = watchCpu([process.pid]);
    const end = Date.now() + 150;
    while (Date.now() < end); // busy: on a core or queued for one the whole time
    const t = since()!;
    expect(t.wallMs).toBeGreaterThanOrEqual(150);
    expect(t.runMs + t.waitMs).toBeGreaterThan(0.5 * t.wallMs);
    expect(t.runMs + t.waitMs).toBeLessThanOrEqual(t.wallMs * 1.05);
    expect(t.runMs).toBeGreaterThan(t.waitMs / 4);
  });

  it.runIf(linux)('counts a sleeping thread as neither', async () => {
    const since = watchCpu([process.pid]);
    await new Promise((r) => setTimeout(r, 150));
    const t = since()!;
    expect(t.runMs + t.waitMs).toBeLessThan(0.3 * t.wallMs);
  });

  it('gives null when a process cannot be read, or none is watched', () => {
    expect(watchCpu([2 ** 22 + 7])()).toBeNull();
    expect(watchCpu([])()).toBeNull();
  });
});
