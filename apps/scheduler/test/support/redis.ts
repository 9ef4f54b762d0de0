/**
 * A Redis that belongs to the test and nothing else.
 *
 * - `REDIS_URL` unset (the default): starts a private `redis-server` on a free port of
 *   127.0.0.1, with no persistence, and kills it in `stop()` (and on process exit).
 * - `REDIS_URL` set: uses that server, under a key prefix unique to this test file, and deletes
 *   every key under that prefix in `stop()`. Nothing else on that server is read or written.
 *
 * The shared Redis on 127.0.0.1:6379 is never touched unless REDIS_URL names it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export interface TestRedis {
  /** redis://127.0.0.1:PORT of the private server, or REDIS_URL. */
  url: string;
  /** BullMQ key prefix unique to this test run: "moe-test-<8 hex>". */
  prefix: string;
  /** True when this helper started the server (and will kill it). */
  private: boolean;
  stop(): Promise<void>;
}

export const REDIS_INSTALL_HINT =
  'The queue tests need redis-server (the one system prerequisite of the tests; `moe bench` and `moe train` do not need it). ' +
  'Install it: `sudo apt-get install redis-server` (Debian/Ubuntu), `brew install redis` (macOS), `dnf install redis` (Fedora); ' +
  'or set REDIS_URL=redis://host:port to use a running Redis (the tests then work under a unique key prefix and delete it afterwards).';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function ping(url: string, timeoutMs: number): Promise<void> {
  const give = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < give) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch (error) {
      last = (error as Error).message;
    } finally {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis at ${url} did not answer PING within ${timeoutMs} ms (${last})`);
}

/** Deletes every key under `prefix:` (SCAN, never KEYS *). */
export async function deletePrefix(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) deleted += await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

export async function startTestRedis(): Promise<TestRedis> {
  const prefix = `moe-test-${randomUUID().slice(0, 8)}`;
  const external = process.env.REDIS_URL;
  if (external) {
    await ping(external, 5_000);
    return { url: external, prefix, private: false, stop: async () => void (await deletePrefix(external, prefix)) };
  }

  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error) throw new Error(`redis-server not found (${(probe.error as NodeJS.ErrnoException).code}). ${REDIS_INSTALL_HINT}`);

  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-2_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-2_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killNow = () => child.exitCode === null && child.kill('SIGKILL');
  process.on('exit', killNow);
  const url = `redis://127.0.0.1:${port}`;
  try {
    await ping(url, 5_000);
  } catch (error) {
    killNow();
    throw new Error(`${(error as Error).message}; redis-server said: ${output.trim() || '(nothing)'}`);
  }
  return {
    url,
    prefix,
    private: true,
    stop: async () => {
      process.off('exit', killNow);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(killNow, 3_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
