import { keyString, type FrameKey } from '../transport/frame-key';

const ranks = (list: readonly number[]): string => `${list.length === 1 ? 'rank' : 'ranks'} ${list.join(', ')}`;

/**
 * An exchange did not complete within its timeout. `missing` lists the ranks whose frame did not
 * arrive or, when every frame arrived, the ranks that did not accept this rank's frame.
 */
export class ExchangeTimeoutError extends Error {
  override readonly name = 'ExchangeTimeoutError';
  constructor(
    readonly key: FrameKey,
    readonly missing: number[],
    readonly rank: number,
    readonly worldSize: number,
    readonly timeoutMs: number,
    /** Frames this rank holds (its own included). */
    readonly have: number,
    /** true: every frame arrived, but `missing` did not acknowledge this rank's frames. */
    readonly unacknowledged = false,
  ) {
    super(
      unacknowledged
        ? `timed out after ${timeoutMs} ms waiting for ${ranks(missing)} to accept ${keyString(key)} from rank ${rank} (rank ${rank} has all ${worldSize} frames)`
        : `timed out after ${timeoutMs} ms waiting for ${keyString(key)} from ${ranks(missing)} (rank ${rank} has ${have} of ${worldSize})`,
    );
  }
}

/** A dispatch layout's input is out of range (expert id, owner rank, slot range). */
export class LayoutError extends RangeError {
  override readonly name = 'LayoutError';
}

/** Arrays handed to (or frames received by) an all-to-all do not have the shape the layout says. */
export class AllToAllShapeError extends RangeError {
  override readonly name = 'AllToAllShapeError';
}
