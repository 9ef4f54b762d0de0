/**
 * The process's logger: pino, writing to stderr (stdout stays for what a command prints for its
 * user or for a script: tables, `--json`, train's per-step lines, a worker's address line).
 *
 * - JSON lines when stderr is not a terminal (a pipe, a file, `docker compose logs`), one object a
 *   line: `level`, `time`, `pid`, `hostname`, `name` (the process: scheduler, serve, worker),
 *   `msg`, and the fields that follow a run across processes (`runId`, `jobId`, `rank`,
 *   `workerId`, `step`, `op`);
 * - readable single lines (pino-pretty) when it is a terminal.
 *
 * The level comes from `--log-level` (which sets MOE_LOG_LEVEL, so the workers a command starts
 * inherit it) or from MOE_LOG_LEVEL; default `info`. Nothing is logged per frame or per op at
 * `info`: the data plane's hot path stays quiet.
 */
import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type { PrettyOptions, PrettyStream } from 'pino-pretty';

// pino-pretty only for a terminal: loaded (synchronously: it is CommonJS) when first needed, so a
// process that logs JSON does not pay for its import.
const pretty = (options: PrettyOptions): PrettyStream => (createRequire(import.meta.url)('pino-pretty') as (o: PrettyOptions) => PrettyStream)(options);

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_LEVEL_ENV = 'MOE_LOG_LEVEL';

export class InvalidLogLevelError extends Error {
  override name = 'InvalidLogLevelError';
}

/** `value` as a level; throws naming the allowed ones and where the value came from. */
export function parseLogLevel(value: string, source = `$${LOG_LEVEL_ENV}`): LogLevel {
  const level = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new InvalidLogLevelError(`${source}="${value}" is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
}

export interface LoggerOptions {
  /** The process's role, the `name` field of every line: scheduler, serve, worker, bench, ... */
  name: string;
  /** Default: $MOE_LOG_LEVEL, else info. */
  level?: LogLevel;
  /** Force JSON (true) or readable lines (false); default: JSON unless stderr is a terminal. */
  json?: boolean;
  /** Where lines go; default stderr (fd 2). Tests pass a stream to read them. */
  stream?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? parseLogLevel(process.env[LOG_LEVEL_ENV] || 'info');
  const json = options.json ?? !process.stderr.isTTY;
  const settings = { name: options.name, level };
  if (options.stream) return pino(settings, json ? options.stream : pretty({ destination: options.stream, sync: true, colorize: false, singleLine: true, ignore: 'pid,hostname' }));
  // Synchronous writes: log lines are few (none per op), and a line written just before
  // process.exit (a fatal error, a signal) must not be lost in a buffer.
  if (!json) return pino(settings, pretty({ destination: 2, sync: true, singleLine: true, ignore: 'pid,hostname' }));
  return pino(settings, pino.destination({ dest: 2, sync: true }));
}

let root: Logger | undefined;

/** The process's logger, made on first use from $MOE_LOG_LEVEL with `name` "moe". */
export function log(): Logger {
  root ??= createLogger({ name: 'moe' });
  return root;
}

/** Makes the process's logger: call once at start, before the first line (a CLI's preAction). */
export function configureLogging(options: LoggerOptions): Logger {
  if (options.level) process.env[LOG_LEVEL_ENV] = options.level;
  root = createLogger(options);
  return root;
}
