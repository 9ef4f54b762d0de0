import type { ScheduleBuilder } from '../registry';
import { buildLayeredStep } from './layers';

/** The baseline every report compares against: compute waits for every all-to-all. */
export const naive: ScheduleBuilder = {
  name: 'naive',
  summary: 'per layer: dispatch all tokens and wait, experts, combine all and wait',
  chunked: false,
  defaultChunks: 1,
  wireEnum: 'NAIVE',
  build: (spec) => buildLayeredStep(spec, false),
};
