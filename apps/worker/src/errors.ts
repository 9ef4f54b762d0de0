/** A request that can never work (malformed or inconsistent): gRPC INVALID_ARGUMENT. */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
}

/** The worker is not in a state to do this now (no shard, another run, busy): FAILED_PRECONDITION. */
export class FailedPreconditionError extends Error {
  override readonly name = 'FailedPreconditionError';
}
