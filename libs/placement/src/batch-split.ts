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
