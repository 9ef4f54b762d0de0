/** A request that can never work (malformed or inconsistent): gRPC INVALID_ARGUMENT. */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
}

/** The worker is not in a state to do this now (no shard, another run, busy): FAILED_PRECONDITION. */
export class FailedPreconditionError extends Error {
  override readonly name = 'FailedPreconditionError';
}

/** The scheduler refused this worker for good (wrong or missing token, a run that does not need it); retrying cannot help. */
export class RegistrationRefusedError extends Error {
  override readonly name = 'RegistrationRefusedError';
}
