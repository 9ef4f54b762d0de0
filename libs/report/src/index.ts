/**
 * Benchmark reports: figures of measured steps (DESIGN.md, "What a report measures") and the
 * files that carry them: report.json (schema moe-bench/1), report.md, timeline.svg,
 * sweep.svg and trace.json (Chrome trace format).
 *
 * Typical use by the driver:
 *   const report = buildReport({ config: { command, ...settings }, runs, transport });
 *   console.log(formatTable(report));
 *   await writeReport(outDir, report, ...representativeSteps(report, runs));
 */
export * from './types';
export { ALL_TO_ALL_OPS, fromOpRecord, opLabel, toStepSample } from './ops';
export {
  aggregateRun,
  aggregateRuns,
  allToAllBytes,
  headlineRatio,
  median,
  ratiosOf,
  stepMetrics,
  summarize,
  summarizeSettings,
  totalLength,
  unionIntervals,
  overlapLength,
  type Interval,
  type MeasuredRow,
  type StepFigures,
} from './metrics';
export {
  buildReport,
  collectEnvironment,
  reportToJson,
  transportBench,
  validateReport,
  type EnvironmentOptions,
  type ReportInput,
} from './json';
export { formatTable, renderMarkdown } from './markdown';
export { fmtDuration } from './format';
export { assignLanes, renderTimelineSvg, type TimelineSvgOptions } from './timeline-svg';
export { renderSweepSvg, type SweepSvgOptions } from './sweep-svg';
export { buildTrace, validateTrace, STREAM_TIDS, type ChromeTrace, type ExpectedOp, type TraceEvent, type TraceOptions } from './trace';
export { medianStep, renderReportFiles, representativeSteps, writeReport, REPORT_FILE_NAMES, type ReportFiles } from './write';
export { expertLoadReport, type ExpertLoadReport, type PhysicalLoad } from './expert-load';
export { renderLoadHeatmapSvg } from './load-heatmap-svg';
export { renderPipelineSvg, type PipelineBox, type PipelineBoxKind, type PipelineSvgInput } from './pipeline-svg';
export { predictionLine, predictionSection, worstAlignment } from './prediction';
