/** Structured logging for every process: pino, JSON lines or readable lines, run-following fields. */
export { createLogger, configureLogging, log, parseLogLevel, InvalidLogLevelError, LOG_LEVELS, LOG_LEVEL_ENV } from './logger';
export type { Logger, LoggerOptions, LogLevel } from './logger';
export { errorFields, numbersIn } from './error-fields';
export type { ErrorFields } from './error-fields';
export { lineLog, withFields } from './line-log';
export type { LogFields, LogLine } from './line-log';
export { readableLine } from './readable-line';
