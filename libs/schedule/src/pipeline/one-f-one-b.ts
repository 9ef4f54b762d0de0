import { PipelineScheduleError, RankUnits, requireInteger, type PipelinePlan } from './plan';

/**
 * 1F1B (PipeDream-Flush, Megatron-LM): rank r runs PP-1-r warm-up forwards, then one forward
 * and one full backward in turn, then drains its remaining backwards. Bubble (PP-1)(F+B);
 * parameters 1x, activations PP micro-batches at most (on rank 0).
 */
export function oneFOneB(ranks: number, microBatches: number): PipelinePlan {
  return linearPipeline('1f1b', ranks, microBatches, false);
}

/**
 * The 1F1B family on one route 0..PP-1: warm-up nF, steady nFB, drain nB. With `splitWeights`
 * (ZB1P, Qi et al. "Zero Bubble Pipeline Parallelism", ZB-H1) every backward computes its input
 * gradients only, so the gradient reaches the previous rank sooner, and its weight gradients
 * follow later; rank r keeps up to r of them deferred, which fills the drain's waits with W
 * instead of idling, and flushes the rest at the end.
 */
export function linearPipeline(schedule: string, ranks: number, microBatches: number, splitWeights: boolean): PipelinePlan {
  requireInteger(ranks, 'ranks', 1);
  requireInteger(microBatches, 'microBatches', 1);
  if (microBatches < ranks) {
    throw new PipelineScheduleError(`${schedule}: microBatches=${microBatches} must be >= ranks=${ranks} to fill the pipeline`);
  }
  const units = Array.from({ length: ranks }, (_, rank) => {
    const out = new RankUnits();
    let nextForward = 0;
    let nextBackward = 0;
    const forward = () => out.forward({ microBatch: nextForward++, stage: rank });
    const backward = () => {
      out.backward({ microBatch: nextBackward++, stage: rank }, splitWeights);
      // ZB-H1: rank r holds back r weight-gradient chunks, so the first ranks (which wait
      // longest in the drain) have the most W to fill it with.
      if (splitWeights && out.pendingWeights > rank) out.weights();
    };

    // Step 1: nF (warm-up)
    const warmup = ranks - 1 - rank;
    for (let i = 0; i < warmup; i++) forward();
    // Step 2: nFB (steady state)
    for (let i = 0; i < microBatches - warmup; i++) {
      forward();
      backward();
    }
    // Step 3: nB (drain)
    for (let i = 0; i < warmup; i++) backward();
    // Step 4: nW (the deferred weight gradients)
    while (out.pendingWeights > 0) out.weights();
    return out.units;
  });
  return { schedule, ranks, stages: ranks, microBatches, routes: [Array.from({ length: ranks }, (_, r) => r)], routeOf: new Array(microBatches).fill(0), units };
}
