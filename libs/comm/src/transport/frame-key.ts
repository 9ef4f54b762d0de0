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
 * `layer` is -1 when the op is not tied to a layer (ALLREDUCE); `chunk` is 0 when not chunked;
 * `microBatch` is the step's micro-batch, absent or 0 when the step has one (and for ALLREDUCE):
 * two micro-batches' all-to-alls may be in flight at once, and their frames never mix.
 */
export interface FrameKey {
  step: number;
  microBatch?: number;
  layer: number;
  chunk: number;
  phase: Phase;
}

/** The key's micro-batch: 0 when absent. */
export const microBatchOf = (k: FrameKey): number => k.microBatch ?? 0;

/** e.g. "step 3 layer 1 chunk 0 DISPATCH" (micro-batch 1: "step 3 micro-batch 1 layer 1 ..."; the layer is left out when it is -1). */
export function keyString(k: FrameKey): string {
  const mb = microBatchOf(k) > 0 ? ` micro-batch ${microBatchOf(k)}` : '';
  return `step ${k.step}${mb}${k.layer >= 0 ? ` layer ${k.layer}` : ''} chunk ${k.chunk} ${k.phase}`;
}

/** The identity of one frame from `source` under key `k` (every key field, the micro-batch included). */
export const frameId = (source: number, k: FrameKey): string => `${source}/${k.step}/${microBatchOf(k)}/${k.layer}/${k.chunk}/${k.phase}`;

export function isPhase(value: unknown): value is Phase {
  return typeof value === 'string' && (PHASES as readonly string[]).includes(value);
}
