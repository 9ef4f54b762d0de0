/**
 * What the reference trainer mirrors of a distributed run so the two agree bit for bit, whatever
 * the codecs: the wire codecs' round trips at the four all-to-alls, and the batch split (ranks'
 * tokens, chunks) that fixes the order in which gradients are summed.
 */
import { codecRounding } from '@moe/comm';
import type { StepMirror } from '@moe/model';
import { tokenSplit, type SequenceRange } from '@moe/placement';
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
