/**
 * The scheduler's errors, one class per thing that can go wrong, each with the numbers and the
 * names in its message. Callers catch the class, not the string.
 */

// Placement and batch-split errors belong to the planner's lib; re-exported so callers catch them here too.
export { BatchSplitError, PlacementError } from '@moe/placement';
// The parity check and the checkpoint format are pure and live in the model's lib; so do their errors.
export { CheckpointError, ParityError } from '@moe/model';

/** Fewer workers than needed registered before the rendezvous timeout. */
export class RendezvousTimeoutError extends Error {
  override readonly name = 'RendezvousTimeoutError';
}

/** A worker went silent (no heartbeat within the timeout) or left the cluster. */
export class WorkerLostError extends Error {
  override readonly name = 'WorkerLostError';
  constructor(
    message: string,
    readonly workerId: string,
    /** Its rank in the current run, or -1 when it had none yet. */
    readonly rank: number,
  ) {
    super(message);
  }
}

/** A worker process started by this scheduler exited (or failed to start) before it was told to stop. */
export class WorkerProcessExitError extends Error {
  override readonly name = 'WorkerProcessExitError';
  constructor(
    message: string,
    readonly workerId: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    /** The last lines the process wrote to stderr. */
    readonly stderrTail: string[],
  ) {
    super(message);
  }
}

/** An RPC to a worker failed (status, deadline, or a reply of the wrong shape). */
export class WorkerRpcError extends Error {
  override readonly name = 'WorkerRpcError';
  constructor(
    message: string,
    readonly rank: number,
    readonly method: string,
    /** gRPC status code, or -1 when the call succeeded but its reply was wrong. */
    readonly code: number,
  ) {
    super(message);
  }
}

/** The replicas of the dense parameters, or the copies of a redundant expert, disagree after a step. */
export class ChecksumMismatchError extends Error {
  override readonly name = 'ChecksumMismatchError';
  constructor(
    message: string,
    readonly step: number,
    /** Ranks whose checksum differs from rank 0's (a redundant expert: from its first holder's). */
    readonly ranks: number[],
    /** A redundant expert's copies diverged: which one. Absent: the dense parameters. */
    readonly expert?: { layer: number; expert: number },
  ) {
    super(message);
  }
}

/** A run config file that is unreadable or not `{ "model": {...}, "train": {...} }`. */
export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
}


/** The run was stopped from outside (Ctrl-C, SIGTERM). */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}; stopping the workers`);
  }
}


