/**
 * Where the queue lives and what its keys are called. Every program of the service (serve,
 * submit, runs, cancel) reads the same environment: REDIS_URL and MOE_QUEUE_PREFIX.
 */
import { Redis } from 'ioredis';
import { RedisUnavailableError } from './errors';

/** The BullMQ queue every run goes through. */
export const QUEUE_NAME = 'runs';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** BullMQ's own default key prefix. */
export const DEFAULT_PREFIX = 'bull';

export interface QueueLocation {
  /** redis://[user:password@]host:port[/db] */
  redisUrl: string;
  /** Key prefix of the queue (BullMQ `prefix`): `<prefix>:runs:*`. */
  prefix: string;
}

/** REDIS_URL and MOE_QUEUE_PREFIX, or the defaults. */
export function queueLocationFromEnv(env: NodeJS.ProcessEnv = process.env): QueueLocation {
  return { redisUrl: env.REDIS_URL || DEFAULT_REDIS_URL, prefix: env.MOE_QUEUE_PREFIX || DEFAULT_PREFIX };
}

/** BullMQ connection options for `url` (a fresh ioredis client per Queue / Worker / QueueEvents). */
export function bullConnection(url: string): { url: string; maxRetriesPerRequest: null } {
  return { url, maxRetriesPerRequest: null };
}

/** Redis key holding a pending cancel request of job `jobId` (its value: the reason). */
export function cancelKey(location: QueueLocation, jobId: string): string {
  return `${location.prefix}:${QUEUE_NAME}:moe-cancel:${jobId}`;
}

/** Pub/sub channel on which cancel requests (a job id) reach the serving scheduler. */
export function cancelChannel(location: QueueLocation): string {
  return `${location.prefix}:${QUEUE_NAME}:moe-cancel`;
}

/** "redis://:***@host:6379" for messages: the URL without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/**
 * A plain ioredis client on `url` that has answered PING; rejects with `RedisUnavailableError`
 * (saying how to get one) when nothing answers within `timeoutMs`.
 */
export async function connectRedis(url: string, timeoutMs = 3_000): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: timeoutMs, retryStrategy: () => null });
  let lastError = '';
  client.on('error', (error: Error) => (lastError = error.message));
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
  } catch (error) {
    client.disconnect();
    throw new RedisUnavailableError(
      `cannot reach Redis at ${redactUrl(url)} (${lastError || (error as Error).message}); ` +
        'set REDIS_URL (or --redis) to a running Redis: `docker compose up -d redis` publishes one on redis://127.0.0.1:6380, ' +
        'or run `redis-server` for redis://127.0.0.1:6379',
    );
  }
  // From here on, reconnect as a long-lived client would.
  client.options.retryStrategy = (times: number) => Math.min(times * 200, 2_000);
  client.options.maxRetriesPerRequest = null;
  return client;
}
