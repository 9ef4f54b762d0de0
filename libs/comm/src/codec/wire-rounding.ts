import type { WireRounding } from '@moe/model';
import { roundTripRows } from './rows';
import type { CodecName } from './types';

/**
 * The reference trainer's rounding hooks for a run's wire codecs: the dispatch codec on the
 * forward dispatch, the combine codec on the combine and on both backward all-to-alls (as the
 * step executor uses them). Every row is rounded, including those a rank keeps for its own
 * experts (dispatch and combine round them too), so the reference needs no placement.
 */
export function codecRounding(dispatchCodec: CodecName, combineCodec: CodecName): WireRounding {
  const round = (codec: CodecName) => (codec === 'f32' ? undefined : (rows: Float32Array, cols: number) => roundTripRows(rows, cols, codec));
  return {
    dispatch: round(dispatchCodec),
    combine: round(combineCodec),
    combineBackward: round(combineCodec),
    dispatchBackward: round(combineCodec),
  };
}
