/**
 * How a distributed run splits a step's batch, so the reference trainer can sum gradients in the
 * same order (float32 addition is not associative; with a lossy wire codec a last-bit difference
 * can flip a rounding and grow, so the orders must agree, not just nearly).
 *
 * The distributed run: rank r holds tokens ranks[r]; each gradient of a dense parameter is
 * computed by the rank over its own tokens (one call of the same helper), and the all-reduce adds
 * the ranks' partial sums in rank order, in float32, from 0. A routed expert sees the rows of one
 * chunk at a time (chunk c: tokens chunks[c][r] of every rank r, ranks in order, slots
 * ascending); its gradients are the chunks' gradients added in chunk order, in float32, from 0.
 */
import type { ExpertCache } from './expert';
import type { RmsNormCache } from './norm';
import type { RouteCache } from './router';
import { ShapeError } from './shape-error';
import { zeros, type Tensor } from './tensor';

export interface TokenRange {
  begin: number;
  end: number;
}

export interface BatchSplit {
  /** [W] each rank's tokens, contiguous and ascending, together the whole batch. */
  ranks: TokenRange[];
  /** [C][W] the tokens of chunk c on rank r (global token indices), within ranks[r]. */
  chunks: TokenRange[][];
}

/** The split of a single process: one rank, one chunk. */
export function wholeBatch(tokens: number): BatchSplit {
  return { ranks: [{ begin: 0, end: tokens }], chunks: [[{ begin: 0, end: tokens }]] };
}

/** Checks that `split` covers tokens [0, T) rank after rank and that chunks lie within their rank. */
export function checkSplit(split: BatchSplit, T: number): void {
  let next = 0;
  split.ranks.forEach((r, i) => {
    if (r.begin !== next || r.end < r.begin) throw new ShapeError(`batch split: rank ${i} holds tokens [${r.begin}, ${r.end}), expected to start at ${next}`);
    next = r.end;
  });
  if (next !== T) throw new ShapeError(`batch split: the ranks hold ${next} tokens, the batch has ${T}`);
  split.chunks.forEach((chunk, c) => {
    if (chunk.length !== split.ranks.length) throw new ShapeError(`batch split: chunk ${c} has ranges for ${chunk.length} ranks, not ${split.ranks.length}`);
    chunk.forEach((range, r) => {
      const rank = split.ranks[r]!;
      if (range.begin < rank.begin || range.end > rank.end || range.end < range.begin) {
        throw new ShapeError(`batch split: chunk ${c} of rank ${r} is [${range.begin}, ${range.end}), outside the rank's [${rank.begin}, ${rank.end})`);
      }
    });
  });
}

/** [C][slots] the slots (t·k + j) of each chunk's tokens, ascending (ranks in order). */
export function chunkSlots(split: BatchSplit, topK: number): Int32Array[] {
  return split.chunks.map((ranges) => {
    const slots: number[] = [];
    for (const { begin, end } of ranges) for (let s = begin * topK; s < end * topK; s++) slots.push(s);
    return Int32Array.from(slots);
  });
}

/** Rows [begin, end) of a [T, ...] tensor (a view, no copy). */
export function rowsOf(t: Tensor, begin: number, end: number): Tensor {
  const width = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: [end - begin, ...t.shape.slice(1)], data: t.data.subarray(begin * width, end * width) };
}

export function normCacheRows(c: RmsNormCache, begin: number, end: number): RmsNormCache {
  return { x: rowsOf(c.x, begin, end), gain: c.gain, rinv: c.rinv.subarray(begin, end) };
}

export function expertCacheRows(c: ExpertCache, begin: number, end: number): ExpertCache {
  return { x: rowsOf(c.x, begin, end), a: rowsOf(c.a, begin, end), b: rowsOf(c.b, begin, end), g: rowsOf(c.g, begin, end) };
}

/** Tokens [begin, end) of a route cache; begin must start a sequence when it has aux state. */
export function routeCacheRows(c: RouteCache, begin: number, end: number): RouteCache {
  const E = c.router.shape[1]!;
  const k = c.topK;
  const out: RouteCache = {
    ...c,
    h: rowsOf(c.h, begin, end),
    scores: c.scores.subarray(begin * E, end * E),
    expertIds: c.expertIds.subarray(begin * k, end * k),
    weights: c.weights.subarray(begin * k, end * k),
    selectedSum: c.selectedSum.subarray(begin, end),
  };
  if (!c.aux) return out;
  const { seqLen, fScaled, scoreSum } = c.aux;
  if (begin % seqLen !== 0) throw new ShapeError(`routeCacheRows: token ${begin} does not start a sequence of ${seqLen}`);
  const q = begin / seqLen;
  return { ...out, aux: { seqLen, fScaled: fScaled.subarray(q * E), scoreSum: scoreSum.subarray(begin, end) } };
}

/**
 * The all-reduce's sum of per-rank partials: 0 + P_0 + P_1 + ... in float32, where P_r are the
 * tensors `partial(range)` returns for rank r's tokens (one list per rank, same shapes).
 */
export function sumOverRanks(ranks: readonly TokenRange[], partial: (range: TokenRange) => Tensor[]): Tensor[] {
  let sums: Tensor[] | undefined;
  for (const range of ranks) {
    const parts = partial(range);
    sums ??= parts.map((p) => zeros(p.shape));
    parts.forEach((p, i) => {
      const into = sums![i]!.data;
      for (let j = 0; j < into.length; j++) into[j]! += p.data[j]!;
    });
  }
  if (!sums) throw new ShapeError('sumOverRanks: no ranks');
  return sums;
}
