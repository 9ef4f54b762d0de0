// `moe health scheduler|worker`: is this service ready? Exit 0 yes, 1 no (the reason on stderr).
// Docker's healthchecks run it every few seconds in every container, so it is plain JavaScript
// with no dependency: bin/moe.mjs hands it over before loading tsx and the whole CLI (seconds of CPU).
//
//   scheduler: GET /healthz of `moe serve`'s HTTP server (MOE_HTTP_PORT, default 8080, on this
//              host): 200 when Redis answers, the queue is consumed and the gRPC service is bound.
//   worker:    MOE_WORKER_STATUS_FILE (`moe worker --status-file`) says the scheduler knows this
//              worker and acknowledged it within --max-age ms (default 15000: 15 heartbeats).
import { readFileSync } from 'node:fs';
import { request } from 'node:http';

const USAGE = `usage: moe health scheduler [--url <http://host:port/healthz>] [--timeout <ms>]
       moe health worker [--status-file <path>] [--max-age <ms>]`;

/** `--name value` pairs of `args`. */
function flagsOf(args) {
  const flags = {};
  for (let i = 0; i < args.length; i += 2) {
    if (!args[i].startsWith('--') || args[i + 1] === undefined) throw new Error(`unexpected argument "${args[i]}"`);
    flags[args[i].slice(2)] = args[i + 1];
  }
  return flags;
}

const positive = (text, what) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${what} must be a positive integer, got "${text}"`);
  return n;
};

/** The healthz URL of the serve process on this host: its HTTP host (a wildcard bind is reached on loopback) and port. */
function defaultUrl(env) {
  const host = !env.MOE_HTTP_HOST || env.MOE_HTTP_HOST === '0.0.0.0' || env.MOE_HTTP_HOST === '::' ? '127.0.0.1' : env.MOE_HTTP_HOST;
  return `http://${host.includes(':') ? `[${host}]` : host}:${env.MOE_HTTP_PORT || 8080}/healthz`;
}

function checkScheduler(flags, env) {
  const url = flags.url ?? defaultUrl(env);
  const timeoutMs = positive(flags.timeout ?? '3000', '--timeout');
  return new Promise((resolve) => {
    const req = request(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode === 200) resolve({ ok: true, text: `scheduler ready: ${body.trim()}` });
        else resolve({ ok: false, text: `scheduler not ready (${url} answered ${res.statusCode}): ${body.trim()}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => resolve({ ok: false, text: `scheduler not ready: ${url}: ${error.message} (is moe serve running with its HTTP server on that port?)` }));
    req.end();
  });
}

function checkWorker(flags, env) {
  const file = flags['status-file'] ?? env.MOE_WORKER_STATUS_FILE;
  if (!file) return { ok: false, text: 'worker: no status file: set MOE_WORKER_STATUS_FILE (or --status-file) for both moe worker and moe health worker' };
  const maxAgeMs = positive(flags['max-age'] ?? '15000', '--max-age');
  let status;
  try {
    status = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    return { ok: false, text: `worker not registered yet: cannot read ${file} (${error.code ?? error.message})` };
  }
  const age = Date.now() - Number(status.at);
  if (status.registered !== true) return { ok: false, text: `worker ${status.workerId}: scheduler ${status.scheduler} does not know it (registering again)` };
  if (!(age <= maxAgeMs)) return { ok: false, text: `worker ${status.workerId}: scheduler ${status.scheduler} silent for ${age} ms (over ${maxAgeMs} ms)` };
  return { ok: true, text: `worker ${status.workerId} registered with ${status.scheduler}, acknowledged ${age} ms ago` };
}

/** Runs `moe health <args>`; returns the exit code. */
export async function health(args, env = process.env) {
  const [what, ...rest] = args;
  try {
    if (what === '--help' || what === '-h') {
      console.log(USAGE);
      return 0;
    }
    const flags = flagsOf(rest);
    const result = what === 'scheduler' ? await checkScheduler(flags, env) : what === 'worker' ? checkWorker(flags, env) : undefined;
    if (!result) throw new Error(`unknown service "${what ?? ''}"`);
    (result.ok ? console.log : console.error)(result.text);
    return result.ok ? 0 : 1;
  } catch (error) {
    console.error(`moe health: ${error.message}\n${USAGE}`);
    return 2;
  }
}
