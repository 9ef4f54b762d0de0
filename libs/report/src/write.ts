import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { reportToJson } from './json';
import { renderMarkdown } from './markdown';
import { renderLoadHeatmapsSvg } from './load-heatmap-svg';
import { median, runName } from './metrics';
import { renderSweepSvg } from './sweep-svg';
import { renderTimelineSvg } from './timeline-svg';
import { buildTrace } from './trace';
import { ReportError, type BenchReport, type RunSamples, type StepTimeline } from './types';

/** Paths of the files `writeReport` wrote. */
export interface ReportFiles {
  json: string;
  markdown: string;
  timelineSvg: string;
  sweepSvg: string;
  trace: string;
  /** load-heatmap.svg, written when the report carries an expert load. */
  loadHeatmapSvg?: string;
}

/** The five files every report has. */
type CoreFile = Exclude<keyof ReportFiles, 'loadHeatmapSvg'>;

export const REPORT_FILE_NAMES: Readonly<Record<CoreFile, string>> = {
  json: 'report.json',
  markdown: 'report.md',
  timelineSvg: 'timeline.svg',
  sweepSvg: 'sweep.svg',
  trace: 'trace.json',
};

export const LOAD_HEATMAP_FILE = 'load-heatmap.svg';

/** load-heatmap.svg of a bench: the sweep's load, then each skewed run's. */
export function renderBenchLoadSvg(load: NonNullable<BenchReport['load']>): string {
  const sections = [{ title: `Uniform routing (${load.sweep.run})`, load: load.sweep.load }];
  for (const row of load.skewed?.rows ?? []) {
    sections.push({ title: `Skewed routing, ${row.redundant_experts === 0 ? 'no redundant experts' : `${row.redundant_experts} redundant experts (EPLB ${row.policy})`}`, load: row.load });
  }
  return renderLoadHeatmapsSvg(sections, 'Expert load of the bench');
}

/** The five files' contents, by the keys of `ReportFiles`; `steps` are drawn and traced in order. */
export function renderReportFiles(report: BenchReport, steps: readonly StepTimeline[]): Record<CoreFile, string> {
  if (steps.length === 0) throw new ReportError('a report draws at least 1 step timeline (timeline.svg, trace.json), got 0');
  return {
    json: reportToJson(report),
    markdown: renderMarkdown(report),
    timelineSvg: renderTimelineSvg(steps),
    sweepSvg: renderSweepSvg(report),
    trace: `${JSON.stringify(buildTrace(steps))}\n`,
  };
}

/**
 * Writes report.json, report.md, timeline.svg, sweep.svg and trace.json into `dir` (made
 * if missing), and load-heatmap.svg when the report carries an expert load. `steps` (say one naive and one overlapped step, see `representativeSteps`) are
 * the panels of timeline.svg, top to bottom, and the steps of trace.json, in order.
 * @returns the absolute path of each file.
 */
export async function writeReport(dir: string, report: BenchReport, ...steps: StepTimeline[]): Promise<ReportFiles> {
  const contents = renderReportFiles(report, steps);
  const root = path.resolve(dir);
  await mkdir(root, { recursive: true });
  const files = {} as ReportFiles;
  for (const key of Object.keys(REPORT_FILE_NAMES) as CoreFile[]) {
    files[key] = path.join(root, REPORT_FILE_NAMES[key]);
    await writeFile(files[key], contents[key]);
  }
  if (report.load) {
    files.loadHeatmapSvg = path.join(root, LOAD_HEATMAP_FILE);
    await writeFile(files.loadHeatmapSvg, renderBenchLoadSvg(report.load));
  }
  return files;
}

/** The measured step of `run` whose step time is nearest the run's median, as a `StepTimeline`. */
export function medianStep(run: RunSamples): StepTimeline {
  const measured = run.steps.slice(run.warmupSteps);
  if (measured.length === 0) throw new ReportError(`${runName(run)}: no measured steps after ${run.warmupSteps} warm-up steps`);
  const mid = median(measured.map((s) => s.stepMs));
  const pick = measured.reduce((best, s) => (Math.abs(s.stepMs - mid) < Math.abs(best.stepMs - mid) ? s : best));
  return {
    schedule: run.schedule,
    chunks: run.chunks,
    ratio: run.ratio,
    step: pick.step,
    stepMs: pick.stepMs,
    timelines: pick.timelines,
    ...(run.workerIds ? { workerIds: run.workerIds } : {}),
  };
}

/**
 * The steps worth drawing: at the report's headline ratio, a median step of the naive run and
 * one of each other schedule's winning run (whichever exist), in result order (naive first).
 */
export function representativeSteps(report: BenchReport, runs: readonly RunSamples[]): StepTimeline[] {
  const ratio = report.summary.headline_ratio;
  const shown = report.results.filter((r) => r.ratio === ratio && (r.schedule === 'naive' || r.winner));
  return shown
    .map((row) => runs.find((r) => r.ratio === ratio && r.schedule === row.schedule && r.chunks === row.chunks))
    .filter((r): r is RunSamples => r !== undefined)
    .map(medianStep);
}
