import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

// The transport line's all-to-all fails as a hung rank makes it fail (alltoall.ts gives up after 120 s).
vi.mock('../src/run/bench-transport', async (original) => ({
  ...(await original<typeof import('../src/run/bench-transport')>()),
  measureBenchTransport: async () => {
    throw new Error('all-to-all rank 0 said nothing for 120 s, waiting for socket-tcp run alltoall-14 to report');
  },
}));
const { BENCH_DEFAULTS, runBench } = await import('../src/run/run-bench');

const out = mkdtempSync(join(tmpdir(), 'moe-bench-transport-failure-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('moe bench whose transport line fails', () => {
  it('keeps its rows, says what failed, and predicts without the data plane per byte', async () => {
    const lines: string[] = [];
    const result = await runBench({
      ...BENCH_DEFAULTS,
      workers: 2,
      nodeSize: 1,
      ratios: [1],
      chunks: [2],
      fbChunks: [],
      microBatches: 2,
      tokensPerRank: 128,
      warmupSteps: 0,
      measuredSteps: 1,
      commTargetMs: 20,
      redundantExperts: 0,
      out,
      command: 'test',
      log: (line) => lines.push(line),
    });
    expect(result.report.results).toHaveLength(2);
    expect(result.report.transport).toBeNull();
    expect(result.report.config.transport_error).toMatch(/^all-to-all rank 0 said nothing for 120 s/);
    expect(lines).toContain('the transport line failed; the rows stand without it');
    expect(readFileSync(result.files.markdown, 'utf8')).toContain('The transport line failed in this run (all-to-all rank 0 said nothing');
    expect(result.report.config.prediction).toMatchObject({ per_byte_ms: { value: 0, source: expect.stringMatching(/^not measured/) } });
  });
});
