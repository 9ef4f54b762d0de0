import type { ScheduleBuilder } from '../registry';
import { buildLayeredStep } from './layers';

/** Within one layer, C token chunks pipeline their all-to-alls behind the experts and the shared expert. */
export const overlapped: ScheduleBuilder = {
  name: 'overlapped',
  summary: "each layer's tokens in C chunks; chunk i's experts run while chunk i+1 arrives and chunk i-1 goes back",
  chunked: true,
  // Measured by `moe bench` (C in {2, 4}): 2 wins at most ratios; more chunks cost compute.
  defaultChunks: 2,
  wireEnum: 'OVERLAPPED',
  build: (spec) => buildLayeredStep(spec, true),
};
