/** The kit's checks, in the order they run. Each is independent: see check.ts. */
import type { Check } from './check';
import { health, heartbeat, register, reregister, shutdown } from './control';
import { malformedFrame, multiPartFrames } from './frames';
import { loadShard, loadShardInvalid, optimizerState } from './load';
import { afterFailure, codecNumbers, codecs, deadline, fetchParams, loss, runStep, zeroTokenFrames } from './steps';

export type { Check } from './check';

export const CHECK_TABLE: readonly Check[] = [
  register,
  heartbeat,
  health,
  loadShardInvalid,
  loadShard,
  runStep,
  loss,
  fetchParams,
  codecs,
  codecNumbers,
  optimizerState,
  malformedFrame,
  multiPartFrames,
  zeroTokenFrames,
  deadline,
  afterFailure,
  reregister,
  shutdown,
];
