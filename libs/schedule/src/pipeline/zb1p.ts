import { linearPipeline } from './one-f-one-b';
import type { PipelinePlan } from './plan';

/**
 * ZB1P (ZB-H1 of "Zero Bubble Pipeline Parallelism", Qi et al. 2023): 1F1B with every backward
 * split into input gradients now and weight gradients later. Bubble (PP-1)(F+B-2W) with B the
 * full backward (DeepSeek-V3 Table 2); parameters 1x, activations PP.
 */
export function zb1p(ranks: number, microBatches: number): PipelinePlan {
  return linearPipeline('zb1p', ranks, microBatches, true);
}
