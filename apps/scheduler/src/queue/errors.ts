/**
 * Errors of the run queue, one class per way a queued run ends other than done. Each tells the
 * service what to do with the job: an `InvalidRunError` or a `RunCancelledError` fails it at
 * once (no retry); a `ServiceStoppingError` puts it back in the queue; the scheduler's
 * infrastructure errors (a worker lost, too few workers) fail the attempt and BullMQ retries it.
 */

/** A run that can never work as given (a bad field, an impossible model); the message names the field. */
export class InvalidRunError extends Error {
  override readonly name = 'InvalidRunError';
  constructor(
    message: string,
    /** Dotted path of the offending field in the job's data ("workers", "config.model.topK"), or "" when it is the whole. */
    readonly field: string,
  ) {
    super(message);
  }
}

/** The run was cancelled (`moe cancel <id>`), before it started or while it ran. */
export class RunCancelledError extends Error {
  override readonly name = 'RunCancelledError';
}

/** The service is stopping (SIGTERM): the run in progress was aborted and goes back to the queue. */
export class ServiceStoppingError extends Error {
  override readonly name = 'ServiceStoppingError';
  constructor(readonly signal: string) {
    super(`the run service is stopping (${signal}); the run goes back to the queue`);
  }
}

/** Redis did not answer at the URL the command was given. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

/** No run with this id in the queue. */
export class UnknownRunError extends Error {
  override readonly name = 'UnknownRunError';
}
