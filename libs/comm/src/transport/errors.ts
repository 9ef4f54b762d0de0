import { keyString, type FrameKey } from './frame-key';

/** No frame from `source` for `key` arrived within `timeoutMs`. */
export class ReceiveTimeoutError extends Error {
  override readonly name = 'ReceiveTimeoutError';
  constructor(
    readonly key: FrameKey,
    readonly source: number,
    readonly rank: number,
    readonly timeoutMs: number,
  ) {
    super(`rank ${rank}: timed out after ${timeoutMs} ms waiting for ${keyString(key)} from rank ${source}`);
  }
}

/** A second frame from the same source for the same key (or a second receive() for it). */
export class DuplicateFrameError extends Error {
  override readonly name = 'DuplicateFrameError';
  constructor(
    readonly key: FrameKey,
    readonly source: number,
    detail: string,
  ) {
    super(`duplicate ${keyString(key)} from rank ${source}: ${detail}`);
  }
}

/** A frame for a step this rank has long finished (older than the newest step it took minus one). */
export class StaleFrameError extends Error {
  override readonly name = 'StaleFrameError';
  constructor(
    readonly key: FrameKey,
    readonly source: number,
    readonly newestStep: number,
  ) {
    super(`stale ${keyString(key)} from rank ${source}: this rank has taken frames of step ${newestStep}`);
  }
}

/** A rank outside 0 .. worldSize-1. */
export class RankRangeError extends RangeError {
  override readonly name = 'RankRangeError';
  constructor(what: string, rank: number, worldSize: number) {
    super(`${what} ${rank} is not a rank of a world of ${worldSize} (0..${worldSize - 1})`);
  }
}

/** The transport (or the mailbox's run) was closed while the operation waited. */
export class TransportClosedError extends Error {
  override readonly name = 'TransportClosedError';
}

/** The peer could not be reached (connection refused, stream broken). */
export class PeerUnreachableError extends Error {
  override readonly name = 'PeerUnreachableError';
  constructor(
    readonly dest: number,
    readonly address: string,
    detail: string,
  ) {
    super(`rank ${dest} at ${address} is unreachable: ${detail}`);
  }
}

/** The peer answered a frame with a PeerAck error. */
export class PeerRefusedError extends Error {
  override readonly name = 'PeerRefusedError';
  constructor(
    readonly dest: number,
    readonly key: FrameKey,
    readonly reason: string,
  ) {
    super(`rank ${dest} refused ${keyString(key)}: ${reason}`);
  }
}
