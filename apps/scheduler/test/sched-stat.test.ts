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
  it.runIf(linux)('counts a busy main thread as running (what the process\'s CPU time says) or waiting, never more than the wall time', () => {
    const since = watchCpu([process.pid]);
    const cpu = process.cpuUsage();
    const end = Date.now() + 150;
    while (Date.now() < end); // busy: on a core or queued for one the whole time, however loaded the machine
    const t = since()!;
    const { user, system } = process.cpuUsage(cpu);
    const cpuMs = (user + system) / 1000; // every thread of the process, the busy main thread nearly all of it
    expect(t.wallMs).toBeGreaterThan(145);
    expect(t.runMs).toBeGreaterThan(0.6 * cpuMs);
    expect(t.runMs).toBeLessThan(1.1 * cpuMs + 5);
    expect(t.runMs + t.waitMs).toBeGreaterThan(0.5 * t.wallMs);
    expect(t.runMs + t.waitMs).toBeLessThanOrEqual(t.wallMs * 1.05);
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
