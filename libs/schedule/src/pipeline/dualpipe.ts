import { PipelineScheduleError, RankUnits, requireInteger, type ChunkRef, type PipelinePlan } from './plan';

/**
 * DualPipe (DeepSeek-V3 Technical Report, arXiv:2412.19437 §3.2.1; deepseek-ai/DualPipe
 * `dualpipe.py`): micro-batches enter from both ends of the pipeline. Half walk ranks 0..PP-1,
 * half PP-1..0; rank r holds stage r of the first route and stage PP-1-r of the second (2x
 * parameters). In the main step a forward chunk of one direction and a backward chunk of the
 * other run together (`FB`), each hiding the other's all-to-alls. Bubble (PP/2-1)(F&B+B-3W),
 * activations PP+1.
 *
 * The phases are dualpipe.py's, step 1 to 8. A "phase" is dualpipe.py's: on the first half of the
 * ranks phase 0 is the forward direction (route 0), on the second half the reverse one.
 */
export function dualPipe(ranks: number, microBatches: number): PipelinePlan {
  requireInteger(ranks, 'ranks', 2);
  if (ranks % 2 !== 0) throw new PipelineScheduleError(`dualpipe: ranks=${ranks} must be even`);
  if (microBatches % 2 !== 0 || microBatches < 2 * ranks) {
    throw new PipelineScheduleError(`dualpipe: microBatches=${microBatches} must be even and >= 2 x ranks = ${2 * ranks}`);
  }
  const half = microBatches / 2;
  const routes = [Array.from({ length: ranks }, (_, r) => r), Array.from({ length: ranks }, (_, r) => ranks - 1 - r)];
  const routeOf = Array.from({ length: microBatches }, (_, m) => (m < half ? 0 : 1));
  const units = Array.from({ length: ranks }, (_, rank) => {
    const secondHalf = rank >= ranks / 2 ? 1 : 0;
    // phase -> (route, the stage this rank holds on it, the micro-batches of that route)
    const chunks = new PhaseChunks((phase) => {
      const route = phase ^ secondHalf;
      return { stage: route === 0 ? rank : ranks - 1 - rank, firstMicroBatch: route * half };
    });
    return dualPipeRank(new RankUnits(), chunks, {
      halfRanks: ranks / 2,
      halfRank: Math.min(rank, ranks - 1 - rank),
      chunksPerPhase: half,
      ranks,
      isMiddleRank: rank === ranks / 2 - 1 || rank === ranks / 2,
    });
  });
  return { schedule: 'dualpipe', ranks, stages: ranks, microBatches, routes, routeOf, units };
}

/** The next forward and backward micro-batch of each phase of one rank. */
export class PhaseChunks {
  private readonly nextForward = [0, 0];
  private readonly nextBackward = [0, 0];

  constructor(private readonly place: (phase: number) => { stage: number; firstMicroBatch: number }) {}

  forward(phase: number): ChunkRef {
    const { stage, firstMicroBatch } = this.place(phase);
    return { stage, microBatch: firstMicroBatch + this.nextForward[phase]!++ };
  }

  /** The forward chunk `forward(phase)` will give next, without taking it. */
  peekForward(phase: number): ChunkRef {
    const { stage, firstMicroBatch } = this.place(phase);
    return { stage, microBatch: firstMicroBatch + this.nextForward[phase]! };
  }

  backward(phase: number): ChunkRef {
    const { stage, firstMicroBatch } = this.place(phase);
    return { stage, microBatch: firstMicroBatch + this.nextBackward[phase]!++ };
  }
}

export interface DualPipeCounts {
  /** dualpipe.py's num_half_ranks / half_rank; DualPipeV runs the same steps with halfRanks = ranks, halfRank = rank. */
  halfRanks: number;
  halfRank: number;
  /** Micro-batches per phase (dualpipe.py's half_num_chunks; DualPipeV's num_chunks). */
  chunksPerPhase: number;
  /** dualpipe.py's num_ranks (DualPipeV: its ranks, which hold 2 x ranks stages). */
  ranks: number;
  /** The rank where the two directions meet (DualPipeV: the last rank): its first pair is not overlapped. */
  isMiddleRank: boolean;
}

/** The eight steps of dualpipe.py's `step()` for one rank (DualPipeV's `step()` is the same with its counts). */
export function dualPipeRank(out: RankUnits, chunks: PhaseChunks, c: DualPipeCounts): RankUnits['units'] {
  const F = (phase: number) => out.forward(chunks.forward(phase));
  const B = (phase: number, zeroBubble = false) => out.backward(chunks.backward(phase), zeroBubble);
  const FB = (forwardPhase: number, backwardPhase: number) => out.forwardBackward(chunks.forward(forwardPhase), chunks.backward(backwardPhase));

  // Step 1: nF0
  for (let i = 0; i < (c.halfRanks - c.halfRank - 1) * 2; i++) F(0);
  // Step 2: nF0F1 (each F1 also waits for the next F0's input, whose receive is posted before it)
  for (let i = 0; i < c.halfRank + 1; i++) {
    F(0);
    const nextF0 = chunks.peekForward(0);
    F(1);
    out.alsoWaitFor(nextF0);
  }
  // Step 3: nB1W1F1 (zero bubble)
  for (let i = 0; i < c.halfRanks - c.halfRank - 1; i++) {
    B(1, true);
    out.weights();
    out.alsoWaitFor(chunks.peekForward(1));
    F(1);
  }
  // Step 4 (main step): nF0B1F1B0
  for (let i = 0; i < c.chunksPerPhase - c.ranks + c.halfRank + 1; i++) {
    if (i === 0 && c.isMiddleRank) {
      // dualpipe.py: "We don't overlap these two chunks to further reduce bubble size."
      F(0);
      B(1);
    } else {
      FB(0, 1);
    }
    FB(1, 0);
  }
  // Step 5: nB1F1B0
  for (let i = 0; i < c.halfRanks - c.halfRank - 1; i++) {
    B(1);
    FB(1, 0);
  }
  // Step 6: nB1B0 (the second half of the chunks use zero bubble)
  const step6 = c.halfRank + 1;
  let zeroBubble = false;
  for (let i = 0; i < step6; i++) {
    if (i === Math.floor(step6 / 2) && c.halfRank % 2 === 1) zeroBubble = true;
    B(1, zeroBubble);
    if (i === Math.floor(step6 / 2) && c.halfRank % 2 === 0) zeroBubble = true;
    B(0, zeroBubble);
  }
  // Step 7: nWB0 (zero bubble)
  for (let i = 0; i < c.halfRanks - c.halfRank - 1; i++) {
    out.weights();
    B(0, true);
  }
  // Step 8: nW
  for (let i = 0; i < c.halfRank + 1; i++) out.weights();
  if (out.pendingWeights !== 0) throw new PipelineScheduleError(`dualpipe: ${out.pendingWeights} weight-gradient chunks left deferred`);
  return out.units;
}
