import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { validateTrace } from '@moe/report';
import { addSimulateCommand, configFromFlags } from '../src/commands/simulate';

const dirs: string[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function simulate(args: string[]): Promise<{ lines: string[]; errors: unknown[] }> {
  const lines: string[] = [];
  const errors: unknown[] = [];
  vi.spyOn(console, 'log').mockImplementation((line: unknown) => void lines.push(String(line)));
  const program = new Command('moe').exitOverride();
  addSimulateCommand(program, (e) => (errors.push(e), 1));
  await program.parseAsync(['node', 'moe', 'simulate', ...args]);
  return { lines, errors };
}

describe('moe simulate', () => {
  it('prints the step figures and the cost, and writes report.json, report.md, pipeline.svg and a sound trace', async () => {
    const out = await mkdtemp(join(tmpdir(), 'moe-simulate-'));
    dirs.push(out);
    // DeepSeek-V3's model on a quarter of the pipeline: 4 ranks x 64 GPUs, 16 layers, 8 micro-batches.
    const { lines, errors } = await simulate(['--gpus', '256', '--pp', '4', '--layers', '16', '--micro-batches', '8', '--tokens', '1T', '--price', '3', '--out', out]);
    expect(errors).toEqual([]);
    const text = lines.join('\n');
    for (const figure of ['step time', 'pipeline bubble', 'exposed comm', 'MFU', 'tokens/s/GPU', 'GPU-hours', 'at $3/GPU-hour']) expect(text).toContain(figure);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    expect(report.schema).toBe('moe-simulate/1');
    expect(report.layout).toMatchObject({ gpus: 256, pipelineRanks: 4, expertParallel: 64 });
    expect(report.sources['layout.gpus']).toBe('flag --gpus');
    expect(report.sources.commSmShare).toMatch(/20 of 132 SMs/);
    expect(report.results.cost.tokens).toBe(1e12);
    for (const r of report.results.ranks) expect(r.compute_ms + r.exposed_comm_ms + r.bubble_ms).toBeCloseTo(report.results.step_ms, 6);
    const trace = JSON.parse(await readFile(join(out, 'trace.json'), 'utf8'));
    expect(validateTrace(trace, [{ pid: 0, name: 'begin m0' }, { pid: 2, name: 'loss m0' }])).toEqual([]);
    const svg = await readFile(join(out, 'pipeline.svg'), 'utf8');
    expect(svg).toContain('<svg');
    expect(svg.match(/<rect /g)!.length).toBeGreaterThan(4 * 8);
  });

  it('refuses a --dp that contradicts --gpus, naming both', () => {
    expect(() => configFromFlags({ preset: 'deepseek-v3', gpus: 1024, dp: 4 })).toThrow(/--gpus 1024 does not equal --pp 16 x --ep 64 x --dp 4 = 4096/);
  });

  it('a schedule that cannot run the micro-batches is reported, not thrown', async () => {
    const { errors } = await simulate(['--micro-batches', '8', '--out', join(tmpdir(), 'never-written')]);
    expect(String(errors[0])).toMatch(/microBatches=8 must be even and >= 2 x ranks = 32/);
  });
});
