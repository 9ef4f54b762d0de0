/**
 * How the global batch is split over ranks: whole sequences, contiguous blocks, in rank order.
 * Pure.
 */
import type { BatchSplit, TokenRange } from '@moe/model';
import { BatchSplitError } from './errors';

/** Rank r's block of the global batch: sequences [first, first + count). */
export interface SequenceRange {
  first: number;
  count: number;
}

/**
 * Splits B sequences over W ranks: contiguous blocks whose sizes differ by at most one, the
 * larger blocks on the lower ranks (10 on 4: 3,3,2,2). A sequence is never split.
 *
 * A rank may get zero sequences only if `allowEmpty` (B < W); by default that is refused since a
 * rank without tokens does no useful work.
 *
 * @returns [W] ranges, rank order, covering 0..B-1 exactly once
 */
export function splitSequences(sequences: number, workers: number, allowEmpty = false): SequenceRange[] {
  if (!Number.isInteger(sequences) || sequences < 1) throw new BatchSplitError(`batch of ${sequences} sequences must be a positive integer`);
  if (!Number.isInteger(workers) || workers < 1) throw new BatchSplitError(`workers=${workers} must be a positive integer`);
  if (sequences < workers && !allowEmpty) {
    throw new BatchSplitError(
      `train.batchSequences=${sequences} is smaller than the ${workers} workers; every worker needs at least one sequence (raise batchSequences or use fewer workers)`,
    );
  }
  const base = Math.floor(sequences / workers);
  const larger = sequences % workers;
  const ranges: SequenceRange[] = [];
  let first = 0;
  for (let rank = 0; rank < workers; rank++) {
    const count = base + (rank < larger ? 1 : 0);
    ranges.push({ first, count });
    first += count;
  }
  return ranges;
}

/**
 * Rank r's tokens of a global batch laid out sequence after sequence.
 *
 * @param tokens [B * L] global token ids (inputs or targets)
 * @param seqLen L, tokens per sequence
 * @returns [count * L] a copy of the rank's block
 */
export function sliceSequences(tokens: Int32Array, seqLen: number, range: SequenceRange): Int32Array {
  return tokens.slice(range.first * seqLen, (range.first + range.count) * seqLen);
}

/**
 * Splits one rank's block of `sequences` sequences into `microBatches` micro-batches: contiguous,
 * sizes differing by at most one, the larger first (the same rule as splitSequences). The one
 * definition of a micro-batch: the worker slices its batch by it.
 *
 * A rank holding fewer sequences than micro-batches gets empty ones at the end (8 sequences on 4
 * ranks in 4 micro-batches: 1, 1, 0, 0 on every rank). An empty micro-batch still runs every op
 * and sends its empty frames, so every rank runs the same op list and nothing waits forever.
 *
 * @returns [microBatches] ranges, relative to the rank's block, covering 0..sequences-1 once
 */
export function splitMicroBatches(sequences: number, microBatches: number): SequenceRange[] {
  if (!Number.isInteger(microBatches) || microBatches < 1) throw new BatchSplitError(`microBatches=${microBatches} must be a positive integer`);
  if (!Number.isInteger(sequences) || sequences < 0) throw new BatchSplitError(`a rank's ${sequences} sequences must be a whole number`);
  if (sequences === 0) return Array.from({ length: microBatches }, () => ({ first: 0, count: 0 }));
  return splitSequences(sequences, microBatches, true);
}

/**
 * The tokens of micro-batch `range` of a rank's block laid out sequence after sequence.
 * @param tokens [count * L] the rank's tokens (inputs or targets)
 * @returns [range.count * L] a view (no copy)
 */
export function microBatchTokens(tokens: Int32Array, seqLen: number, range: SequenceRange): Int32Array {
  return tokens.subarray(range.first * seqLen, (range.first + range.count) * seqLen);
}

/**
 * The token view of a split, for the reference trainer to sum gradients in the run's order
 * (`BatchSplit` of @moe/model): each rank's tokens, and each chunk's tokens on every rank, where
 * `chunkRange(tokens, chunks, c)` is the schedule's rule for a rank's chunk c of its `tokens`
 * (`chunkTokenRange` of @moe/schedule).
 * @param ranges [W] from splitSequences; @returns ranks [W] and chunks [C][W], global token indices
 */
export function tokenSplit(
  ranges: readonly SequenceRange[],
  seqLen: number,
  chunks: number,
  chunkRange: (tokens: number, chunks: number, chunk: number) => TokenRange,
): BatchSplit {
  const ranks = ranges.map((r) => ({ begin: r.first * seqLen, end: (r.first + r.count) * seqLen }));
  return {
    ranks,
    chunks: Array.from({ length: chunks }, (_, c) =>
      ranks.map((rank) => {
        const local = chunkRange(rank.end - rank.begin, chunks, c);
        return { begin: rank.begin + local.begin, end: rank.begin + local.end };
      }),
    ),
  };
}
