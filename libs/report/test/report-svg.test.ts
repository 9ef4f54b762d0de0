import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assignLanes,
  buildReport,
  ratiosOf,
  renderSweepSvg,
  renderTimelineSvg,
  representativeSteps,
  validateReport,
  validateTrace,
  writeReport,
  type StepTimeline,
} from '../src';
import { simulateStep, simulateSweep, stepTimeOf } from './fixtures/report-timelines';
import { xmlProblem } from './fixtures/xml-check';

const count = (doc: string, needle: string) => doc.split(needle).length - 1;

/** width, height and viewBox of the root element. */
function rootSize(svg: string): { width: number; height: number; viewBox: string } {
  const open = svg.slice(svg.indexOf('<svg'), svg.indexOf('>', svg.indexOf('<svg')));
  const attr = (name: string) => open.split(` ${name}="`)[1]!.split('"')[0]!;
  return { width: Number(attr('width')), height: Number(attr('height')), viewBox: attr('viewBox') };
}

function step(schedule: 'naive' | 'overlapped', chunks: number, sharedLink = true): StepTimeline {
  const timelines = simulateStep({ schedule, chunks, layers: 2, ranks: 2, ratio: 1, sharedLink });
  return { schedule, chunks, ratio: 1, step: 3, stepMs: stepTimeOf(timelines), timelines, workerIds: ['worker <a> & "b"', 'w1'] };
}

describe('xmlProblem (the test helper)', () => {
  it('finds unbalanced tags, bad entities and raw < in attributes', () => {
    expect(xmlProblem('<svg><g></svg>')).toMatch(/closes <g>/);
    expect(xmlProblem('<svg><text>a & b</text></svg>')).toMatch(/bad entity/);
    expect(xmlProblem('<svg a="<"/>')).toMatch(/raw </);
    expect(xmlProblem('<svg/><svg/>')).toMatch(/2 root elements/);
    expect(xmlProblem('<?xml version="1.0"?>\n<svg a="1"><g/><text>a &amp; b</text></svg>\n')).toBeUndefined();
  });
});

describe('assignLanes', () => {
  it('puts ops in flight together in different lanes and reuses a lane once it is free', () => {
    const op = (startMs: number, endMs: number) => ({ ...simulateStep({ schedule: 'naive', chunks: 1, layers: 1, ranks: 1, ratio: 1 })[0]![0]!, startMs, endMs });
    expect(assignLanes([op(0, 4), op(1, 3), op(3, 5), op(4, 6)])).toEqual({ lanes: [0, 1, 1, 0], count: 2 });
    expect(assignLanes([])).toEqual({ lanes: [], count: 1 });
  });
});

describe('renderTimelineSvg', () => {
  const naive = step('naive', 1);
  const overlapped = step('overlapped', 4, false);
  const svg = renderTimelineSvg([naive, overlapped]);

  it('is well-formed XML with width, height and viewBox set', () => {
    expect(xmlProblem(svg)).toBeUndefined();
    const { width, height, viewBox } = rootSize(svg);
    expect(width).toBe(1200);
    expect(height).toBeGreaterThan(300);
    expect(viewBox).toBe(`0 0 ${width} ${height}`);
    expect(svg).toContain('font-family="sans-serif"');
  });

  it('draws one bar per op of both steps, and hatches every backward op', () => {
    const ops = [naive, overlapped].flatMap((s) => s.timelines.flat());
    expect(count(svg, '<rect class="op"')).toBe(ops.length);
    expect(count(svg, '<rect class="hatch"')).toBe(ops.filter((op) => op.direction === 'backward').length);
    expect(count(svg, 'data-op="dispatch L1 C3"')).toBe(2); // both ranks
  });

  it('has two panels, rank and stream labels, a legend and the escaped worker id', () => {
    expect(count(svg, '<g class="panel"')).toBe(2);
    expect(svg).toContain('>naive, 1 chunk: step 3, ratio 1, step_ms');
    expect(svg).toContain('>overlapped, 4 chunks: step 3');
    expect(count(svg, '>rank 1</text>')).toBe(2);
    expect(count(svg, '>comm</text>')).toBe(4);
    expect(svg).toContain('>dispatch (D)</text>');
    expect(svg).toContain('>backward: light, hatched</text>');
    expect(svg).toContain('worker &lt;a&gt; &amp; &quot;b&quot;');
    expect(svg).toContain('>time since the worker received RunStep (ms)</text>');
  });

  it('stacks all-to-alls in flight together in lanes instead of drawing them on top of each other', () => {
    // Without a shared link, dispatch of chunk c+1 and combine of chunk c-1 are in flight together.
    const lanesOf = (panel: string) =>
      new Set([...panel.matchAll(/<rect class="op" data-op="(?:dispatch|combine) L0 C\d" x="[\d.]+" y="([\d.]+)"/g)].map((m) => m[1])).size;
    const [naivePanel, overlappedPanel] = svg.split('<g class="panel"').slice(1);
    expect(lanesOf(naivePanel!)).toBe(2); // one comm lane on each of the 2 ranks
    expect(lanesOf(overlappedPanel!)).toBeGreaterThanOrEqual(4); // at least two on each
  });
});

describe('renderSweepSvg and writeReport', () => {
  const runs = simulateSweep({ steps: 4, warmupSteps: 1 });
  const report = buildReport({
    config: { command: 'npx moe bench --ratios 0.25,0.5,1,2,4' },
    runs,
    environment: { node: 'v20', platform: 'test', arch: 'x64', cpus: 2, cpuModel: 'cpu', date: new Date(0).toISOString() },
  });
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('plots naive, best overlapped and ideal at every ratio, as well-formed XML', () => {
    const svg = renderSweepSvg(report);
    expect(xmlProblem(svg)).toBeUndefined();
    const ratios = ratiosOf(report.results);
    for (const series of ['naive', 'overlapped', 'ideal']) expect(count(svg, `<g class="point ${series}"`)).toBe(ratios.length);
    for (const label of ['0.25', '0.5', '1', '2', '4']) expect(svg).toContain(`>${label}</text>`);
    expect(svg).toContain('>compute-to-communication ratio (log2 scale)</text>');
    expect(svg).toContain('>step time (ms)</text>');
    expect(rootSize(svg).viewBox).toBe('0 0 760 460');
  });

  it('writes the five files, each readable, into a directory it makes', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'moe-report-'));
    dirs.push(root);
    const steps = representativeSteps(report, runs);
    expect(steps.map((s) => s.schedule)).toEqual(['naive', 'overlapped']);
    expect(steps[1]!.chunks).toBe(report.summary.winning_chunks);
    const files = await writeReport(path.join(root, 'a', 'b'), report, ...steps);
    expect(Object.values(files).map((f) => path.basename(f)).sort()).toEqual(
      ['report.json', 'report.md', 'sweep.svg', 'timeline.svg', 'trace.json'],
    );
    expect(validateReport(JSON.parse(await readFile(files.json, 'utf8')))).toEqual([]);
    expect(validateTrace(JSON.parse(await readFile(files.trace, 'utf8')))).toEqual([]);
    expect(xmlProblem(await readFile(files.timelineSvg, 'utf8'))).toBeUndefined();
    expect(xmlProblem(await readFile(files.sweepSvg, 'utf8'))).toBeUndefined();
    expect(await readFile(files.markdown, 'utf8')).toMatch(/^# MoE all-to-all overlap benchmark/);
  });
});
