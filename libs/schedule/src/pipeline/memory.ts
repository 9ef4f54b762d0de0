import type { PipelinePlan } from './plan';

/**
 * Per-rank memory of a plan, in units of one stage (DeepSeek-V3 Table 2's columns):
 * - parameters: the distinct stages (model chunks) a rank holds (1F1B 1x, DualPipe 2x);
 * - activations: the most micro-batch chunks whose forward has run and whose backward has not
 *   (their activations are alive), at any point of the rank's unit list.
 */
export function planMemory(plan: PipelinePlan): { parameters: number[]; activations: number[] } {
  const parameters: number[] = [];
  const activations: number[] = [];
  for (const units of plan.units) {
    const stages = new Set<number>();
    let alive = 0;
    let peak = 0;
    for (const u of units) {
      if (u.kind === 'F' || u.kind === 'FB') {
        const forward = u.kind === 'F' ? u.chunk : u.forward;
        stages.add(forward.stage);
        peak = Math.max(peak, ++alive);
      }
      if (u.kind === 'B' || u.kind === 'FB') alive--;
    }
    parameters.push(stages.size);
    activations.push(peak);
  }
  return { parameters, activations };
}
