/** What every queue command shares: where the queue is (--redis, --prefix), and how Redis trouble and unknown runs end. */
import { lineLog, log } from '@moe/log';
import type { Command } from 'commander';
import { DEFAULT_PREFIX, DEFAULT_REDIS_URL, queueLocationFromEnv, type QueueLocation } from '../queue/connection';
import { InvalidRunError, RedisUnavailableError, UnknownRunError } from '../queue/errors';
import { RunQueue } from '../queue/run-queue';
import { EXIT, type OnError } from './exit';

/** Redis not answering is neither a run's failure nor bad input: say so plainly, exit 1. */
export const withRedisHint = (onError: OnError): OnError => (error) => {
  if (error instanceof RedisUnavailableError) {
    lineLog(log())(`moe: ${error.message}`, { level: 'error', err: error });
    return EXIT.failed;
  }
  return onError(error);
};

/** An integer environment variable, or `fallback` when unset. */
export function envInt(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidRunError(`environment variable ${name} must be a non-negative integer, got "${raw}"`, name);
  return n;
}

export interface LocationFlags {
  redis?: string;
  prefix?: string;
}

/** Where the queue is: the flags, else the environment, else the defaults. */
export function locationOf(flags: LocationFlags): QueueLocation {
  const env = queueLocationFromEnv();
  return { redisUrl: flags.redis ?? env.redisUrl, prefix: flags.prefix ?? env.prefix };
}

/** Adds --redis and --prefix to `command`. */
export function locationOptions(command: Command): Command {
  return command
    .option('--redis <url>', `Redis of the queue (default: $REDIS_URL, else ${DEFAULT_REDIS_URL})`)
    .option('--prefix <prefix>', `key prefix of the queue (default: $MOE_QUEUE_PREFIX, else "${DEFAULT_PREFIX}")`);
}

/**
 * Connects to the queue, runs `use`, and closes: an unknown run id exits 2, other errors go to
 * `onError`.
 */
export async function withRunQueue(flags: LocationFlags, onError: OnError, use: (runs: RunQueue) => Promise<number>): Promise<number> {
  let runs: RunQueue | undefined;
  try {
    runs = await RunQueue.connect(locationOf(flags));
    return await use(runs);
  } catch (error) {
    if (error instanceof UnknownRunError) {
      lineLog(log())(`moe: ${error.message}`, { level: 'error', err: error });
      return EXIT.badInput;
    }
    return onError(error);
  } finally {
    await runs?.close();
  }
}

