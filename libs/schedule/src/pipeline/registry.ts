import { dualPipe } from './dualpipe';
import { dualPipeV } from './dualpipev';
import { oneFOneB } from './one-f-one-b';
import { PipelineScheduleError, type PipelinePlan } from './plan';
import { zb1p } from './zb1p';

/** A named pipeline schedule: its builder and what DeepSeek-V3 Table 2 / the DualPipe README say of it. */
export interface PipelineSchedule {
  name: string;
  summary: string;
  /** Pipeline ranks for `stages` pipeline stages (DualPipeV puts two stages on a rank). */
  ranksFor(stages: number): number;
  build(ranks: number, microBatches: number): PipelinePlan;
}

const SCHEDULES: readonly PipelineSchedule[] = [
  { name: '1f1b', summary: 'one forward, one backward; bubble (PP-1)(F+B)', ranksFor: (s) => s, build: oneFOneB },
  { name: 'zb1p', summary: '1F1B with weight gradients deferred (ZB-H1); bubble (PP-1)(F+B-2W)', ranksFor: (s) => s, build: zb1p },
  {
    name: 'dualpipe',
    summary: 'bidirectional, forward and backward chunks overlapped; bubble (PP/2-1)(F&B+B-3W), 2x parameters',
    ranksFor: (s) => s,
    build: dualPipe,
  },
  {
    name: 'dualpipev',
    summary: 'DualPipe cut in half: PP stages on PP/2 ranks in a V; same bubble',
    ranksFor: (s) => s / 2,
    build: dualPipeV,
  },
];

export const PIPELINE_SCHEDULE_NAMES: readonly string[] = SCHEDULES.map((s) => s.name);

/** The pipeline schedule called `name`; throws naming the known ones. */
export function pipelineSchedule(name: string, where = 'pipeline schedule'): PipelineSchedule {
  const found = SCHEDULES.find((s) => s.name === name.toLowerCase());
  if (!found) throw new PipelineScheduleError(`unknown ${where} ${JSON.stringify(name)}; known: ${PIPELINE_SCHEDULE_NAMES.join(', ')}`);
  return found;
}
