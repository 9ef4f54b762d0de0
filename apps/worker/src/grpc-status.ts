import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '@moe/model';
import { UnknownDeviceProfileError } from '@moe/sim';
import { StepOpError } from './schedule/executor';
import { FailedPreconditionError, InvalidRequestError } from './errors';

export const deadline = (ms: number) => new Date(Date.now() + ms);

/** ms left until a call's deadline; Infinity when the caller set none. */
export function remainingMs(d: grpc.Deadline): number {
  const at = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(at) ? at - Date.now() : Number.POSITIVE_INFINITY;
}

/** Maps an error to the gRPC status a caller should see. */
export function statusOf(error: unknown): grpc.StatusObject {
  const message = error instanceof Error ? error.message : String(error);
  const code =
    error instanceof InvalidRequestError || error instanceof ConfigError || error instanceof UnknownDeviceProfileError || (error instanceof Error && error.name === 'TensorMessageError')
      ? grpc.status.INVALID_ARGUMENT
      : error instanceof FailedPreconditionError
        ? grpc.status.FAILED_PRECONDITION
        : error instanceof StepOpError
          ? grpc.status.ABORTED
          : grpc.status.INTERNAL;
  return { code, details: message, metadata: new grpc.Metadata() };
}

