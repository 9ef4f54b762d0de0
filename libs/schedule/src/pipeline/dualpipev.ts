import { dualPipeRank, PhaseChunks } from './dualpipe';
import { PipelineScheduleError, RankUnits, requireInteger, type PipelinePlan } from './plan';

/**
 * DualPipeV (deepseek-ai/DualPipe `dualpipev.py`; the "cut-in-half" V-shape of Sea AI Lab):
 * N ranks hold 2N stages; every micro-batch walks ranks 0..N-1 (phase 0, stage r on rank r)
 * and back N-1..0 (phase 1, stage 2N-1-r on rank r), so the last rank turns it around without a
 * send. The steps are DualPipe's with num_half_ranks = N, half_rank = r. Bubble, counted in
 * stages PP = 2N: (PP/2-1)(F&B+B-3W) on PP/2 devices; parameters 2x (two stages a rank), activations PP+1.
 */
export function dualPipeV(ranks: number, microBatches: number): PipelinePlan {
  requireInteger(ranks, 'ranks', 1);
  if (microBatches < 2 * ranks) {
    throw new PipelineScheduleError(`dualpipev: microBatches=${microBatches} must be >= 2 x ranks = ${2 * ranks}`);
  }
  const route = [...Array.from({ length: ranks }, (_, r) => r), ...Array.from({ length: ranks }, (_, r) => ranks - 1 - r)];
  const units = Array.from({ length: ranks }, (_, rank) => {
    const chunks = new PhaseChunks((phase) => ({ stage: phase === 0 ? rank : 2 * ranks - 1 - rank, firstMicroBatch: 0 }));
    return dualPipeRank(new RankUnits(), chunks, {
      halfRanks: ranks,
      halfRank: rank,
      chunksPerPhase: microBatches,
      ranks: 2 * ranks,
      isMiddleRank: rank === ranks - 1,
    });
  });
  return { schedule: 'dualpipev', ranks, stages: 2 * ranks, microBatches, routes: [route], routeOf: new Array(microBatches).fill(0), units };
}
