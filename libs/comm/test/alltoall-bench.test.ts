import { describe, expect, it } from 'vitest';
import { measureAllToAll } from '../src';

describe('measureAllToAll: the transport line\'s processes', () => {
  it('measures raw TCP and the socket data plane between 2 processes', async () => {
    const results = await measureAllToAll({ world: 2, frameBytes: 8192, bytesPerRank: 2e5, planes: ['tcp', 'socket'], repeats: 1, warmup: 0 });
    expect(results.map((r) => r.plane)).toEqual(['tcp', 'socket']);
    for (const r of results) expect(r.mbPerSecond).toBeGreaterThan(0);
  });

  it('a rank whose run fails says why at once, not after the parent\'s two minutes of silence', async () => {
    const started = Date.now();
    // 1 ms for a peer's first frame: less than a connection takes, so the first round fails
    const run = measureAllToAll({ world: 2, frameBytes: 8192, bytesPerRank: 2e5, planes: ['socket'], repeats: 1, warmup: 0, receiveTimeoutMs: 1 });
    await expect(run).rejects.toThrow(/^rank [01], socket run alltoall-1: .*/);
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 30_000);
});
