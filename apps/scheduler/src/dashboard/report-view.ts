/**
 * A finished run's report as the dashboard shows it: which files it has (served by name only,
 * from inside the reports folder), the benchmark's table as `moe bench` prints it, or a training
 * run's losses and step times.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { formatTable, validateReport, type BenchReport } from '@moe/report';
import type { RunResult } from '../queue/run-job';

export interface ReportView {
  /** File names of the report, each served at `files/<name>`. */
  files: string[];
  /** Bench: the headline table, as `moe bench` prints it. */
  table?: string;
  /** Train: per step, its loss and step time (ms). */
  steps?: { step: number; loss: number; stepMs: number }[];
  /** Why a part could not be shown (a file missing or unreadable). */
  problem?: string;
}

export class ReportAccessError extends Error {
  override name = 'ReportAccessError';
}

/** The run's report folder, refusing one outside `reportsDir` (a job's result is data from Redis). */
export function reportDirOf(result: RunResult, reportsDir: string): string {
  const root = resolve(reportsDir);
  const dir = resolve(result.report.dir);
  const rel = relative(root, dir);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new ReportAccessError(`run ${result.jobId}: its report folder ${dir} is outside this service's reports folder ${root}`);
  }
  return dir;
}

/** The path of report file `name` of the run, or undefined when the report has no such file. */
export function reportFilePath(result: RunResult, reportsDir: string, name: string): string | undefined {
  const dir = reportDirOf(result, reportsDir);
  const known = result.report.files.map((f) => basename(f));
  if (!known.includes(name) || basename(name) !== name) return undefined;
  const path = join(dir, name);
  return existsSync(path) ? path : undefined;
}

export function reportView(result: RunResult, reportsDir: string): ReportView {
  const dir = reportDirOf(result, reportsDir);
  const files = result.report.files.map((f) => basename(f)).filter((name) => existsSync(join(dir, name)));
  const view: ReportView = { files };
  try {
    if (result.kind === 'bench' && files.includes('report.json')) {
      const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as unknown;
      const problems = validateReport(report);
      if (problems.length) view.problem = `report.json: ${problems.slice(0, 3).join('; ')}`;
      else view.table = formatTable(report as BenchReport);
    } else if (result.kind === 'train' && files.includes('run.json')) {
      const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { steps?: { step: number; loss: number; stepMs: number }[] };
      view.steps = (run.steps ?? []).map(({ step, loss, stepMs }) => ({ step, loss, stepMs }));
    }
  } catch (error) {
    view.problem = `${(error as Error).message}`;
  }
  if (files.length < result.report.files.length) {
    view.problem = [view.problem, `${result.report.files.length - files.length} report file(s) missing from ${dir}`].filter(Boolean).join('; ');
  }
  return view;
}
