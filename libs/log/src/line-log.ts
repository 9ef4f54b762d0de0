/**
 * The callback that the run code takes as `log`: a message plus the fields that place it (run,
 * job, rank, worker, step, op) and, for a failure, the level and the error. Code below the
 * commands calls it and never imports a logger, so a test can collect lines in an array and a
 * command can route them to pino (`lineLog`).
 */
import type { Logger } from 'pino';
import { errorFields } from './error-fields';

export interface LogFields {
  runId?: string;
  jobId?: string;
  rank?: number;
  workerId?: string;
  step?: number;
  op?: string;
  /** Default info; `warn` for a retry or a refusal, `error` for a failure. */
  level?: 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** The error a warn/error line is about: adds errClass, err and numbers (see errorFields). */
  err?: unknown;
  [field: string]: unknown;
}

export type LogLine = (line: string, fields?: LogFields) => void;

/** A `LogLine` that writes through `logger`, at the level the fields ask. */
export function lineLog(logger: Logger): LogLine {
  return (line, fields) => {
    if (!fields) return logger.info(line);
    const { level = 'info', err, ...rest } = fields;
    logger[level](err === undefined ? rest : { ...rest, ...errorFields(err) }, line);
  };
}

/** `log` with `fields` added to every line (the caller's own fields win). */
export function withFields(log: LogLine, fields: LogFields): LogLine {
  return (line, more) => log(line, { ...fields, ...more });
}
