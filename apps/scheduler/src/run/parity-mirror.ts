/**
 * What the reference trainer mirrors of a distributed run so the two agree bit for bit, whatever
 * the codecs: the wire codecs' round trips at the four all-to-alls, the batch split (ranks'
 * tokens, chunks) that fixes the order in which gradients are summed, and with redundant experts
 * which copy took each token (the copies' gradients are summed in holder order).
 */
import { codecRounding, ReplicaChooser } from '@moe/comm';
import type { ReplicaMirror, StepMirror } from '@moe/model';
import { hasRedundantExperts, replicatedExperts, tokenSplit, type ExpertPlacement, type SequenceRange } from '@moe/placement';
import { chunkTokenRange, type StepSettings } from '@moe/schedule';

/** The mirror of a run with these step settings, over sequences split as `ranges` (splitSequences), `seqLen` tokens each. */
export function runMirror(
  settings: Pick<StepSettings, 'dispatchCodec' | 'combineCodec' | 'chunks'>,
  ranges: readonly SequenceRange[],
  seqLen: number,
): StepMirror {
  return {
    rounding: codecRounding(settings.dispatchCodec, settings.combineCodec),
    split: tokenSplit(ranges, seqLen, settings.chunks, chunkTokenRange),
  };
}

/**
 * The replica choices of a run on `placement` (undefined without redundant experts): the rank
 * whose copy took each token, as the workers' ReplicaChooser picks it.
 * @param nodeSize the step settings' node size (0: one node)
 */
export function replicaMirror(placement: ExpertPlacement, experts: number, ranges: readonly SequenceRange[], seqLen: number, nodeSize: number): ReplicaMirror | undefined {
  if (!hasRedundantExperts(placement, experts)) return undefined;
  const chooser = new ReplicaChooser(placement, experts, ranges.length, nodeSize);
  const firstToken = ranges.map((r) => r.first * seqLen);
  const sourceOf = (token: number) => ranges.findIndex((r) => token >= r.first * seqLen && token < (r.first + r.count) * seqLen);
  return {
    replicated: replicatedExperts(placement, experts),
    holderOf: (token, expert) => {
      const source = sourceOf(token);
      return placement.physicalOwner[chooser.physicalOf(source, token - firstToken[source]!, expert)]!;
    },
  };
}
