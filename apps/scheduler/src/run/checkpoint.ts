/**
 * Checkpoints on disk: `<dir>/checkpoint.moe` in `@moe/model`'s checkpoint format, written
 * atomically (a temp file in the same directory, fsync, rename over the old one), so a crash
 * leaves the previous checkpoint or the new one, whole. The data needs nothing:
 * `MarkovChain.batch(step, ...)` is a function of the step. Also the AdamW state gathered from,
 * and handed back to, the ranks.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { namedTensorMsg, namedTensorsFromMsg, type FetchParamsResponseOut, type OptimizerStateMsg } from '@moe/comm';
import { CheckpointError, decodeCheckpoint, encodeCheckpoint, parseExpertParamName, type Checkpoint, type OptimizerSnapshot, type Tensor } from '@moe/model';
import { asPlacement, holdersOf, type ExpertPlacement } from '@moe/placement';

export type { Checkpoint, OptimizerSnapshot } from '@moe/model';

export const CHECKPOINT_FILE = 'checkpoint.moe';

/** Writes `checkpoint` to `<dir>/checkpoint.moe` atomically; returns the file's path. */
export function saveCheckpoint(dir: string, checkpoint: Checkpoint): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, CHECKPOINT_FILE);
  const temp = `${path}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, encodeCheckpoint(checkpoint));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  return path;
}

/**
 * Reads `<dir>/checkpoint.moe` (or `dir` itself when it is the file).
 * @throws CheckpointError when it is missing, truncated, not a checkpoint, or its checksum fails
 */
export function loadCheckpoint(dir: string): Checkpoint {
  const path = dir.endsWith('.moe') ? dir : join(dir, CHECKPOINT_FILE);
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch (error) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(error as Error).message}`);
  }
  return decodeCheckpoint(file, path);
}

/**
 * The whole model's AdamW state from every rank's FetchParams (with include_optimizer_state):
 * dense entries from rank 0 (replicated), each expert's from the lowest rank holding it (one
 * copy of a redundant expert: the copies' states are identical, as their parameters are).
 */
export function gatherOptimizerState(replies: readonly FetchParamsResponseOut[]): OptimizerSnapshot {
  const out: OptimizerSnapshot = { t: 0, m: new Map(), v: new Map() };
  replies.forEach((reply, rank) => {
    const state = reply.optimizerState;
    if (!state) throw new CheckpointError(`FetchParams on rank ${rank} returned no optimizer state (its backend cannot checkpoint)`);
    if (rank === 0) out.t = state.step;
    else if (state.step !== out.t) throw new CheckpointError(`optimizer step differs: rank 0 has t=${out.t}, rank ${rank} t=${state.step}`);
    for (const kind of ['m', 'v'] as const) {
      for (const [name, t] of namedTensorsFromMsg(state[kind], `FetchParams[rank ${rank}].optimizer_state.${kind}`)) {
        if (rank === 0 || (parseExpertParamName(name) && !out[kind].has(name))) out[kind].set(name, t);
      }
    }
  });
  return out;
}

/** The part of `state` rank `rank` holds (dense entries, and the experts `owner` gives it a copy of), as a message. */
export function optimizerStateForRank(state: OptimizerSnapshot, owner: readonly number[] | ExpertPlacement, rank: number): OptimizerStateMsg {
  const placement = asPlacement(owner);
  const holders = holdersOf(placement, Math.max(-1, ...placement.physicalToLogical) + 1);
  const mine = (name: string) => {
    const e = parseExpertParamName(name);
    return !e || (holders[e.expert]?.includes(rank) ?? false);
  };
  const list = (map: Map<string, Tensor>) =>
    [...map].filter(([name]) => mine(name)).map(([name, t]) => namedTensorMsg(name, t));
  return { step: state.t, m: list(state.m), v: list(state.v) };
}
