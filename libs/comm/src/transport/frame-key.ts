/**
 * Which all-to-all a frame belongs to.
 * - DISPATCH: forward, token rows to the ranks owning their experts.
 * - COMBINE: forward, expert outputs back to the tokens' ranks.
 * - COMBINE_BACKWARD: backward, output gradients to the experts' ranks.
 * - DISPATCH_BACKWARD: backward, input gradients back to the tokens' ranks.
 * - ALLREDUCE: dense gradients and expert counts.
 */
export type Phase = 'DISPATCH' | 'COMBINE' | 'COMBINE_BACKWARD' | 'DISPATCH_BACKWARD' | 'ALLREDUCE';

export const PHASES: readonly Phase[] = ['DISPATCH', 'COMBINE', 'COMBINE_BACKWARD', 'DISPATCH_BACKWARD', 'ALLREDUCE'];

/**
 * Names one all-to-all: every rank sends exactly one frame to every other rank per key.
 * `layer` is -1 when the op is not tied to a layer (ALLREDUCE); `chunk` is 0 when not chunked.
 */
export interface FrameKey {
  step: number;
  layer: number;
  chunk: number;
  phase: Phase;
}

/** e.g. "step 3 layer 1 chunk 0 DISPATCH" (the layer is left out when it is -1). */
export function keyString(k: FrameKey): string {
  return `step ${k.step}${k.layer >= 0 ? ` layer ${k.layer}` : ''} chunk ${k.chunk} ${k.phase}`;
}

export function isPhase(value: unknown): value is Phase {
  return typeof value === 'string' && (PHASES as readonly string[]).includes(value);
}
